"""`TrainConfig`: every setting of a training run, typed, layered and saved in the logdir.

Settings come in layers; a later layer overrides an earlier one:

    dataclass defaults  <  preset (--preset)  <  config file (--config, .json or .toml)  <  flags

    config = TrainConfig.from_sources(preset="deep-mnist-tutorial", config_file="run.toml",
                                      overrides={"steps": 500})

An unknown key is an error that suggests the closest known one. The resolved configuration is
written to ``<logdir>/config.json`` (see :mod:`slimkit.training.saved_config`); a later run in that
logdir resumes it and is refused if it names another model, dataset or data.

Field names follow TF-Slim's ``train_image_classifier.py`` where it has one (``weight_decay``,
``label_smoothing``, ``num_epochs_per_decay``, ``checkpoint_exclude_scopes``, ...); every field is
also a ``slimkit train`` flag (``--lr-schedule`` for ``lr_schedule``).
"""

import dataclasses
import difflib
import json
import math
import os
import pathlib
import tomllib
import typing

OPTIMIZERS = ("sgd", "momentum", "adam", "adamw", "rmsprop", "adagrad", "adadelta", "ftrl")
SCHEDULES = ("fixed", "exponential", "polynomial", "piecewise", "cosine", "one-cycle")
PRECISIONS = ("fp32", "bf16", "auto")
AUGMENTATIONS = ("shift",)
SUMMARY_LEVELS = ("none", "scalars", "default", "full")  # = slimkit.summaries.training.LEVELS
# The same names as slimkit.training.distribute.STRATEGIES (a test keeps them equal); repeated here
# so that validating a config does not import TensorFlow.
STRATEGIES = ("auto", "one-device", "mirrored", "multi-worker")


def _field(default, help, **kwargs):
    return dataclasses.field(default=default, metadata={"help": help, **kwargs})


def _list_field(help):
    return dataclasses.field(default_factory=list, metadata={"help": help})


