"""`slimkit board LOGDIR`: start a real TensorBoard server on a logdir."""

import os
import sys


def configure(parser):
    parser.add_argument("logdir", help="the training logdir (or a parent of several)")
    parser.add_argument("--port", type=int, default=6006, help="port to serve on (default 6006)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")


def run(args):
    if not os.path.isdir(args.logdir):
        raise FileNotFoundError(f"logdir {args.logdir!r} does not exist; expected the folder given to "
                                "'slimkit train --logdir'")
    if not 0 < args.port < 65536:
        raise ValueError(f"Invalid value for --port. Expected 1-65535. Received port={args.port}.")
    from tensorboard import main as tb_main

    sys.argv = ["tensorboard", "--logdir", args.logdir, "--port", str(args.port), "--host", args.host]
    return tb_main.run_main() or 0
