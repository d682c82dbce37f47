"""A slimkit model rebuilt from stock Keras layers, so that its ``.keras`` file loads without slimkit.

    >>> stock = to_stock_keras(model)                 # same weights, same outputs (inference)
    >>> {type(layer).__module__.split(".")[0] for layer in stock.layers}
    {'keras'}

slimkit's own layer classes (:mod:`slimkit.layers.keras_layers`) are registered for Keras
serialization under the package ``slimkit``: a ``.keras`` file of a model holding them needs
slimkit to load. For inference each has a stock equivalent:

- :class:`~slimkit.layers.keras_layers.Dense`: Keras' ``Dense`` (the same forward product; only
  slimkit's gradient kernel differs);
- :class:`~slimkit.layers.keras_layers.Dropout` and ``FixedModeDropout(training=False)``: Keras'
  ``Dropout`` (inference is the identity either way);
- :class:`~slimkit.layers.keras_layers.GroupedConv2D`: Keras' ``Conv2D`` with the same ``groups``
  (the same kernel shape and results; Keras computes it with its own grouped convolution);
- :class:`~slimkit.layers.keras_layers.LocalResponseNormalization`: a small functional model of
  stock parts, ``x / (bias + alpha * sum of x**2 over the depth window) ** beta``, the window sum
  being a fixed 1x1 convolution with a band matrix (``tf.nn.local_response_normalization``'s
  definition, to float32 rounding);
- ``FixedModeBatchNormalization(training=False)``: Keras' ``BatchNormalization``.

A layer with no stock equivalent (``FixedModeDropout(training=True)``, batch normalization pinned
to batch statistics, or a user's own class) is a ``ValueError`` naming it and pointing at the
SavedModel format, which needs no Python classes. Weight regularizers and initializers are left
out: they matter for training, not for the exported model.
"""

import keras
import numpy as np

from slimkit.layers import keras_layers

_TRAINING_ONLY = ("kernel_regularizer", "bias_regularizer", "activity_regularizer",
                  "kernel_initializer", "bias_initializer", "kernel_constraint", "bias_constraint",
                  "beta_regularizer", "gamma_regularizer", "beta_initializer", "gamma_initializer",
                  "moving_mean_initializer", "moving_variance_initializer")


def to_stock_keras(model):
    """A copy of ``model`` built from stock Keras layers only, with the same weights.

    Args:
        model: A Keras functional model (e.g. from :func:`slimkit.get_model`).

    Returns:
        A ``keras.Model`` computing what ``model(x, training=False)`` computes.

    Raises:
        ValueError: If a layer has no stock equivalent; names it and suggests the SavedModel
            format.

    Example:
        >>> import slimkit as slim
        >>> stock = to_stock_keras(slim.get_model("alexnet_paper", num_classes=5))
        >>> stock.get_layer("conv2").groups, type(stock.get_layer("lrn1")).__name__
        (2, 'Functional')
    """
    stock = keras.models.clone_model(model, clone_function=lambda layer: _stock(layer, model))
    for layer in model.layers:
        if layer.weights:
            stock.get_layer(layer.name).set_weights(layer.get_weights())
    return stock


def _stock(layer, model):
    if isinstance(layer, keras_layers.LocalResponseNormalization):
        return _lrn(layer)
    if isinstance(layer, keras_layers.FixedModeDropout) and layer.fixed_training or \
            isinstance(layer, keras_layers.FixedModeBatchNormalization) and layer.fixed_training:
        raise ValueError(_refusal(layer, model, "it is pinned to training mode "
                                                "(is_training=True), which stock Keras cannot "
                                                "express"))
    config = {k: v for k, v in layer.get_config().items() if k not in _TRAINING_ONLY}
    config.pop("training", None)  # the Fixed* classes' own key
    if isinstance(layer, keras_layers.Dense):
        return keras.layers.Dense.from_config(config)
    if isinstance(layer, keras_layers.Dropout):
        return keras.layers.Dropout.from_config(config)
    if isinstance(layer, keras_layers.GroupedConv2D):
        return keras.layers.Conv2D.from_config(config)
    if isinstance(layer, keras_layers.FixedModeBatchNormalization):
        return keras.layers.BatchNormalization.from_config(config)
    if not type(layer).__module__.startswith("keras."):
        raise ValueError(_refusal(layer, model, f"its class {type(layer).__qualname__} is not a "
                                                "stock Keras layer"))
    return type(layer).from_config(config)


def _refusal(layer, model, why):
    return (f"Cannot write model `{model.name}` as a .keras file that loads without slimkit: "
            f"layer `{layer.name}` has no stock Keras equivalent ({why}). Export it with "
            "--format saved_model (or tflite), which needs no Python classes to load.")


def _lrn(layer):
    """``tf.nn.local_response_normalization`` of ``layer``'s settings, from stock parts."""
    from keras import ops

    channels = int(layer.input.shape[-1])
    inputs = keras.Input(layer.input.shape[1:], name=f"{layer.name}_input")
    squares = ops.square(ops.cast(inputs, "float32"))  # (N, H, W, C)
    window = keras.layers.Conv2D(channels, 1, use_bias=False, trainable=False, dtype="float32",
                                 name=f"{layer.name}_window_sum")
    summed = window(squares)  # sum of squares over channels c - r .. c + r
    band = np.zeros((1, 1, channels, channels), np.float32)
    r = int(layer.depth_radius)
    for c in range(channels):
        band[0, 0, max(0, c - r):c + r + 1, c] = 1.0
    window.set_weights([band])
    scale = ops.power(float(layer.bias) + float(layer.alpha) * summed, float(layer.beta))
    outputs = ops.cast(ops.divide(ops.cast(inputs, "float32"), scale), inputs.dtype)
    return keras.Model(inputs, outputs, name=layer.name)
