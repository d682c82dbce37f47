"""`slimkit predict LOGDIR|CHECKPOINT FILE|FOLDER... [--top-k K] [--json] [--save-preprocessed DIR]`.

One line per image file with the most probable classes::

    seven.jpg: 7 (0.9731)  1 (0.0154)  9 (0.0042)

``--json``: one JSON object per line, ``{"file": ..., "top": [{"class": ..., "probability": ...}]}``.
A file that cannot be read or decoded (or, for an MNIST model, shows no digit) gets its own error
line naming it (``--json``: ``{"file": ..., "error": ...}``), the others are still predicted, and
the exit code is then 1. An MNIST-format model sees each picture as an MNIST digit (cropped,
fitted into 20x20, centred); an image-folder model its training's evaluation preprocessing.
``--save-preprocessed DIR`` writes what the model saw as PNG files.
"""

import json
import sys


def configure(parser):
    parser.add_argument("path", metavar="LOGDIR|CHECKPOINT",
                        help="a training logdir (its newest checkpoint) or a checkpoint prefix "
                             "such as runs/lenet/ckpt-2000")
    parser.add_argument("files", nargs="+", metavar="FILE|FOLDER",
                        help="image files (PNG, JPEG, BMP, GIF), or folders of them")
    parser.add_argument("--top-k", type=int, default=3, metavar="K",
                        help="classes shown per file, most probable first [3]")
    parser.add_argument("--json", action="store_true", help="one JSON object per file")
    parser.add_argument("--save-preprocessed", metavar="DIR",
                        help="write what the model saw, as PNG files, into DIR")
    parser.add_argument("--no-ema", dest="use_ema", action="store_false",
                        help="use the raw weights even if the run kept EMA weights")


def run(args):
    from slimkit.prediction import predict_files
    from slimkit.runs import load_run

    if args.top_k < 1:
        raise ValueError(f"Invalid value for `--top-k`. Expected a strictly positive integer. "
                         f"Received --top-k={args.top_k}.")
    loaded = load_run(args.path, use_ema=args.use_ema)
    failed = 0
    for answer in predict_files(loaded, args.files, args.top_k, args.save_preprocessed):
        failed += "error" in answer
        if args.json:
            print(json.dumps(answer), flush=True)
        elif "error" in answer:
            print(f"slimkit predict: error: {answer['file']}: {answer['error']}", file=sys.stderr,
                  flush=True)
        else:
            top = "  ".join(f"{t['class']} ({t['probability']:.4f})" for t in answer["top"])
            print(f"{answer['file']}: {top}", flush=True)
    return 1 if failed else 0