@dataclasses.dataclass
class TrainConfig:
    """The settings of one training run (see the module docstring for how they are layered).

    Every field is validated on construction; a wrong value raises ``ValueError`` naming the field,
    what was expected and what was received.

    Example:
        >>> config = TrainConfig(model="softmax_regression", optimizer="sgd", learning_rate=0.5,
        ...                      batch_size=100, steps=1000, logdir="runs/softmax")
        >>> config.total_steps(num_train=55000)
        1000
    """

    # --- what to train, on what, where
    model: typing.Optional[str] = _field(None, "model name (see `slimkit models`)")
    preset: typing.Optional[str] = _field(None, "named recipe the run started from (see presets)")
    dataset: str = _field("mnist", "dataset name (see `slimkit datasets`), or 'folder' for an "
                                   "image folder given by --data-dir")
    data_dir: typing.Optional[str] = _field(None, "folder holding the dataset's files (default: "
                                                  "SLIMKIT_DATA_DIR/<dataset>, then the user cache)")
    validation_size: int = _field(5000, "training examples held out for validation")
    image_size: typing.Optional[int] = _field(None, "image side for image folders (default: the "
                                                    "model's)")
    image_cache_mb: typing.Optional[float] = _field(
        None, "an image folder's decoded images are kept in memory if they fit in this many MiB "
              "(default: 1024, or a quarter of the memory available when the run starts if that "
              "is less; 0: not in memory)")
    image_disk_cache_mb: typing.Optional[float] = _field(
        None, "an image folder's resized images that do not fit in --image-cache-mb are kept on "
              "disk, in the user cache, if they fit in this many MiB (default: half the free "
              "space there; 0: not on disk; both 0: decode every file every epoch)")
    logdir: typing.Optional[str] = _field(None, "where checkpoints, summaries and config.json go "
                                                "(default: runs/<preset or model>)")
    seed: int = _field(0, "seed of weights, data order, augmentation and dropout")
    keep_prob: typing.Optional[float] = _field(None, "dropout keep probability, for models with "
                                                     "dropout (default: the model's)")
    model_kwargs: dict = dataclasses.field(default_factory=dict, metadata={
        "help": "extra keyword arguments for the model function, e.g. pool_padding=SAME (alexnet); "
                "KEY=VALUE,... on the command line"})
    # --- how long
    steps: typing.Optional[int] = _field(None, "number_of_steps: stop when the global step reaches "
                                               "this (default 1000, or from --epochs)")
    epochs: typing.Optional[float] = _field(None, "train for this many epochs instead of --steps")
    batch_size: int = _field(32, "global batch size (split across replicas)")
    max_time: typing.Optional[float] = _field(None, "time budget in seconds: checkpoint and stop")
    steps_per_call: int = _field(10, "training steps per compiled call (fewer host round trips)")
    # --- optimizer
    optimizer: str = _field("sgd", f"one of {', '.join(OPTIMIZERS)}")
    learning_rate: float = _field(0.01, "(peak) learning rate")
    momentum: float = _field(0.9, "momentum of the momentum optimizer")
    nesterov: bool = _field(False, "Nesterov momentum (momentum optimizer)")
    adam_beta1: float = _field(0.9, "Adam/AdamW beta1")
    adam_beta2: float = _field(0.999, "Adam/AdamW beta2")
    opt_epsilon: typing.Optional[float] = _field(None, "optimizer epsilon (default: Keras')")
    rmsprop_decay: float = _field(0.9, "RMSProp decay (rho)")
    rmsprop_momentum: float = _field(0.0, "RMSProp momentum")
    adadelta_rho: float = _field(0.95, "Adadelta decay rate")
    adagrad_initial_accumulator_value: float = _field(0.1, "Adagrad starting accumulator")
    ftrl_learning_rate_power: float = _field(-0.5, "FTRL learning rate power")
    ftrl_initial_accumulator_value: float = _field(0.1, "FTRL starting accumulator")
    ftrl_l1: float = _field(0.0, "FTRL L1 regularization strength")
    ftrl_l2: float = _field(0.0, "FTRL L2 regularization strength")
    # --- learning-rate schedule
    lr_schedule: str = _field("fixed", f"one of {', '.join(SCHEDULES)}")
    warmup_steps: typing.Optional[int] = _field(None, "linear warm-up steps (cosine: default 0; "
                                                      "one-cycle: default 30%% of the steps)")
    lr_decay_factor: float = _field(0.94, "exponential: factor per decay period")
    num_epochs_per_decay: float = _field(2.0, "exponential: epochs per decay period (staircase)")
    end_learning_rate: float = _field(0.0, "polynomial and cosine: final learning rate")
    lr_power: float = _field(1.0, "polynomial: power of the decay")
    lr_boundaries: list = _list_field("piecewise: steps where the rate changes, e.g. 1000,2000")
    lr_values: list = _list_field("piecewise: the rates, one more than boundaries")
    # --- regularization and tricks
    weight_decay: typing.Optional[float] = _field(None, "L2 weight decay through the model's "
                                                        "regularizers (default: the model's own; "
                                                        "adamw: the optimizer's decoupled decay)")
    label_smoothing: float = _field(0.0, "label smoothing of the cross entropy")
    clip_gradient_norm: float = _field(0.0, "clip gradients by this global norm (0: no clipping)")
    ema_decay: typing.Optional[float] = _field(None, "moving_average_decay: keep EMA weights, used "
                                                     "for evaluation (0: none)")
    shuffle: bool = _field(True, "shuffle the training set every epoch")
    augment: typing.Optional[str] = _field(None, "training augmentation: 'shift' (MNIST-format "
                                                 "data: random translation by up to 2 pixels) or "
                                                 "'none'")
    # --- fine-tuning
    checkpoint_path: typing.Optional[str] = _field(None, "warm-start from this checkpoint or Keras "
                                                         "weights file (if the logdir has none)")
    checkpoint_exclude_scopes: list = _list_field("scopes not restored from --checkpoint-path "
                                                  "(which it needs), e.g. fc8")
    trainable_scopes: list = _list_field("train only variables under these scopes (default: all)")
    # --- logging, summaries, checkpoints, evaluation
    log_every_n_steps: int = _field(100, "print progress every N steps")
    save_summaries_steps: typing.Optional[int] = _field(100, "write TensorBoard scalars every N steps")
    save_summaries_secs: typing.Optional[float] = _field(None, "... or every S seconds (0: not by "
                                                               "time)")
    save_every_n_steps: typing.Optional[int] = _field(None, "checkpoint every N steps")
    save_every_n_secs: typing.Optional[float] = _field(600.0, "checkpoint every S seconds (0: not by "
                                                              "time, e.g. with --save-every-n-steps)")
    summaries: str = _field("default", "TensorBoard output: none, scalars, default (scalars, "
                                       "histograms, images, graph, a profiler trace, projector, "
                                       "text, hparams) or full (heavy summaries at every summary "
                                       "point)")
    histogram_every_n_steps: typing.Optional[int] = _field(None, "histograms of weights, "
                                                                 "activations and gradients "
                                                                 "every N steps")
    histogram_every_n_secs: typing.Optional[float] = _field(120.0, "... or every S seconds (0: not "
                                                                   "by time)")
    image_every_n_steps: typing.Optional[int] = _field(None, "images (input, filters, feature "
                                                             "maps) and an evaluation every N "
                                                             "steps")
    image_every_n_secs: typing.Optional[float] = _field(120.0, "... or every S seconds (0: not by "
                                                               "time)")
    trace_every_n_steps: typing.Optional[int] = _field(None, "profiler trace of a few steps every N "
                                                             "steps (default: one after warm-up; "
                                                             "0: none)")
    keep: int = _field(5, "checkpoints to keep (keep_checkpoint_max)")
    keep_best: bool = _field(False, "also keep the checkpoint with the best validation accuracy "
                                    "in <logdir>/best (needs a validation split)")
    eval_every_n_steps: typing.Optional[int] = _field(None, "evaluate on the validation split every "
                                                            "N steps (default with --keep-best: at "
                                                            "each checkpoint)")
    eval_batch_size: int = _field(500, "batch size of evaluation")
    startup_delay_steps: int = _field(0, "Slim's startup delay of non-chief workers; must be 0 "
                                         "with synchronous multi-worker training")
    # --- runtime
    precision: str = _field("auto", "fp32, bf16 (mixed bfloat16) or auto (bf16 where it is faster "
                                    "here, by the hardware or a measurement cached per machine, "
                                    "and the model keeps its accuracy)")
    strategy: str = _field("auto", "distribution: auto, one-device, mirrored, multi-worker")
    intra_op_threads: typing.Optional[int] = _field(None, "threads inside one op (default: cores)")
    inter_op_threads: typing.Optional[int] = _field(None, "ops run in parallel (default: "
                                                          "TensorFlow's)")
    deterministic: bool = _field(True, "deterministic ops, so a resumed run matches an "
                                       "uninterrupted one")
    jit_compile: bool = _field(False, "compile each step's forward and backward pass with XLA "
                                      "(needs --no-deterministic; on a 2-core CPU it was 2-6x "
                                      "slower than without)")

    def __post_init__(self):
        _validate(self)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_sources(cls, preset=None, config_file=None, overrides=None, base=None):
        """Resolves defaults < ``base`` < preset < config file < overrides into a config.

        Args:
            preset: A preset name (see ``slimkit.training.presets``), or None. A config file may
                also name one with the key ``preset`` (the argument wins).
            config_file: Path of a ``.json`` or ``.toml`` file holding TrainConfig keys, or None.
            overrides: Mapping of keys set on the command line or by the caller (None values are
                ignored, so unset flags don't override anything).
            base: Mapping applied before the preset, e.g. a logdir's saved ``config.json``.

        Returns:
            The resolved :class:`TrainConfig`.

        Raises:
            ValueError: For an unknown key (with a suggestion), an unknown preset or a bad value.
            FileNotFoundError: If ``config_file`` does not exist.

        Example:
            >>> TrainConfig.from_sources("mnist-softmax-tutorial", overrides={"steps": 10}).steps
            10
        """
        from slimkit.training.presets import get_preset

        file_values = load_config_file(config_file) if config_file else {}
        overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
        check_keys(overrides, "overrides")
        preset = preset or overrides.get("preset") or file_values.get("preset")
        layers = [dict(base or {})]
        if preset:
            layers.append({**get_preset(preset), "preset": preset})
        layers += [file_values, overrides]
        values = {}
        for layer in layers:
            check_keys(layer, "configuration")
            for key in ("steps", "epochs"):  # the length is set by one of them, the latest layer's
                if layer.get(key) is not None:
                    values.pop("epochs" if key == "steps" else "steps", None)
            values.update(layer)
        return cls(**values)

    def to_dict(self):
        """The configuration as a JSON-serializable dict (what ``config.json`` holds)."""
        return dataclasses.asdict(self)

    # ------------------------------------------------------------------ derived values
    def total_steps(self, num_train):
        """The run's ``number_of_steps``: ``steps``, else ``epochs`` of ``num_train`` examples."""
        if self.steps is not None:
            return self.steps
        if self.epochs is not None:
            return max(1, math.ceil(self.epochs * num_train / self.batch_size))
        return 1000

    def resolved_logdir(self):
        """``logdir``, or ``runs/<preset or model>`` when unset."""
        return self.logdir or os.path.join("runs", self.preset or self.model or "run")


