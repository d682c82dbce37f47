"""`slimkit eval LOGDIR|CHECKPOINT [--split test|validation] [--watch] [--json]`.

Rebuilds the model from the run's ``config.json``, restores the checkpoint (a logdir's newest, or
the one given; EMA weights if the run kept them) and prints ``test accuracy: 0.9234`` with the step
and checkpoint. ``--watch`` evaluates every new checkpoint as training writes it (TF-Slim's
evaluation loop) and adds the results to TensorBoard under ``<logdir>/eval_<split>``.
"""

import json
import sys


def configure(parser):
    parser.add_argument("path", metavar="LOGDIR|CHECKPOINT",
                        help="a training logdir (its newest checkpoint) or a checkpoint prefix "
                             "such as runs/lenet/ckpt-2000")
    parser.add_argument("--split", choices=("test", "validation", "val"),
                        help="which split to evaluate [test; an image folder's: validation]")
    parser.add_argument("--data-dir", metavar="DIR", help="where the dataset is, if it moved")
    parser.add_argument("--batch-size", type=int, default=500, metavar="N",
                        help="evaluation batch size [500]")
    parser.add_argument("--no-ema", dest="use_ema", action="store_false",
                        help="evaluate the raw weights even if the run kept EMA weights")
    parser.add_argument("--watch", action="store_true",
                        help="keep evaluating each new checkpoint of LOGDIR")
    parser.add_argument("--timeout", type=float, metavar="S",
                        help="with --watch: stop after S seconds without a new checkpoint")
    parser.add_argument("--json", action="store_true", help="one JSON object per evaluation")


def run(args):
    from slimkit import evaluation

    if args.batch_size <= 0:
        raise ValueError(f"Invalid value for `--batch-size`. Expected a strictly positive integer. "
                         f"Received --batch-size={args.batch_size}.")
    kwargs = dict(split=args.split, data_dir=args.data_dir, batch_size=args.batch_size,
                  use_ema=args.use_ema)
    if args.watch:
        for metrics in evaluation.watch(args.path, timeout=args.timeout, **kwargs):
            _report(metrics, args.json)
        return 0
    _report(evaluation.evaluate(args.path, **kwargs), args.json)
    return 0


def _report(metrics, as_json):
    if as_json:
        print(json.dumps(metrics, sort_keys=True), flush=True)
        return
    label = "val" if metrics["split"] == "validation" else metrics["split"]
    ema = ", EMA weights" if metrics["ema"] else ""
    print(f"{label} accuracy: {metrics['accuracy']:.4f}  (loss {metrics['loss']:.4f}, "
          f"{metrics['num_examples']} examples, step {metrics['global_step']}, "
          f"{metrics['checkpoint']}{ema})", file=sys.stdout, flush=True)
