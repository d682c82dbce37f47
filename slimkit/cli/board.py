"""`slimkit board LOGDIR [--port N] [--host ADDR]`: the real TensorBoard on a logdir.

Starts TensorBoard with every installed plugin (its own and those registered by packages, such as
``tensorboard-plugin-profile``'s Profile tab), on 127.0.0.1 by default, prints the URL and serves
until Ctrl-C. LOGDIR may be one run's logdir or a parent folder of several: TensorBoard then lists
every run as ``<logdir>/train``, ``<logdir>/test``, ... and the HParams dashboard compares them.
"""

import os
import sys
import time


def configure(parser):
    parser.add_argument("logdir", metavar="LOGDIR",
                        help="the training logdir (or a parent folder of several)")
    parser.add_argument("--port", type=int, default=6006, metavar="N",
                        help="port to serve on [6006]")
    parser.add_argument("--host", default="127.0.0.1", metavar="ADDR",
                        help="address to bind [127.0.0.1: this machine only; 0.0.0.0: all]")


def run(args):
    if not os.path.isdir(args.logdir):
        raise FileNotFoundError(f"Logdir {args.logdir!r} does not exist or is not a folder. "
                                "Expected the folder given to `slimkit train --logdir` (or a "
                                "parent folder of several).")
    if not 0 < args.port < 65536:
        raise ValueError(f"Invalid value for `--port`. Expected an integer in 1-65535. Received "
                         f"--port {args.port}.")
    import tensorboard
    from tensorboard import default, program

    board = program.TensorBoard(plugins=default.get_plugins())  # first-party + installed plugins
    board.configure(logdir=args.logdir, port=args.port, host=args.host)
    try:
        url = board.launch()  # serves in a background thread
    except program.TensorBoardPortInUseError:
        raise ValueError(f"Port {args.port} on {args.host} is already in use (another TensorBoard?). "
                         f"Expected a free port: pass another one, e.g. --port {args.port + 1}, or "
                         "stop the program that holds it.") from None
    except program.TensorBoardServerException as e:
        raise ValueError(f"TensorBoard cannot serve on {args.host}:{args.port}: {e.msg}. Check "
                         "--host (an address of this machine) and --port.") from None
    if not _has_events(args.logdir):
        print(f"note: no TensorBoard event files under {args.logdir} yet; the dashboards fill in "
              "as a run writes them", file=sys.stderr)
    print(f"TensorBoard {tensorboard.__version__} at {url} (logdir {args.logdir}; Ctrl-C to stop)",
          flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("TensorBoard stopped", file=sys.stderr)
    return 0


def _has_events(logdir):
    return any("tfevents" in name for _, _, names in os.walk(logdir) for name in names)
