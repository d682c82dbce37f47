"""Find where a NaN or infinity first appears in one training step.

When the compiled step reports a non-finite loss, the loop calls :func:`diagnose_nonfinite` on the
offending batch. It replays the step eagerly, layer by layer, and names the culprit:

1. the input batch itself (bad data);
2. else the first layer, in forward order, whose output is non-finite, and whether its own
   variables already hold non-finite values (a bad update) or its finite inputs overflowed;
3. else the loss (finite logits but non-finite loss: labels out of range, a bad loss function);
4. else the first variable whose gradient is non-finite (exploding gradients);
5. else nothing is non-finite on this batch in eager mode.

The replay runs Keras' training mode (dropout on, batch statistics), as the step does, and
restores every non-trainable variable (batch-norm moving averages) afterwards, so diagnosing
leaves the model as it found it.
"""

import keras
import numpy as np
import tensorflow as tf


def diagnose_nonfinite(model, loss_fn, images, labels):
    """Names the first layer whose output, or variable whose gradient, is non-finite.

    Args:
        model: A Keras functional model (as returned by ``slimkit.get_model``); layers of other
            models are checked as a whole.
        loss_fn: ``loss_fn(logits, labels) -> scalar``, e.g. ``slimkit.losses.sparse_softmax_cross_entropy``.
            The model's regularization losses (``model.losses``) are added to it, as in training.
        images: One batch of inputs, e.g. float32 ``(B, 28, 28, 1)``.
        labels: The batch's labels, e.g. int32 ``(B,)``.

    Returns:
        A one-line diagnosis, e.g. ``"the output of layer 'conv2' (Conv2D) is the first non-finite
        value in the forward pass (0 NaN, 640 inf of 640 values); its variable conv2/kernel holds
        1 inf"``.

    Example:
        >>> model = slimkit.get_model("deep_mnist")
        >>> diagnose_nonfinite(model, slimkit.losses.sparse_softmax_cross_entropy, images, labels)
        'no non-finite value in the forward pass, the loss or the gradients of this batch ...'
    """
    images = tf.convert_to_tensor(images)
    labels = tf.convert_to_tensor(labels)
    if images.dtype.is_floating and not _finite(images):
        return f"the input batch is non-finite ({_count(images)}): check the data, not the model"
    saved = [v.numpy() for v in model.non_trainable_variables]
    try:
        return _diagnose(model, loss_fn, images, labels)
    finally:
        for v, value in zip(model.non_trainable_variables, saved):
            v.assign(value)


def _diagnose(model, loss_fn, images, labels):
    layers, probe = _probe(model)
    variables = model.trainable_variables
    with tf.GradientTape() as tape:
        outputs = probe(images, training=True)
        logits = outputs[-1]
        # Forward order: every input of a layer is the input batch or an earlier layer's output,
        # all finite by the time a layer is reached here.
        for layer, output in zip(layers, outputs[:-1]):
            if not _finite(output):
                return _layer_message(layer, output)
        if not _finite(logits):
            return f"the model's output (logits) is non-finite ({_count(logits)})"
        bad_labels = _label_problem(logits, labels)
        if bad_labels:
            return f"the model's outputs (logits) are finite but {bad_labels}"
        loss = tf.cast(loss_fn(logits, labels), tf.float32)
        if model.losses:
            loss += tf.add_n([tf.cast(l, tf.float32) for l in model.losses])
    if not _finite(loss):
        return (f"the model's outputs (logits) are finite but the loss is {_scalar(loss)}: check the "
                "loss function and the model's regularization losses")
    grads = tape.gradient(loss, variables)
    bad = [(v, g) for v, g in zip(variables, grads) if g is not None and not _finite(g)]
    if bad:
        v, g = bad[0]
        others = f"; {len(bad) - 1} more variable(s) after it too" if len(bad) > 1 else ""
        return (f"the forward pass and the loss ({float(loss):.4g}) are finite, but the gradient of "
                f"variable {_name(v)} is the first non-finite gradient ({_count(g)}){others}: the "
                "gradients exploded; lower the learning rate or clip gradients by global norm")
    cause = ("the optimizer update (a learning rate too large?) or from reduced precision in the "
             "compiled step (try --precision fp32)" if _reduced_precision(model) else
             "the optimizer update (a learning rate too large?) or from the compiled step")
    return (f"no non-finite value in the forward pass, the loss ({float(loss):.4g}) or the gradients "
            f"of this batch when replayed eagerly: the non-finite value came from {cause}")


def _probe(model):
    """The observable layers, and a model sharing their weights that returns their outputs + logits.

    A layer is observable if it was called once (a shared layer has no single output). A model that
    is not functional can only be observed as a whole.
    """
    layers = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        try:
            layer.output  # raises for a layer used at several places (shared) or never called
        except (AttributeError, ValueError):
            continue
        layers.append(layer)
    try:
        probe = keras.Model(model.inputs, [layer.output for layer in layers] + [model.outputs[0]])
    except (AttributeError, ValueError, TypeError):
        return [], lambda x, training: [model(x, training=training)]
    return layers, probe


def _layer_message(layer, output):
    kind = type(layer).__name__
    text = (f"the output of layer {layer.name!r} ({kind}) is the first non-finite value in the "
            f"forward pass ({_count(output)})")
    broken = [v for v in layer.weights if not _finite(v)]
    if broken:
        held = ", ".join(f"{_name(v)} holds {_count(v, short=True)}" for v in broken)
        return (f"{text}; its variable {held}: a previous update made the weights non-finite "
                "(lower the learning rate, clip gradients, or resume from the last good checkpoint)")
    fp32 = ", or try --precision fp32" if _reduced_precision(layer) else ""
    return (f"{text}; its inputs and weights are finite, so the values overflowed in this layer "
            f"(lower the learning rate or normalize the inputs{fp32})")


def _reduced_precision(layer):
    """True if the layer (or model) computes in bfloat16/float16 (a mixed precision policy)."""
    return str(getattr(layer, "compute_dtype", "float32")) in ("bfloat16", "float16")


def _label_problem(logits, labels):
    """Why these labels make the loss non-finite, or "" if they look fine."""
    if labels.dtype.is_floating:  # one-hot or soft labels
        if not _finite(labels):
            return f"the labels are non-finite ({_count(labels)}): check the data"
        return ""
    if not labels.dtype.is_integer or logits.shape[-1] is None:
        return ""
    classes = int(logits.shape[-1])
    outside = (labels < 0) | (labels >= classes)
    count = int(tf.reduce_sum(tf.cast(outside, tf.int32)))
    if count:
        example = int(tf.boolean_mask(labels, outside)[0])
        return (f"{count} label(s) are outside [0, {classes}), the model's classes (e.g. {example}): "
                "check the dataset's labels and the model's num_classes")
    return ""


def _finite(x):
    x = tf.convert_to_tensor(x)
    if not x.dtype.is_floating:
        return True
    return bool(tf.reduce_all(tf.math.is_finite(tf.cast(x, tf.float32))))


def _count(x, short=False):
    x = tf.cast(tf.convert_to_tensor(x), tf.float32)
    nan = int(tf.reduce_sum(tf.cast(tf.math.is_nan(x), tf.int32)))
    inf = int(tf.reduce_sum(tf.cast(tf.math.is_inf(x), tf.int32)))
    if short:
        return " and ".join(part for part in (f"{nan} NaN" if nan else "", f"{inf} inf" if inf else "") if part)
    return f"{nan} NaN, {inf} inf of {int(np.prod(x.shape))} values"


def _scalar(x):
    return str(float(x)).lower()


def _name(variable):
    return getattr(variable, "path", None) or variable.name
