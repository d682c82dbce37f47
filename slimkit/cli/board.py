"""`slimkit board LOGDIR`: start a real TensorBoard server on a logdir."""

import os


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
    from tensorboard import default, program

    board = program.TensorBoard(plugins=default.get_plugins())
    board.configure(logdir=args.logdir, port=args.port, host=args.host)
    return board.main()  # serves until interrupted
