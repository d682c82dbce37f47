"""Look inside a trained model, as the tutorials do: tensors, weights, gradients, answers, pictures.

    >>> run = slimkit.load_run("runs/mnist-softmax-tutorial")
    >>> report = inspect_run(run, weights="logits", index=380, n=5)
    >>> report["end_points"][-1]
    {'name': 'logits', 'rank': 2, 'shape': [None, 10], 'dtype': 'float32', 'parameters': 7850}
    >>> len(report["weights"]["kernel"]["values"])          # W[380]: pixel 380, ten digits
    10
    >>> report["examples"]["accuracy"], report["examples"]["cross_entropy"]
    (1.0, 0.2164)

The report (a JSON-serializable dict) has these parts:

- ``end_points``: every end point of the model (input first): rank, shape with the batch
  dimension (None), dtype and the parameters of the layer that made it;
- ``weights`` (``weights=LAYER``): the layer's kernel and bias, and their gradients on a batch
  of real training examples (the first ``batch_size`` of the training split, preprocessed as for
  evaluation, dropout off). The gradients are of slimkit's training loss: the *mean* cross
  entropy over the batch (label-smoothed if the run was) plus the weight decay. The tutorials'
  ``-tf.reduce_sum(y_ * tf.log(y))`` is the *sum* over the batch: its gradients are
  ``batch_size`` times larger (100 times at batch 100). ``index=I`` selects, for a fully
  connected layer, input unit I (row I of the kernel: ``W[380]`` is pixel 380's weight for each
  class) and for a convolution filter I (``kernel[..., I]``, ``bias[I]``);
- ``examples`` (``n=N``): the first N images of the evaluation split with their logits, softmax
  probabilities, argmax answer and true label, then the batch's accuracy and mean cross entropy;
- ``pictures`` (``png_dir=DIR``): the PNG files written: the filters of every conv layer, the
  input image and its feature maps at every end point with a spatial extent, and for a linear
  model on the pixels (softmax regression) one heat map per class of its weights (positive red,
  negative blue), all drawn by :mod:`slimkit.summaries.images`, as in TensorBoard.

A run's kept checkpoints (``load_run("runs/x/ckpt-100")``) and ``load_run(..., at_init=True)``
(the untrained model, initialized as training was) give the same report early and late in
training.
"""

import difflib
import pathlib

import numpy as np

_SHOWN = 100  # values listed in full up to this many; above, summary statistics only


def inspect_run(run, weights=None, index=None, n=0, png_dir=None, batch_size=100):
    """The "look inside" report of a loaded run (see the module docstring).

    Args:
        run: A :class:`slimkit.runs.Run`.
        weights: A layer name (``logits``, ``conv1``, ...) to show weights and gradients of.
        index: With ``weights``: the input unit (fully connected) or filter (convolution).
        n: Show the logits and probabilities of the first ``n`` evaluation images.
        png_dir: Write the pictures into this folder.
        batch_size: Training examples the gradients are computed on.

    Returns:
        A JSON-serializable dict: ``run``, ``end_points`` and, as asked, ``weights``,
        ``examples``, ``pictures``.

    Raises:
        ValueError: For an unknown layer (listing those with weights), an index out of range,
            or an ``n`` or ``batch_size`` that is not a positive number.
        OSError: If a picture cannot be written (one line naming the file).
    """
    report = {"run": _run_summary(run), "end_points": end_points(run.model)}
    if weights is not None:
        report["weights"] = layer_weights(run, weights, index, batch_size)
    elif index is not None:
        raise ValueError("`index` selects weights of a layer: pass `weights` (--weights LAYER) "
                         "with it.")
    if n:
        report["examples"] = examples(run, n)
    if png_dir is not None:
        report["pictures"] = write_pictures(run, png_dir)
    return report


