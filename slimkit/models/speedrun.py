"""A network for the MNIST speed run: 99.2% test accuracy in about 2 epochs on a 2-core CPU.

Designed for slimkit (preset ``mnist-speedrun``), after measuring candidates side by side on a
2-core Xeon (bench/results/compare*.md): conv layers cost a 2-core CPU most in their gradients,
so the net keeps the expensive second convolution small (3x3, on 12x12 maps), and a wide fully
connected layer buys the accuracy:

    crop 2 pixels a side       (N, 24, 24, 1)    MNIST's digits sit in a centred 20x20 box
    conv 5x5, 32, SAME, ReLU   (N, 24, 24, 32)   max-pool 2x2/2   (N, 12, 12, 32)
    conv 3x3, 64, SAME, ReLU   (N, 12, 12, 64)   max-pool 2x2/2   (N, 6, 6, 64)
    flatten (N, 2304) -> fc3 512, ReLU -> logits 10

He-initialized, 1,204,618 parameters, 3.1 M multiply-adds per image (Deep MNIST: 3,274,634 and
13.9 M). Measured candidates (2 epochs, Adam one-cycle 5e-3, batch 256, EMA 0.99, all 60,000
training images): without the crop 0.9909 on the weakest seed and 25% slower; cropping 4
pixels a side (20x20) 0.9916-0.9918; a third conv layer instead of fc3 0.9908; 5x5 kernels in
conv2 0.9908-0.9928 at twice the cost; Deep MNIST itself 0.9885-0.9910 in 2 epochs.
"""

import keras

from slimkit.layers.arg_scope import arg_scope
from slimkit.layers.core import conv2d, flatten, fully_connected, max_pool2d
from slimkit.layers.initializers import variance_scaling_initializer
from slimkit.models.registry import register_model


def mnist_speedrun_arg_scope():
    """ReLU and He initialization (variance scaling 2/fan_in) for the conv and fc layers.

    Example:

    >>> import slimkit as slim
    >>> with slim.arg_scope(mnist_speedrun_arg_scope()):
    ...     pass
    """
    with arg_scope([conv2d, fully_connected], activation_fn="relu",
                   weights_initializer=variance_scaling_initializer(2.0, "FAN_IN")):
        with arg_scope([conv2d], padding="SAME") as scope:
            return scope


@register_model(image_size=28, channels=1, num_classes=10, arg_scope_fn=mnist_speedrun_arg_scope,
                source="slimkit's MNIST speed-run network (see the module docstring)")
def mnist_speedrun(images, num_classes=10, crop=2, scope="mnist_speedrun"):
    """The speed-run net; build it inside ``mnist_speedrun_arg_scope()`` (``get_model`` does).

    Args:
        images: float32 (N, 28, 28, 1) in [0, 1].
        num_classes: number of classes.
        crop: pixels cut from each side first (MNIST's border is empty).
        scope: the name of the Keras model built by ``get_model`` (layer names are not prefixed).

    Returns:
        ``(logits, end_points)``; end_points holds every layer's output under its scope name.

    Example:

    >>> import slimkit as slim
    >>> slim.get_model("mnist_speedrun").count_params()
    1204618
    """
    del scope  # names the Keras model (see get_model); layers keep unprefixed names
    end_points = {}
    net = end_points["crop"] = keras.layers.Cropping2D(crop, name="crop")(images)  # (N, 24, 24, 1)
    net = end_points["conv1"] = conv2d(net, 32, [5, 5], scope="conv1")  # (N, 24, 24, 32)
    net = end_points["pool1"] = max_pool2d(net, [2, 2], 2, scope="pool1")  # (N, 12, 12, 32)
    net = end_points["conv2"] = conv2d(net, 64, [3, 3], scope="conv2")  # (N, 12, 12, 64)
    net = end_points["pool2"] = max_pool2d(net, [2, 2], 2, scope="pool2")  # (N, 6, 6, 64)
    net = end_points["flatten"] = flatten(net, scope="flatten")  # (N, 2304)
    net = end_points["fc3"] = fully_connected(net, 512, scope="fc3")  # (N, 512)
    logits = end_points["logits"] = fully_connected(net, num_classes, activation_fn=None,
                                                    scope="logits")  # (N, 10)
    return logits, end_points
