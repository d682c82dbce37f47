"""Weight initializers with TF-Slim's names, returning Keras initializers.

    weights_initializer=slim.truncated_normal_initializer(stddev=0.1)   # the Deep MNIST tutorial

Layer functions also accept Keras initializers, their string names (``"glorot_uniform"``) and the
initializer objects of TensorFlow itself (``tf.compat.v1.truncated_normal_initializer(stddev=0.01)``
as in the TF-Slim walkthrough, ``tf.random_normal_initializer``, ``tf.constant_initializer``, ...):
:func:`get` converts those to the equivalent Keras initializer so that models stay serializable.

:func:`get` also returns a fresh copy of every initializer: a Keras 3 initializer instance produces
the *same* values each time it is called, so one instance shared through an ``arg_scope`` would give
every layer of a given shape identical weights.
"""

import keras

_SLIM_MODES = {"FAN_IN": "fan_in", "FAN_OUT": "fan_out", "FAN_AVG": "fan_avg"}

# TensorFlow initializer class name -> Keras class name, for objects whose get_config() keys are
# the Keras constructor's keys (after dropping `dtype`). TF1 and TF2 classes share these names.
_TF_CLASSES = {
    "TruncatedNormal": "TruncatedNormal", "RandomNormal": "RandomNormal",
    "RandomUniform": "RandomUniform", "Constant": "Constant", "Zeros": "Zeros", "Ones": "Ones",
    "GlorotUniform": "GlorotUniform", "GlorotNormal": "GlorotNormal", "Orthogonal": "Orthogonal",
    "Identity": "Identity",
}


def truncated_normal_initializer(mean=0.0, stddev=1.0, seed=None):
    """Normal values, re-drawn when more than two standard deviations from the mean.

    Args:
        mean: mean of the distribution.
        stddev: standard deviation before truncation; must be positive.
        seed: optional integer; a seeded initializer gives the same values on every call.

    Returns:
        A ``keras.initializers.TruncatedNormal``.

    Example:

    >>> init = truncated_normal_initializer(stddev=0.1)
    >>> float(abs(init((1000,))).numpy().max()) <= 0.2
    True
    """
    if not stddev > 0:
        raise ValueError("Invalid value for argument `stddev`. Expected a strictly positive number. "
                         f"Received stddev={stddev}.")
    return keras.initializers.TruncatedNormal(mean=mean, stddev=stddev, seed=seed)


def constant_initializer(value=0.0):
    """Every value equal to `value` (the tutorials' bias initialization, e.g. 0.1).

    Example:

    >>> constant_initializer(0.1)((2,)).numpy().tolist()
    [0.10000000149011612, 0.10000000149011612]
    """
    return keras.initializers.Constant(value)


def xavier_initializer(uniform=True, seed=None):
    """Glorot & Bengio (2010): variance 2 / (fan_in + fan_out); TF-Slim's default for weights.

    Args:
        uniform: uniform distribution if True, else truncated normal.
        seed: optional integer seed.

    Example:

    >>> xavier_initializer()((784, 10)).shape
    TensorShape([784, 10])
    """
    return variance_scaling_initializer(1.0, "FAN_AVG", uniform, seed)


def variance_scaling_initializer(factor=2.0, mode="FAN_IN", uniform=False, seed=None):
    """Values with variance ``factor / n``, n from `mode`; the defaults are He et al. (2015).

    Args:
        factor: the variance scale (2.0 for ReLU networks).
        mode: ``"FAN_IN"``, ``"FAN_OUT"`` or ``"FAN_AVG"`` (TF-Slim's spelling; lower case works too).
        uniform: uniform distribution if True, else truncated normal (rescaled so that the variance
            after truncation is still ``factor / n``).
        seed: optional integer seed.

    Raises:
        ValueError: for an unknown `mode` or a factor that is not positive.

    Example:

    >>> variance_scaling_initializer(mode="FAN_AVG")((3, 3, 1, 8)).shape
    TensorShape([3, 3, 1, 8])
    """
    keras_mode = _SLIM_MODES.get(str(mode).upper())
    if keras_mode is None:
        raise ValueError("Invalid value for argument `mode`. Expected one of FAN_IN, FAN_OUT, "
                         f"FAN_AVG. Received mode={mode!r}.")
    if not factor > 0:
        raise ValueError("Invalid value for argument `factor`. Expected a strictly positive number. "
                         f"Received factor={factor}.")
    return keras.initializers.VarianceScaling(
        scale=factor, mode=keras_mode, distribution="uniform" if uniform else "truncated_normal",
        seed=seed)


def get(initializer):
    """Converts `initializer` to a fresh Keras initializer (None stays None).

    Accepts Keras initializers, their names or configs, TensorFlow's own initializer objects (TF1
    ``tf.compat.v1.*_initializer`` and TF2 ``tf.*_initializer``), and plain callables
    ``f(shape, dtype=None)``, which are passed through unchanged.

    Raises:
        ValueError: if `initializer` is none of these.

    Example:

    >>> import tensorflow as tf
    >>> init = get(tf.compat.v1.truncated_normal_initializer(stddev=0.01))
    >>> type(init).__name__, init.stddev
    ('TruncatedNormal', 0.01)
    """
    if initializer is None:
        return None
    if isinstance(initializer, keras.initializers.Initializer):
        return initializer.clone()
    if isinstance(initializer, (str, dict)):
        return keras.initializers.get(initializer)
    converted = _from_tensorflow(initializer)
    if converted is not None:
        return converted
    if callable(initializer):
        return initializer
    raise ValueError("Invalid initializer. Expected a Keras initializer, its name, a TensorFlow "
                     f"initializer or a callable f(shape, dtype). Received: {initializer!r}")


def _from_tensorflow(obj):
    """The Keras equivalent of a tf.compat.v1 / tf initializer object, or None."""
    module = type(obj).__module__ or ""
    name = _TF_CLASSES.get(type(obj).__name__)
    if name is None or not module.startswith("tensorflow.") or not hasattr(obj, "get_config"):
        return None
    config = {k: v for k, v in obj.get_config().items() if k != "dtype"}
    if name == "Constant" and not isinstance(config.get("value"), (int, float)):
        return None  # an array-valued constant has no portable Keras form; call it as is
    return keras.initializers.get({"class_name": name, "config": config})