def field_names():
    """Names of all TrainConfig fields, in declaration order."""
    return [f.name for f in dataclasses.fields(TrainConfig)]


def check_keys(values, where):
    """Raises ValueError for a key that is not a TrainConfig field, suggesting the closest one."""
    known = field_names()
    for key in values:
        if key not in known:
            close = difflib.get_close_matches(key.replace("-", "_"), known, n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"Unknown TrainConfig key {key!r} in {where}.{hint} Known keys: "
                             f"{', '.join(known)}.")


def load_config_file(path):
    """Reads a ``.json`` or ``.toml`` config file into a dict (keys checked, values not yet).

    Example:
        >>> load_config_file("run.toml")          # a file holding: steps = 500
        {'steps': 500}
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Config file not found: {path}. Expected a .json or .toml file "
                                "holding TrainConfig keys, e.g. {\"steps\": 500}.")
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            values = json.loads(path.read_text())
        elif suffix == ".toml":
            values = tomllib.loads(path.read_text())
        else:
            raise ValueError(f"Invalid config file {str(path)!r}. Expected a .json or .toml file. "
                             f"Received a {suffix or 'suffix-less'} file.")
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise ValueError(f"Cannot parse config file {path}: {e}") from None
    if not isinstance(values, dict):
        raise ValueError(f"Invalid config file {path}. Expected a table/object of TrainConfig keys. "
                         f"Received a {type(values).__name__}.")
    # A logdir's config.json may serve as a config file: its record of the data and of the
    # model's whole form, and why the precision was chosen, are not settings.
    for note in ("data_identity", "model_form", "precision_reason"):
        values.pop(note, None)
    check_keys(values, f"config file {path}")
    return values


# ---------------------------------------------------------------------- validation
def _validate(config):
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        setattr(config, f.name, _coerce(f, value))
    c = config
    _choice(c, "optimizer", OPTIMIZERS)
    _choice(c, "lr_schedule", SCHEDULES)
    _choice(c, "precision", PRECISIONS)
    if c.augment == "none":  # (so that a flag can turn off a preset's augmentation)
        c.augment = None
    if c.augment is not None:
        _choice(c, "augment", AUGMENTATIONS + ("none",))
    _choice(c, "strategy", STRATEGIES)
    _choice(c, "summaries", SUMMARY_LEVELS)
    for name in ("batch_size", "steps_per_call", "log_every_n_steps", "keep", "eval_batch_size"):
        _positive(c, name)
    for name in ("steps", "epochs", "max_time", "save_summaries_steps", "save_every_n_steps",
                 "eval_every_n_steps", "image_size", "intra_op_threads", "inter_op_threads",
                 "histogram_every_n_steps", "image_every_n_steps"):
        if getattr(c, name) is not None:
            _positive(c, name)
    for name in ("save_summaries_secs", "save_every_n_secs", "histogram_every_n_secs",
                 "image_every_n_secs"):  # 0: off (steps only)
        if getattr(c, name) is not None and getattr(c, name) < 0:
            _bad(name, "a number of seconds >= 0 (0: not by time)", getattr(c, name))
    if c.steps is not None and c.epochs is not None:
        raise ValueError(f"Invalid TrainConfig: `steps` and `epochs` both set (steps={c.steps}, "
                         f"epochs={c.epochs}). Expected one of them: the run's length.")
    if c.learning_rate <= 0:
        _bad("learning_rate", "a strictly positive number", c.learning_rate)
    for name in ("validation_size", "startup_delay_steps", "weight_decay", "clip_gradient_norm",
                 "end_learning_rate", "image_cache_mb", "image_disk_cache_mb"):
        if getattr(c, name) is not None and getattr(c, name) < 0:
            _bad(name, "a number >= 0", getattr(c, name))
    if c.trace_every_n_steps is not None and c.trace_every_n_steps < 0:
        _bad("trace_every_n_steps", "an integer >= 0 (0: no trace)", c.trace_every_n_steps)
    if c.warmup_steps is not None and c.warmup_steps < 0:
        _bad("warmup_steps", "an integer >= 0", c.warmup_steps)
    if not 0 <= c.label_smoothing < 1:
        _bad("label_smoothing", "a number in [0, 1)", c.label_smoothing)
    if c.keep_prob is not None and not 0 < c.keep_prob <= 1:
        _bad("keep_prob", "a number in (0, 1]", c.keep_prob)
    if c.jit_compile and c.deterministic:
        raise ValueError(
            "Invalid value for `jit_compile`: XLA has no deterministic version of some gradients "
            "(max pooling's among them), and `deterministic` is on (the default, for exact "
            "resume). Expected jit_compile=False, or deterministic=False with it (--jit-compile "
            "--no-deterministic). Received jit_compile=True, deterministic=True.")
    if c.ema_decay == 0:  # (so that a flag can turn off a preset's EMA)
        c.ema_decay = None
    if c.ema_decay is not None and not 0 < c.ema_decay < 1:
        _bad("ema_decay", "a number in (0, 1), e.g. 0.999 (0: none)", c.ema_decay)
    if c.lr_schedule == "piecewise":
        if len(c.lr_values) != len(c.lr_boundaries) + 1 or list(c.lr_boundaries) != sorted(
                set(c.lr_boundaries)):
            raise ValueError(
                "Invalid piecewise schedule. Expected increasing `lr_boundaries` and one more "
                f"`lr_values` than boundaries, e.g. lr_boundaries=[1000, 2000], "
                f"lr_values=[0.1, 0.01, 0.001]. Received lr_boundaries={c.lr_boundaries}, "
                f"lr_values={c.lr_values}.")
    if c.warmup_steps and c.lr_schedule not in ("cosine", "one-cycle"):
        raise ValueError(f"Invalid value for `warmup_steps`: the {c.lr_schedule!r} schedule has no "
                         f"warm-up. Expected warmup_steps=0 or lr_schedule 'cosine' or 'one-cycle'. "
                         f"Received warmup_steps={c.warmup_steps}.")


def _coerce(f, value):
    """Checks (and mildly converts: int -> float, "a,b" -> list) one field's value."""
    tp = f.type
    optional = typing.get_origin(tp) is typing.Union
    if optional:
        if value is None:
            return None
        tp = typing.get_args(tp)[0]
    if tp is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            _bad(f.name, "a list (or a comma-separated string)", value)
        if f.name == "lr_boundaries":
            return [_scalar(f.name, v, int) for v in value]
        if f.name == "lr_values":
            return [_scalar(f.name, v, float) for v in value]
        return [str(v) for v in value]
    if tp is dict:
        if isinstance(value, str):
            value = _keyword_arguments(f.name, value)
        if not isinstance(value, dict):
            _bad(f.name, "a dict of keyword arguments (KEY=VALUE,... on the command line)", value)
        return dict(value)
    return _scalar(f.name, value, tp)


