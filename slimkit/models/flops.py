"""Forward-pass FLOPs of a built model, counted from its layers.

A multiply-add counts as 2 FLOPs. Counted, per image:

- ``Conv2D``: ``2 * H_out * W_out * C_out * K_h * K_w * C_in / groups`` (Keras stores the kernel
  as (K_h, K_w, C_in / groups, C_out), so this is ``2 * H_out * W_out * kernel.size``);
- ``Dense``: ``2 * inputs * outputs`` for each position it is applied at (once for 2-D inputs).

Pooling, LRN, batch normalization, activations and bias additions are not counted: each costs a
few operations per activation, under 1% of the multiply-adds in the built-in models. A layer type
that owns weights but is not known here is listed in ``FlopCount.uncounted`` rather than guessed.

    >>> import slimkit as slim
    >>> count_flops(slim.get_model("softmax_regression")).total    # 2 * 784 * 10
    15680
"""

import dataclasses
import math

import keras


@dataclasses.dataclass(frozen=True)
class FlopCount:
    """FLOPs of one forward pass of one image.

    Attributes:
        total: the sum over layers.
        per_layer: layer name -> FLOPs, for the layers that were counted, in layer order.
        uncounted: names of layers owning weights whose type this module does not know.
    """

    total: int
    per_layer: dict
    uncounted: tuple

    @property
    def mflops(self):
        """The total in millions of FLOPs."""
        return self.total / 1e6


def _positions(output_shape):
    """How many times a layer's kernel is applied per image: the product of the middle axes."""
    return math.prod(int(d) for d in output_shape[1:-1])


def layer_flops(layer):
    """FLOPs of `layer` for one image, or None if its type is not counted.

    Example:

    >>> import keras
    >>> x = keras.Input((28, 28, 1))
    >>> conv = keras.layers.Conv2D(32, 5, padding="same")
    >>> _ = conv(x)
    >>> layer_flops(conv)    # 2 * 28 * 28 * 32 * 5 * 5 * 1
    1254400
    """
    if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
        kernel_size = math.prod(int(d) for d in layer.kernel.shape)
        return 2 * _positions(layer.output.shape) * kernel_size
    return None


def count_flops(model):
    """Counts the forward FLOPs per image of a built Keras model (see the module docstring).

    Args:
        model: a built Keras model, e.g. from ``slimkit.get_model``.

    Returns:
        A :class:`FlopCount`.
    """
    per_layer, uncounted = {}, []
    for layer in _walk(model):
        flops = layer_flops(layer)
        if flops is not None:
            per_layer[layer.name] = flops
        elif layer.weights and not isinstance(layer, _FREE_WITH_WEIGHTS):
            uncounted.append(layer.name)
    return FlopCount(sum(per_layer.values()), per_layer, tuple(uncounted))


# Layers that own weights but whose cost is of the "not counted" kind (a few ops per activation).
_FREE_WITH_WEIGHTS = (keras.layers.BatchNormalization, keras.layers.LayerNormalization)


def _walk(model):
    """The model's layers in order, descending into nested models."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _walk(layer)
        else:
            yield layer
