"""Classification metrics of a model over batches: accuracy, top-5, loss, per class, confusion.

    >>> metrics = evaluate_model(model, data.eval_batches("test", 500), num_classes=10,
    ...                          keep_misclassified=16)
    >>> metrics["accuracy"], metrics["confusion_matrix"][7][2]    # 7s taken for 2s
    (0.9921, 4)

One compiled function per model computes, per batch, the summed cross entropy, the predicted
classes and the top-5 hits; the host adds them up into the confusion matrix. The training loop
(periodic and final evaluation), ``slimkit eval`` and TensorBoard's gallery of misclassified
examples all read these numbers, so what ``eval`` prints for a checkpoint is what training
reported for it.
"""

import numpy as np


def evaluate_model(model, batches, num_classes=None, keep_misclassified=0):
    """Evaluates ``model`` (logits out) over ``batches`` of ``(images, labels)``.

    Args:
        model: A Keras model returning logits (any float dtype; computed in float32 after it).
        batches: Iterable of ``(images float32 (b, H, W, C), labels int (b,))``.
        num_classes: Number of classes (default: the model's output width).
        keep_misclassified: Keep the first this many misclassified examples (for a gallery).

    Returns:
        A dict: ``accuracy``, ``loss`` (mean cross entropy), ``num_examples``, ``top5_accuracy``
        (only with more than 5 classes), ``per_class_accuracy`` (list by class id; None for a class
        without examples), ``confusion_matrix`` (list of lists, ``[true][predicted]`` counts) and,
        with ``keep_misclassified``, ``misclassified``: ``{"images": array (n, H, W, C),
        "labels": array (n,), "predictions": array (n,)}``.

    Raises:
        ValueError: If ``batches`` holds no examples.

    Example:
        >>> evaluate_model(model, [(images, labels)])["accuracy"]
        0.92
    """
    import tensorflow as tf

    num_classes = int(num_classes or model.output.shape[-1])
    step = _eval_step(model)
    confusion = np.zeros((num_classes, num_classes), np.int64)
    loss_sum, top5, count = 0.0, 0, 0
    kept = {"images": [], "labels": [], "predictions": []}
    for images, labels in batches:
        labels = np.asarray(labels, np.int32).reshape(-1)
        loss, predictions, hits = step(tf.convert_to_tensor(images), tf.constant(labels))
        predictions = predictions.numpy()
        loss_sum += float(loss)
        top5 += int(hits)
        count += len(labels)
        np.add.at(confusion, (labels, predictions), 1)
        missed = np.flatnonzero(predictions != labels)
        room = keep_misclassified - len(kept["labels"])
        if room > 0 and len(missed):
            chosen = missed[:room]
            kept["images"].extend(np.asarray(images)[chosen])
            kept["labels"].extend(labels[chosen])
            kept["predictions"].extend(predictions[chosen])
    if count == 0:
        raise ValueError("Nothing to evaluate: the split has no examples.")
    per_class = confusion.sum(axis=1)
    metrics = {
        "accuracy": int(np.trace(confusion)) / count,
        "loss": loss_sum / count,
        "num_examples": count,
        "per_class_accuracy": [float(confusion[c, c] / n) if n else None
                               for c, n in enumerate(per_class)],
        "confusion_matrix": confusion.tolist(),
    }
    if num_classes > 5:
        metrics["top5_accuracy"] = top5 / count
    if keep_misclassified:
        metrics["misclassified"] = {key: np.asarray(value) for key, value in kept.items()}
    return metrics


def _eval_step(model):
    """A compiled ``(images, labels) -> (summed loss, predictions, top-5 hits)`` for ``model``."""
    step = getattr(model, "_slimkit_eval_step", None)
    if step is not None:
        return step
    import tensorflow as tf

    k = min(5, int(model.output.shape[-1]))

    @tf.function(reduce_retracing=True)
    def step(images, labels):
        logits = tf.cast(model(images, training=False), tf.float32)
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        predictions = tf.argmax(logits, axis=-1, output_type=tf.int32)
        hits = tf.math.in_top_k(labels, logits, k)
        return tf.reduce_sum(losses), predictions, tf.reduce_sum(tf.cast(hits, tf.int32))

    model._slimkit_eval_step = step  # one trace per model, reused by periodic evaluations
    return step