def _run_summary(run):
    return {"model": run.config.model, "checkpoint": run.checkpoint,
            "global_step": run.global_step, "ema": run.ema, "precision": run.precision,
            "logdir": str(run.logdir), "parameters": int(run.model.count_params()),
            "class_names": list(run.class_names), "image_shape": list(run.image_shape)}


def end_points(model):
    """``[{name, rank, shape, dtype, parameters}]`` of the input and every end point."""
    points = {"images": model.input, **getattr(model, "end_points", {})}
    if len(points) == 1:  # a model without end_points: its layers' outputs
        points.update((layer.name, layer.output) for layer in model.layers[1:])
    rows = []
    for name, tensor in points.items():
        layer = _layer_or_none(model, name)
        rows.append({"name": name, "rank": len(tensor.shape),
                     "shape": [None if d is None else int(d) for d in tensor.shape],
                     "dtype": str(tensor.dtype),
                     "parameters": int(layer.count_params()) if layer is not None else 0})
    return rows


def _layer_or_none(model, name):
    try:
        return model.get_layer(name)
    except ValueError:
        return None


# ---------------------------------------------------------------------------- weights, gradients
def layer_weights(run, name, index=None, batch_size=100):
    """A layer's kernel and bias (or the part ``index`` selects), and their gradients."""
    import tensorflow as tf

    layer = _weighted_layer(run.model, name)
    _check_positive("batch_size", batch_size)
    kernel, bias = getattr(layer, "kernel", None), getattr(layer, "bias", None)
    conv = kernel is not None and len(kernel.shape) == 4
    if index is not None:
        size = int(kernel.shape[-1] if conv else kernel.shape[0])
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < size:
            what = "a filter" if conv else "an input unit"
            raise ValueError(f"Invalid value for `index`. Expected {what} of layer `{name}`, "
                             f"from 0 to {size - 1}. Received index={index!r}.")
    images, labels = _training_batch(run, batch_size)
    variables = [v for v in (kernel, bias) if v is not None]
    with tf.GradientTape() as tape:
        loss = _training_loss(run, images, labels)
    gradients = tape.gradient(loss, variables)
    last = [x for x in run.model.layers if getattr(x, "kernel", None) is not None][-1]
    result = {"layer": name, "type": type(layer).__name__, "index": index,
              "outputs_are_classes": layer is last and int(kernel.shape[-1]) == run.num_classes,
              "selects": (None if index is None else
                          f"filter {index}" if conv else f"input unit {index} (row {index})"),
              "loss": float(loss), "examples": int(len(labels)),
              "loss_convention": ("slimkit's training loss: the mean cross entropy over the batch "
                                  "+ weight decay (dropout off); the tutorials' "
                                  "-reduce_sum(y_ * log(y)) sums over the batch, so its gradients "
                                  f"are {len(labels)} times these")}
    for key, variable, gradient in zip(("kernel", "bias"), variables, gradients):
        if variable is None:
            continue
        value, grad = np.asarray(variable.numpy(), np.float64), np.asarray(gradient, np.float64)
        if index is not None and (key == "kernel" or conv):
            value, grad = (value[..., index], grad[..., index]) if conv else (value[index],
                                                                              grad[index])
        result[key] = _values(variable, value)
        result[f"{key}_gradient"] = _values(variable, grad)
    return result


def _weighted_layer(model, name):
    layers = [layer for layer in model.layers if getattr(layer, "kernel", None) is not None]
    for layer in layers:
        if layer.name == name:
            return layer
    names = [layer.name for layer in layers]
    close = difflib.get_close_matches(str(name), names, n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"Model `{model.name}` has no layer {name!r} with weights.{hint} Expected one "
                     f"of: {', '.join(names)}.")


def _values(variable, array):
    entry = {"shape": list(array.shape), "dtype": str(variable.dtype),
             "mean": float(array.mean()), "std": float(array.std()),
             "min": float(array.min()), "max": float(array.max())}
    if array.size <= _SHOWN:
        entry["values"] = np.round(array, 8).tolist()
    return entry


