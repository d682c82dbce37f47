"""Classification losses computed from logits, in float32, in a numerically stable way.

The MNIST tutorial's first loss, ``-tf.reduce_sum(y_ * tf.log(tf.nn.softmax(y)))``, takes the log of
a softmax that has already rounded to 0 for a confidently wrong class: log(0) = -inf, and
0 * -inf = NaN for the other classes. The tutorial itself then recommends
``tf.nn.softmax_cross_entropy_with_logits``, which uses ``log_softmax(z) = z - logsumexp(z)`` and
never forms the small probability; these functions do the same (``tests/models/test_losses.py``
shows both on saturated logits).

    loss = slim.losses.sparse_softmax_cross_entropy(logits, labels)
    total = slim.losses.get_total_loss(model, loss)      # + weight decay of the model's layers
"""

import tensorflow as tf


def softmax_cross_entropy(logits, onehot_labels, label_smoothing=0.0):
    """Mean over the batch of ``-sum(onehot_labels * log_softmax(logits))``.

    Args:
        logits: (N, num_classes), any float dtype (computed in float32).
        onehot_labels: (N, num_classes) probabilities (one-hot or soft labels).
        label_smoothing: in [0, 1); labels become ``labels * (1 - s) + s / num_classes``
            (TF-Slim's rule).

    Returns:
        A float32 scalar.

    Raises:
        ValueError: for a label_smoothing outside [0, 1) or mismatched shapes.

    Example:

    >>> import numpy as np
    >>> float(softmax_cross_entropy(np.array([[0.0, 0.0]]), np.array([[1.0, 0.0]])))  # log 2
    0.6931471824645996
    """
    if not 0 <= label_smoothing < 1:
        raise ValueError("Invalid value for argument `label_smoothing`. Expected a number in "
                         f"[0, 1). Received label_smoothing={label_smoothing!r}.")
    logits = tf.cast(logits, tf.float32)
    labels = tf.cast(onehot_labels, tf.float32)
    if logits.shape.rank is not None and labels.shape.rank is not None:
        if not logits.shape.is_compatible_with(labels.shape):
            raise ValueError("Invalid value for argument `onehot_labels`. Expected the shape of the "
                             f"logits {logits.shape}. Received shape {labels.shape}; for integer "
                             "class ids use sparse_softmax_cross_entropy.")
    if label_smoothing:
        num_classes = tf.cast(tf.shape(labels)[-1], tf.float32)
        labels = labels * (1.0 - label_smoothing) + label_smoothing / num_classes
    return tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=labels, logits=logits))


def sparse_softmax_cross_entropy(logits, labels):
    """Mean over the batch of ``-log_softmax(logits)[label]`` for integer class ids.

    Args:
        logits: (N, num_classes), any float dtype (computed in float32).
        labels: (N,) (or (N, 1)) integer class ids in [0, num_classes).

    Returns:
        A float32 scalar.

    Example:

    >>> import numpy as np
    >>> float(sparse_softmax_cross_entropy(np.array([[0.0, 0.0]]), np.array([1])))
    0.6931471824645996
    """
    logits = tf.cast(logits, tf.float32)
    labels = tf.cast(labels, tf.int32)
    if labels.shape.rank == 2 and labels.shape[1] == 1:  # (N, 1) class ids, as TF-Slim accepts
        labels = tf.squeeze(labels, axis=1)
    if labels.shape.rank is not None and labels.shape.rank != 1:
        raise ValueError("Invalid value for argument `labels`. Expected a 1-D tensor of class ids "
                         f"(N,). Received shape {labels.shape}; for one-hot labels use "
                         "softmax_cross_entropy.")
    return tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))


def get_regularization_loss(model):
    """The sum of `model.losses` (weight decay of its layers) as a float32 scalar (0 if none).

    Example:

    >>> import keras
    >>> float(get_regularization_loss(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])))
    0.0
    """
    losses = [tf.cast(loss, tf.float32) for loss in model.losses]
    return tf.add_n(losses) if losses else tf.constant(0.0, tf.float32)


def get_total_loss(model, loss):
    """`loss` (a scalar or a list of scalars) plus the model's regularization losses.

    Args:
        model: a Keras model; its ``losses`` hold the penalties of ``weights_regularizer``.
        loss: the data loss, e.g. from :func:`sparse_softmax_cross_entropy`.

    Returns:
        A float32 scalar.

    Example:

    >>> import slimkit as slim
    >>> model = slim.get_model("softmax_regression")
    >>> float(get_total_loss(model, 1.0))   # softmax_regression has no weight decay
    1.0
    """
    losses = loss if isinstance(loss, (list, tuple)) else [loss]
    total = tf.add_n([tf.cast(x, tf.float32) for x in losses])
    return total + get_regularization_loss(model)
