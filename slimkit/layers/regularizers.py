"""Weight regularizers with TF-Slim's meaning.

``l2_regularizer(scale)(w) = scale * sum(w**2) / 2`` (``scale * tf.nn.l2_loss(w)``, TF-Slim's and
the AlexNet paper's weight decay), whereas ``keras.regularizers.L2(l2)(w) = l2 * sum(w**2)``: the
same number means half the penalty here. ``l1_regularizer(scale)(w) = scale * sum(|w|)``.

The returned objects are Keras regularizers, so a layer adds its penalty to ``model.losses`` and
``slimkit.losses.get_total_loss`` picks it up; they are registered for Keras serialization.
"""

import numbers

import keras
import tensorflow as tf
from keras import ops


def _check_scale(scale):
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not scale >= 0:
        raise ValueError("Invalid value for argument `scale`. Expected a number >= 0. "
                         f"Received scale={scale!r}.")
    return float(scale)


@keras.saving.register_keras_serializable(package="slimkit")
class L2Regularizer(keras.regularizers.Regularizer):
    """``scale * sum(w**2) / 2``. Create it with :func:`l2_regularizer`."""

    def __init__(self, scale):
        self.scale = _check_scale(scale)

    def __call__(self, x):
        # TensorFlow's one-kernel L2Loss (its gradient is one multiply), not sum(square(w)), which
        # writes and reads a temporary as large as the weights, and more in its gradient:
        # AlexNet's 62M weights are read and written several times per step for the penalty.
        return self.scale * tf.nn.l2_loss(tf.cast(x, tf.float32))

    def get_config(self):
        return {"scale": self.scale}


@keras.saving.register_keras_serializable(package="slimkit")
class L1Regularizer(keras.regularizers.Regularizer):
    """``scale * sum(|w|)``. Create it with :func:`l1_regularizer`."""

    def __init__(self, scale):
        self.scale = _check_scale(scale)

    def __call__(self, x):
        return self.scale * ops.sum(ops.abs(ops.cast(x, "float32")))

    def get_config(self):
        return {"scale": self.scale}


def l2_regularizer(scale):
    """Weight decay ``scale * sum(w**2) / 2``, TF-Slim's ``slim.l2_regularizer``.

    Args:
        scale: a number >= 0. With 0, returns None (no penalty), as TF-Slim does.

    Returns:
        An :class:`L2Regularizer`, or None when `scale` is 0.

    Raises:
        ValueError: if `scale` is negative or not a number.

    Example:

    >>> import numpy as np
    >>> float(l2_regularizer(0.5)(np.array([1.0, 2.0])))   # 0.5 * (1 + 4) / 2
    1.25
    """
    return L2Regularizer(scale) if _check_scale(scale) else None


def l1_regularizer(scale):
    """``scale * sum(|w|)``, TF-Slim's ``slim.l1_regularizer``; None when `scale` is 0.

    Example:

    >>> import numpy as np
    >>> float(l1_regularizer(0.1)(np.array([1.0, -2.0])))
    0.30000001192092896
    """
    return L1Regularizer(scale) if _check_scale(scale) else None


def get(regularizer):
    """None, a Keras regularizer, its name, or a callable ``f(weights) -> scalar`` (as given)."""
    if regularizer is None or isinstance(regularizer, keras.regularizers.Regularizer):
        return regularizer
    if isinstance(regularizer, (str, dict)):
        return keras.regularizers.get(regularizer)
    if callable(regularizer):
        return regularizer
    raise ValueError("Invalid regularizer. Expected a Keras regularizer, its name or a callable "
                     f"f(weights) -> scalar. Received: {regularizer!r}")