def _training_batch(run, batch_size):
    data = run.data()
    images, labels = next(iter(data.eval_batches("train", batch_size)))
    return images, labels


def _training_loss(run, images, labels):
    """slimkit's training loss of a batch (the train step's, with dropout off)."""
    import tensorflow as tf

    from slimkit.losses import get_total_loss
    from slimkit.training.step import make_loss_fn

    loss_fn = make_loss_fn(run.num_classes, run.config.label_smoothing)
    logits = tf.cast(run.model(images, training=False), tf.float32)
    return get_total_loss(run.model, loss_fn(logits, tf.constant(labels, tf.int32)))


# ---------------------------------------------------------------------------- answers
def examples(run, n):
    """Logits, probabilities, answers and labels of the first ``n`` evaluation images."""
    import tensorflow as tf

    _check_positive("n", n)
    data = run.data()
    split = data.final_split
    images, labels = next(iter(data.eval_batches(split, n)))
    labels = np.asarray(labels, np.int64)
    logits = tf.cast(run.model(images, training=False), tf.float32)
    probabilities = tf.nn.softmax(logits).numpy()
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits).numpy()
    answers = probabilities.argmax(axis=1)
    rows = [{"image": i, "label": int(labels[i]), "label_name": run.class_names[labels[i]],
             "answer": int(answers[i]), "answer_name": run.class_names[answers[i]],
             "logits": np.round(logits.numpy()[i], 6).tolist(),
             "probabilities": np.round(probabilities[i], 6).tolist()}
            for i in range(len(labels))]
    return {"split": split, "images": rows, "accuracy": float((answers == labels).mean()),
            "cross_entropy": float(losses.mean())}


# ---------------------------------------------------------------------------- pictures
def write_pictures(run, folder):
    """Writes the model's pictures as PNG files into ``folder``; returns their paths.

    ``filters_<layer>.png`` for every conv layer, ``input.png`` (the first evaluation image) and
    ``feature_maps_<end point>.png`` for its every end point with a spatial extent, and
    ``weights_<layer>.png`` (heat maps by class) when the first layer is linear on the pixels.
    """
    import keras

    from slimkit.summaries import images as pictures

    folder = pathlib.Path(folder)
    model, written = run.model, []
    weighted = [layer for layer in model.layers if getattr(layer, "kernel", None) is not None]
    for layer in weighted:
        if len(layer.kernel.shape) == 4:
            written.append(_save_png(folder / f"filters_{layer.name}.png",
                                     pictures.filter_grid(layer.kernel.numpy())))
    first = weighted[0] if weighted else None
    if first is not None and len(first.kernel.shape) == 2 \
            and first.kernel.shape[0] == int(np.prod(run.image_shape)):  # softmax regression
        written.append(_save_png(folder / f"weights_{first.name}.png", pictures.weight_heatmaps(
            first.kernel.numpy(), run.image_shape, run.class_names)))
    data = run.data()
    image, _ = next(iter(data.eval_batches(data.final_split, 1)))
    written.append(_save_png(folder / "input.png", pictures.display_images(image)[0]))
    spatial = {name: tensor for name, tensor in getattr(model, "end_points", {}).items()
               if len(tensor.shape) == 4}
    if spatial:
        maps = keras.Model(model.input, spatial)(image, training=False)
        for name in spatial:
            written.append(_save_png(folder / f"feature_maps_{name}.png",
                                     pictures.feature_map_grid(np.asarray(maps[name][0],
                                                                          np.float32))))
    return written


def _save_png(path, image):
    """Writes one picture: every file ``inspect`` writes goes through here (one-line faults)."""
    from slimkit.outputs import write_output
    from slimkit.summaries.images import to_png

    data = to_png(image)
    return write_output(path, lambda tmp: tmp.write_bytes(data), "--png folder")


def _check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"Invalid value for `{name}`. Expected a strictly positive integer. "
                         f"Received {name}={value!r}.")
