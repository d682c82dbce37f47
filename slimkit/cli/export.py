"""`slimkit export LOGDIR|CHECKPOINT --format saved_model|keras|tflite OUT`.

Writes a model that loads without slimkit, with the EMA weights where the run kept them::

    slimkit export runs/deep-mnist-fast --format saved_model exported/deep_mnist
    slimkit export runs/deep-mnist-fast --format keras deep_mnist.keras
    slimkit export runs/deep-mnist-fast --format tflite deep_mnist.tflite

What each holds, how to call it and where the class names are: ``slimkit.export`` (module
docstring) and README. Prints what was written and its inputs and outputs (``--json``: as one
JSON object).
"""

import json


def configure(parser):
    from slimkit.export import FORMATS

    parser.add_argument("path", metavar="LOGDIR|CHECKPOINT",
                        help="a training logdir (its newest checkpoint) or a kept checkpoint "
                             "such as runs/lenet/ckpt-2000")
    parser.add_argument("out", metavar="OUT",
                        help="the SavedModel folder, .keras file or .tflite file to write")
    parser.add_argument("--format", required=True, choices=FORMATS,
                        help="saved_model (a folder), keras (a .keras file) or tflite")
    parser.add_argument("--no-ema", dest="use_ema", action="store_false",
                        help="export the raw weights even if the run kept EMA weights")
    parser.add_argument("--json", action="store_true", help="describe the export as JSON")


def run(args):
    from slimkit.export import export_model
    from slimkit.runs import load_run

    result = export_model(load_run(args.path, use_ema=args.use_ema), args.format, args.out)
    if args.json:
        print(json.dumps(result), flush=True)
        return 0
    images = result["inputs"]["images"]
    names = result["class_names"]
    shown = ", ".join(names[:10]) + (f", ... ({len(names)} classes)" if len(names) > 10 else "")
    ema = ", EMA weights" if result["ema"] else ""
    print(f"wrote {result['path']} ({result['format']}) from {result['checkpoint']} (step "
          f"{result['global_step']}{ema})\n"
          f"  input:   images float32 {tuple(images['shape'])}: {images['scaling']}\n"
          f"  outputs: {', '.join(result['outputs'])}\n"
          f"  classes: {shown}", flush=True)
    return 0
