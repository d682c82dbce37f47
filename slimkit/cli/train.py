"""`slimkit train [MODEL] [--preset NAME] [--config FILE] [--FIELD VALUE ...]`.

Every :class:`~slimkit.training.config.TrainConfig` field is a flag (``lr_schedule`` is
``--lr-schedule``), generated from the dataclass so the two never disagree; flags override the
config file, which overrides the preset. A logdir that already holds a run is resumed; with
``--logdir`` alone (no MODEL, preset or config file) the run's saved ``config.json`` is the base,
so ``slimkit train --logdir runs/x`` continues run x as it was configured.

Ends with ``test accuracy: 0.9234`` or, with ``--json``, one JSON object of the final metrics on
stdout (progress then goes to stderr). Exit codes: 0 done, 1 non-finite loss, 2 a usage error,
130/143 stopped by SIGINT/SIGTERM after a checkpoint.
"""

import argparse
import dataclasses
import json
import sys
import typing

# Fields set by their own positional/flag handling, or only in config files.
_SPECIAL = {"model", "preset"}
_SIGNAL_EXIT = {"SIGINT": 130, "SIGTERM": 143}


def configure(parser):
    from slimkit.training.config import TrainConfig
    from slimkit.training.presets import list_presets

    parser.add_argument("model", nargs="?", metavar="MODEL",
                        help="model name (see `slimkit models`); optional with a preset")
    parser.add_argument("--preset", metavar="NAME",
                        help=f"named recipe: {', '.join(list_presets())}")
    parser.add_argument("--config", metavar="FILE", help=".json or .toml file of the same keys")
    parser.add_argument("--json", action="store_true",
                        help="print the final metrics as one JSON object (progress to stderr)")
    group = parser.add_argument_group("settings (TrainConfig fields; default in brackets)")
    for field in dataclasses.fields(TrainConfig):
        if field.name in _SPECIAL or not field.metadata.get("cli", True):
            continue
        _add_field_flag(group, field)


def _add_field_flag(group, field):
    flag = "--" + field.name.replace("_", "-")
    default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
    help_text = f"{field.metadata.get('help', '')} [{default}]".replace("%", "%%").replace("%%%%", "%%")
    tp = field.type
    if typing.get_origin(tp) is typing.Union:
        tp = typing.get_args(tp)[0]
    kwargs = {"dest": field.name, "default": None, "help": help_text}
    if tp is bool:
        group.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
    elif tp is list:
        group.add_argument(flag, metavar="A,B", **kwargs)  # comma-separated, split by TrainConfig
    elif tp is dict:
        group.add_argument(flag, metavar="KEY=VALUE,...", **kwargs)  # parsed by TrainConfig
    else:
        metavar = {int: "N", float: "X", str: "NAME"}.get(tp, "VALUE")
        if field.name.endswith("dir") or field.name.endswith("path"):
            metavar = "DIR" if field.name.endswith("dir") else "PATH"
        elif field.name.endswith("secs") or field.name == "max_time":
            metavar = "S"
        group.add_argument(flag, metavar=metavar, type=tp if tp in (int, float) else str, **kwargs)
    if field.name == "steps":
        group.add_argument("--number-of-steps", dest="steps", type=int, default=None,
                           help=argparse.SUPPRESS)  # TF-Slim's name


def resolve(args):
    """The TrainConfig that the parsed command line describes."""
    from slimkit.training.config import TrainConfig, field_names
    from slimkit.training.saved_config import load_saved_config

    overrides = {name: getattr(args, name) for name in field_names()
                 if name not in _SPECIAL and getattr(args, name, None) is not None}
    if args.model:
        overrides["model"] = args.model
    base = None
    if not (args.model or args.preset or args.config) and args.logdir:
        base = load_saved_config(args.logdir)  # resume a run as it was configured
    config = TrainConfig.from_sources(args.preset, args.config, overrides, base=base)
    if not config.model:
        raise ValueError("No model given. Expected a MODEL argument (see `slimkit models`), a "
                         "--preset that names one, or --logdir of an existing run. Example: "
                         "slimkit train --preset mnist-softmax-tutorial")
    return config


def run(args):
    from slimkit.training.distribute import WorkerLostError
    from slimkit.training.loop import NonFiniteLossError, train

    config = resolve(args)
    stream = sys.stderr if args.json else sys.stdout
    try:
        metrics = train(config, log_stream=stream)
    except (NonFiniteLossError, WorkerLostError) as e:
        print(f"slimkit train: error: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(metrics, sort_keys=True), flush=True)
    return _SIGNAL_EXIT.get(metrics.get("stopped"), 0)
