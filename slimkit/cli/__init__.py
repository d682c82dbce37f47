"""The `slimkit` command: one subcommand per module in this package.

Each subcommand module defines ``configure(parser)`` (adds its flags) and ``run(args) -> int``.
Modules must not import TensorFlow at import time: ``slimkit --help`` has to answer at once.

A user's mistake (a bad flag value, a missing path, a corrupt file) is raised as ``ValueError`` or
an ``OSError`` subclass and printed here as one line, ``slimkit <cmd>: error: <message>``, with exit
code 2 and no traceback. Set ``SLIMKIT_DEBUG=1`` to see the traceback anyway.
"""

import argparse
import gc
import importlib
import os
import re
import sys
import tempfile

# name -> one-line help; the module is slimkit.cli.<name> (eval's module is `evaluate`).
COMMANDS = {
    "train": "train a model and write checkpoints and TensorBoard logs to a logdir",
    "eval": "evaluate a checkpoint (or a logdir's latest) on a dataset split",
    "predict": "classify image files with a trained checkpoint (probabilities and answers)",
    "inspect": "look inside a model: tensor shapes, weights, biases, gradients, activations",
    "export": "export a trained model as a SavedModel, Keras or TFLite file",
    "models": "list the registered models with input shape, parameters and FLOPs",
    "datasets": "list the datasets, their sizes and where they would be read from",
    "board": "start TensorBoard on a logdir",
}
_MODULES = {"eval": "evaluate"}
_TF_COMMANDS = {"train", "eval", "predict", "inspect", "export", "models", "board"}

# TensorFlow 2.21 logs through absl before absl is initialized, so TF_CPP_MIN_LOG_LEVEL no longer
# hides its start-up banners (oneDNN notice, CUDA stubs, "failed call to cuInit" on CPU-only
# machines). They are INFO lines or a harmless probe error; anything else is passed through.
_BANNER = re.compile(r"^(WARNING: All log messages before absl::InitializeLog|[IW]\d{4} |"
                     r"E\d{4} .*(failed call to cuInit|Unable to register cu)|To enable the following "
                     r"instructions|oneDNN custom operations)")

# Every OSError is the user's environment (missing, unwritable or full disk, name too long, a file
# where a folder belongs), never slimkit's bug: one line naming the path, like a ValueError.
USER_ERRORS = (ValueError, OSError)


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as one line and exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser():
    from slimkit import __version__

    parser = _Parser(prog="slimkit", description="Define, train, evaluate and look inside image "
                     "classifiers, the TF-Slim way, on TensorFlow 2 and Keras 3.")
    parser.add_argument("--version", action="version", version=f"slimkit {__version__}")
    # Not `required`: argparse would report a missing COMMAND before an unrecognized option
    # (`slimkit --bogus` said only "required: COMMAND"); _parse checks both, unknown ones first.
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    parser.subcommands = {}
    for name, help_text in COMMANDS.items():
        module = importlib.import_module(f"slimkit.cli.{_MODULES.get(name, name)}")
        p = parser.subcommands[name] = sub.add_parser(
            name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
        module.configure(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv=None):
    # TensorFlow's C++ start-up banners (oneDNN, CUDA stubs) are noise for a command-line user.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = _parse(build_parser(), argv)
    prog = f"slimkit {args.command}"
    if args.command in _TF_COMMANDS and os.environ["TF_CPP_MIN_LOG_LEVEL"] != "0" \
            and not os.environ.get("SLIMKIT_DEBUG"):
        _import_tensorflow_quietly()
    try:
        return int(args._run(args) or 0)
    except USER_ERRORS as e:
        if os.environ.get("SLIMKIT_DEBUG"):
            raise
        print(f"{prog}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def console_main():
    """The ``slimkit`` command (``python -m slimkit``): :func:`main`, then exit with its code.

    Before exiting, ``gc.freeze()`` moves every object to the collector's permanent generation, so
    the interpreter's last collections skip them. After a run, ~1.0 s passed from its last line to
    the process' end, 0.11-0.14 s with the freeze (a 2-core AMD EPYC Zen 5, 3 runs each).
    Everything else at exit still runs (``atexit`` handlers, module teardown, buffered files'
    flush); only the finalizers of objects in reference cycles do not, and slimkit closes its
    writers and files explicitly. Not in :func:`main`, which tests and programs call in a process
    that goes on.
    """
    code = main()
    gc.freeze()
    sys.exit(code)


def _parse(parser, argv):
    """``parser.parse_args``, but an unrecognized argument is named even when COMMAND is missing."""
    args, unknown = parser.parse_known_args(argv)
    if unknown and args.command is None:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}. Expected a COMMAND first, one "
                     f"of: {', '.join(COMMANDS)}")
    if unknown:  # `slimkit train --bogus`: the subcommand's usage error
        parser.subcommands[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command is None:
        parser.error(f"the following arguments are required: COMMAND, one of: "
                     f"{', '.join(COMMANDS)}")
    return args


def _one_line(error):
    """`[Errno 2] No such file or directory: 'x'` becomes `No such file or directory: x`.

    A rename's two paths are both named (``a -> b``); an OSError raised with a message of our own
    (one argument) is shown as is.
    """
    text = str(error)
    if isinstance(error, OSError) and error.strerror:
        text = error.strerror
        if error.filename is not None:
            text += f": {os.fsdecode(error.filename)}"
        if error.filename2 is not None:
            text += f" -> {os.fsdecode(error.filename2)}"
    return text


def _import_tensorflow_quietly():
    """Imports TensorFlow and probes its devices with stderr captured, then replays all but banners.

    Only start-up is captured: thread settings and device configuration stay possible afterwards,
    and everything TensorFlow logs later reaches stderr unfiltered.
    """
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    with tempfile.TemporaryFile() as captured:
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # the CUDA probe logs here
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines(keepends=True):
                if not _BANNER.match(line):
                    sys.stderr.write(line)
