"""`slimkit inspect LOGDIR|CHECKPOINT [--weights LAYER [--index I]] [-n N] [--png DIR] [--json]`.

The tutorials' look inside a network, for any model: every end point (rank, shape with the batch
dimension, dtype, parameters); with ``--weights`` a layer's weights and biases and their
gradients on a batch of real training examples; with ``-n`` the logits, softmax probabilities,
argmax answers and true labels of the first N test images; with ``--png DIR`` the pictures
(filters, feature maps, the weight maps of softmax regression). Any kept checkpoint of a run can
be inspected, and ``--at-init`` the untrained model, to compare early and late in training::

    slimkit inspect runs/softmax --at-init --weights logits --index 380
    slimkit inspect runs/softmax/ckpt-1000 --weights logits --index 380 -n 5
"""

import json



def configure(parser):
    parser.add_argument("path", metavar="LOGDIR|CHECKPOINT",
                        help="a training logdir (its newest checkpoint) or a kept checkpoint "
                             "such as runs/lenet/ckpt-2000")
    parser.add_argument("--weights", metavar="LAYER",
                        help="show this layer's weights, biases and their gradients")
    parser.add_argument("--index", type=int, metavar="I",
                        help="with --weights: input unit I of a fully connected layer (row I, "
                             "e.g. pixel 380) or filter I of a convolution")
    parser.add_argument("-n", type=int, default=0, metavar="N",
                        help="logits, probabilities, answers and labels of the first N test "
                             "images [0]")
    parser.add_argument("--png", metavar="DIR", help="write the pictures as PNG files into DIR")
    parser.add_argument("--at-init", action="store_true",
                        help="the untrained model (initialized as training was), no checkpoint")
    parser.add_argument("--batch-size", type=int, default=100, metavar="N",
                        help="training examples the gradients are computed on [100]")
    parser.add_argument("--data-dir", metavar="DIR", help="where the dataset is, if it moved")
    parser.add_argument("--no-ema", dest="use_ema", action="store_false",
                        help="the raw weights even if the run kept EMA weights")
    parser.add_argument("--json", action="store_true", help="the whole report as one JSON object")


def run(args):
    from slimkit.inspect import inspect_run
    from slimkit.runs import load_run

    if args.n < 0:
        raise ValueError(f"Invalid value for `-n`. Expected a positive integer. Received -n "
                         f"{args.n}.")
    loaded = load_run(args.path, data_dir=args.data_dir, at_init=args.at_init,
                      use_ema=args.use_ema)
    report = inspect_run(loaded, weights=args.weights, index=args.index, n=args.n,
                         png_dir=args.png, batch_size=args.batch_size)
    print(json.dumps(report) if args.json else "\n".join(report_lines(report)), flush=True)
    return 0


def report_lines(report):
    """The readable report of :func:`slimkit.inspect.inspect_run`, as lines."""
    run = report["run"]
    where = run["checkpoint"] or f"{run['logdir']} at initialization"
    ema = ", EMA weights" if run["ema"] else ""
    lines = [f"{run['model']}  {where}  (step {run['global_step']}, {run['precision']}{ema})  "
             f"{run['parameters']:,} parameters", ""]
    rows = [(p["name"], str(p["rank"]), _shape(p["shape"]), p["dtype"], f"{p['parameters']:,}")
            for p in report["end_points"]]
    lines += _table(("end point", "rank", "shape", "dtype", "parameters"), rows, right=(1, 4))
    if "weights" in report:
        lines += [""] + _weights_lines(report["weights"], run["class_names"])
    if "examples" in report:
        lines += [""] + _examples_lines(report["examples"], run["class_names"])
    if "pictures" in report:
        lines += ["", f"{len(report['pictures'])} pictures written:"] + [
            f"  {path}" for path in report["pictures"]]
    return lines


def _weights_lines(w, class_names):
    lines = [f"{w['layer']} ({w['type']})" + (f", {w['selects']}" if w["selects"] else "")]
    keys = [k for k in ("kernel", "bias") if k in w]
    gradients = (f"gradients on {w['examples']} training examples (loss {w['loss']:.4f}): "
                 f"{w['loss_convention']}")
    per_class = w["outputs_are_classes"] and all(
        len(list(_flatten(w[k].get("values") or []))) == len(class_names) for k in keys)
    if per_class:  # the logits layer, one input unit: one row per class, as in the tutorial
        lines += [_summary(k, w[k]) for k in keys] + ["", gradients, ""]
        heads = ["class"] + [h for k in keys for h in (k, f"d loss / d {k}")]
        columns = [list(_flatten(w[k]["values"])) for k in keys]
        gradient_columns = [list(_flatten(w[f"{k}_gradient"]["values"])) for k in keys]
        rows = [[name] + [f"{v[c]:+.6g}" for pair in zip(columns, gradient_columns)
                          for v in pair] for c, name in enumerate(class_names)]
        return lines + _table(heads, rows, right=range(1, len(heads)))
    for key in keys:
        lines += _values_lines(key, w[key])
    lines += ["", gradients]
    for key in keys:
        lines += _values_lines(f"d loss / d {key}", w[f"{key}_gradient"])
    return lines


def _summary(label, entry):
    return (f"{label} {_shape(entry['shape'])} {entry['dtype']}: mean {entry['mean']:+.4g}  "
            f"std {entry['std']:.4g}  min {entry['min']:+.4g}  max {entry['max']:+.4g}")


def _values_lines(label, entry):
    values = entry.get("values")
    if values is None:
        return [_summary(label, entry)]
    rows = values if len(entry["shape"]) >= 2 else [values]  # a 5x5 filter: 5 rows of 5
    return [_summary(label, entry)] + [
        "  " + " ".join(f"{v:+.4f}" for v in _flatten(row if isinstance(row, list) else [row]))
        for row in rows]


def _examples_lines(examples, class_names):
    many = len(class_names) > 10
    count = len(examples["images"])
    lines = [(f"the first {count} {examples['split']} images" if count > 1 else
              f"the first {examples['split']} image")
             + (" (the 5 most probable classes of each)" if many else "")]
    for row in examples["images"]:
        mark = "" if row["answer"] == row["label"] else "   <- wrong"
        lines.append(f"image {row['image']}: label {row['label_name']}, argmax "
                     f"{row['answer_name']}{mark}")
        order = sorted(range(len(class_names)), key=lambda c: -row["probabilities"][c])
        shown = order[:5] if many else range(len(class_names))
        lines.append("  class   " + "".join(f"{class_names[c][:9]:>10}" for c in shown))
        lines.append("  logits  " + "".join(f"{row['logits'][c]:>10.4f}" for c in shown))
        lines.append("  softmax " + "".join(f"{row['probabilities'][c]:>10.4f}" for c in shown))
    lines.append(f"batch of {len(examples['images'])}: accuracy {examples['accuracy']:.4f}, "
                 f"cross entropy {examples['cross_entropy']:.4f}")
    return lines


def _flatten(values):
    for v in values:
        if isinstance(v, list):
            yield from _flatten(v)
        else:
            yield v


def _shape(shape):
    return str(tuple(shape))  # (None, 28, 28, 1), (10,), ()


def _table(heads, rows, right=()):
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(heads)]

    def line(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [line(heads)] + [line(r) for r in rows]