def _keyword_arguments(name, text):
    """``"pool_padding=SAME,dropout_keep_prob=0.7"`` -> ``{"pool_padding": "SAME", ...: 0.7}``
    (values that read as JSON numbers, booleans or null are those; the rest are strings)."""
    values = {}
    for item in (part.strip() for part in text.split(",") if part.strip()):
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            _bad(name, "KEY=VALUE pairs separated by commas, e.g. pool_padding=SAME", text)
        try:
            values[key.strip()] = json.loads(value.strip())
        except ValueError:
            values[key.strip()] = value.strip()
    return values


def _scalar(name, value, tp):
    if tp is bool:
        if isinstance(value, bool):
            return value
        _bad(name, "true or false", value)
    if tp is int:
        if isinstance(value, str):
            try:
                value = int(value)
            except ValueError:
                pass
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        _bad(name, "an integer", value)
    if tp is float:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        _bad(name, "a finite number", value)
    if tp is str:
        if isinstance(value, str):
            return value
        _bad(name, "a string", value)
    return value


def _choice(config, name, choices):
    value = getattr(config, name)
    if value not in choices:
        close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        _bad(name, f"one of {', '.join(choices)}", value, hint)


def _positive(config, name):
    value = getattr(config, name)
    if value <= 0:
        _bad(name, "a strictly positive number", value)


def _bad(name, expected, value, hint=""):
    raise ValueError(f"Invalid value for `{name}`. Expected {expected}. Received {name}={value!r}."
                     f"{hint}")
