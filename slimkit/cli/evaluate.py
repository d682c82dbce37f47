"""`slimkit eval LOGDIR|CHECKPOINT [--split test|validation] [--watch] [--json]`.

Rebuilds the model from the run's ``config.json``, restores the checkpoint (a logdir's newest, or
the one given; EMA weights if the run kept them) and prints the accuracy, top-5 accuracy and mean
loss, then the accuracy of every class and the confusion matrix, with the class names::

    test accuracy: 0.9812  top-5: 0.9997  loss: 0.0598  (10000 examples, step 1000, runs/lenet/ckpt-1000)

    class  accuracy  examples
    0        0.9939       980
    ...
    confusion matrix (rows: true class, columns: predicted class)
           0     1     2 ...

Models of more than 20 classes get their 10 least accurate classes instead (the whole matrix is in
``--json`` and TensorBoard). Results go to TensorBoard under ``<logdir>/eval_<split>`` at the
checkpoint's step (the confusion matrix as an image). ``--watch`` evaluates every new checkpoint
as training writes it (TF-Slim's evaluation loop). ``--json``: one JSON object per evaluation.
"""

import json
import sys

_FULL_TABLES = 20  # more classes than this: the least accurate ones only


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
    print("\n".join(report_lines(metrics)), file=sys.stdout, flush=True)


def report_lines(metrics):
    """The readable report of :func:`slimkit.evaluate`'s metrics, as lines."""
    label = "val" if metrics["split"] == "validation" else metrics["split"]
    top5 = f"  top-5: {metrics['top5_accuracy']:.4f}" if "top5_accuracy" in metrics else ""
    ema = ", EMA weights" if metrics["ema"] else ""
    lines = [f"{label} accuracy: {metrics['accuracy']:.4f}{top5}  loss: {metrics['loss']:.4f}  "
             f"({metrics['num_examples']} examples, step {metrics['global_step']}, "
             f"{metrics['checkpoint']}{ema})", ""]
    names = metrics["class_names"]
    matrix = metrics["confusion_matrix"]
    counts = [sum(row) for row in matrix]
    accuracy = metrics["per_class_accuracy"]
    classes = range(len(names))
    if len(names) > _FULL_TABLES:
        scored = [c for c in classes if accuracy[c] is not None]
        classes = sorted(scored, key=lambda c: (accuracy[c], c))[:10]
        lines.append(f"the {len(classes)} least accurate of {len(names)} classes (all of them, "
                     "and the confusion matrix: --json and TensorBoard)")
    width = max(5, *(len(names[c]) for c in classes))
    lines.append(f"{'class':<{width}}  accuracy  examples")
    for c in classes:
        shown = f"{accuracy[c]:8.4f}" if accuracy[c] is not None else "       -"
        lines.append(f"{names[c]:<{width}}  {shown}  {counts[c]:8d}")
    if len(names) <= _FULL_TABLES:
        # long names (Fashion-MNIST's "T-shirt/top") head the rows; the columns get class ids
        short = all(len(n) <= 5 for n in names)
        heads = names if short else [str(c) for c in range(len(names))]
        rows = names if short else [f"{c} {n}" for c, n in enumerate(names)]
        left = max(len(r) for r in rows) + 1
        cell = max(4, len(str(max(max(row) for row in matrix))) + 1, *(len(h) + 1 for h in heads))
        lines += ["", "confusion matrix (rows: true class, columns: predicted class)",
                  " " * left + "".join(f"{h:>{cell}}" for h in heads)]
        for name, row in zip(rows, matrix):
            lines.append(f"{name:<{left}}" + "".join(f"{v:>{cell}}" for v in row))
    return lines
