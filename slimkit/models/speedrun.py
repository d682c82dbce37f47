"""A network for the MNIST speed run: 99.2% test accuracy in 2 epochs on a 2-core CPU.

Designed for slimkit (preset ``mnist-speedrun``), after measuring candidates side by side on
2-core CPUs (bench/results/compare*.md, speedrun_step*.md): conv layers cost a 2-core CPU most in
their gradients, so the net makes the first convolution cheap (16 channels, stride 2: it computes
the 12x12 maps directly instead of 24x24 maps and a pool) and the second one small (3x3, 48
channels on 12x12 maps), and a wide fully connected layer buys the accuracy:

    crop 2 pixels a side          (N, 24, 24, 1)    MNIST's digits sit in a centred 20x20 box
    conv 5x5/2, 16, SAME, ReLU    (N, 12, 12, 16)
    conv 3x3, 48, SAME, ReLU      (N, 12, 12, 48)   max-pool 2x2/2   (N, 6, 6, 48)
    flatten (N, 1728) -> fc3 512, ReLU -> logits 10

He-initialized, 897,754 parameters, 1.9 M multiply-adds per image (Deep MNIST: 3,274,634 and
13.9 M).

This form is the default since 2026-12-06 (``conv1_stride=2, conv2=48``). In one process,
interleaved (bench/results/speedrun_step_zen5_*.md, a 2-core AMD EPYC Zen 5), its step ran 1.62x
the examples/s of the net before it (``conv1_stride=1, conv2=64``: conv1 on 24x24 maps, then a 2x2
pool) in float32, 1.35x in bfloat16, and 1.56x in float32 with oneDNN held to AVX2. The stride
alone gave 1.16-1.19x, 48 channels alone 1.27-1.35x. Test accuracy with the preset, seeds 0-4:
bfloat16 0.9919-0.9927 (mean 0.9923, compare_zen5_speedrun.md), float32 0.9921-0.9929 (mean
0.9926; ad-hoc runs, not kept); the net before it had 0.9907-0.9935 (mean 0.9924) in bfloat16 on
the same machine. Not kept (bfloat16, seeds 0-4, ad-hoc runs): 24 channels in conv1 with the
stride and 48 scored 0.9922-0.9930 but ran 1.26x (this net 1.53x in the same run) in float32 held
to AVX2; fc3 768 0.9915-0.9933.

Earlier candidates, measured on the 2-core Xeon with AMX (32 channels in conv1, stride 1, conv2 64,
2 epochs, Adam one-cycle 5e-3, batch 256, EMA 0.99, all 60,000 training images): without the crop
0.9909 on the weakest seed and 25% slower; cropping 4 pixels a side (20x20) 0.9916-0.9918; a third
conv layer instead of fc3 0.9908; 5x5 kernels in conv2 0.9908-0.9928 at twice the cost; Deep MNIST
itself 0.9885-0.9910 in 2 epochs. On the 2-core AMD EPYC with AVX-512 (fp32, 2026-12-03, 2 epochs,
seeds 1-3 or 1-5), 16 channels in conv1 instead of 32 trained 6,950 examples/s instead of 5,200
(1.34x); with one-cycle 8e-3 and label smoothing 0.1 (the preset) they scored 0.9922-0.9939 (mean
0.9928; without the smoothing 0.9918-0.9925, at 5e-3 0.9913-0.9917). Cheaper ones missed (all
stride 1): 16 and 32 channels with fc3 256 (12,800 examples/s) 0.9897-0.9908, 0.9908-0.9918 in 3
epochs; conv2 48 and fc3 256 (8,500) 0.9912-0.9914; a 3x3/3 pool2 (4x4x64, 8,200) 0.9907-0.9932.
Batch norm after the convs cost 36-39% of the examples/s.
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
                source="slimkit's MNIST speed-run network (see the module docstring)",
                earlier_forms=(("until 2026-12-06", dict(conv1_stride=1, conv2=64)),
                               ("until 2026-12-03", dict(conv1_stride=1, conv2=64, conv1=32))))
def mnist_speedrun(images, num_classes=10, crop=2, conv1=16, conv2=48, fc=512, conv1_stride=2,
                   scope="mnist_speedrun"):
    """The speed-run net; build it inside ``mnist_speedrun_arg_scope()`` (``get_model`` does).

    Args:
        images: float32 (N, 28, 28, 1) in [0, 1].
        num_classes: number of classes.
        crop: pixels cut from each side first (MNIST's border is empty).
        conv1: channels of the first convolution (5x5).
        conv2: channels of the second convolution (3x3).
        fc: units of the fully connected layer fc3.
        conv1_stride: 2: conv1 computes the 12x12 maps directly; 1: on 24x24 maps, then a 2x2/2
            max-pool (``pool1``), as the net did until 2026-12-06.
        scope: the name of the Keras model built by ``get_model`` (layer names are not prefixed).

    Returns:
        ``(logits, end_points)``; end_points holds every layer's output under its scope name.

    Example:

    >>> import slimkit as slim
    >>> slim.get_model("mnist_speedrun").count_params()
    897754
    >>> slim.get_model("mnist_speedrun", conv1_stride=1, conv2=64).count_params()  # until 12-06
    1194986
    >>> slim.get_model("mnist_speedrun", conv1_stride=1, conv2=64, conv1=32).count_params()  # 12-03
    1204618
    """
    del scope  # names the Keras model (see get_model); layers keep unprefixed names
    if isinstance(conv1_stride, bool) or conv1_stride not in (1, 2) or \
            not isinstance(conv1_stride, int):
        raise ValueError("Invalid value for argument `conv1_stride` of mnist_speedrun. Expected 1 "
                         f"or 2. Received conv1_stride={conv1_stride!r}.")
    end_points = {}
    net = end_points["crop"] = keras.layers.Cropping2D(crop, name="crop")(images)  # (N, 24, 24, 1)
    net = end_points["conv1"] = conv2d(net, conv1, [5, 5], conv1_stride,
                                       scope="conv1")  # (N, 12, 12, 16)
    if conv1_stride == 1:  # (N, 24, 24, 16) -> (N, 12, 12, 16)
        net = end_points["pool1"] = max_pool2d(net, [2, 2], 2, scope="pool1")
    net = end_points["conv2"] = conv2d(net, conv2, [3, 3], scope="conv2")  # (N, 12, 12, 48)
    net = end_points["pool2"] = max_pool2d(net, [2, 2], 2, scope="pool2")  # (N, 6, 6, 48)
    net = end_points["flatten"] = flatten(net, scope="flatten")  # (N, 1728)
    net = end_points["fc3"] = fully_connected(net, fc, scope="fc3")  # (N, 512)
    logits = end_points["logits"] = fully_connected(net, num_classes, activation_fn=None,
                                                    scope="logits")  # (N, 10)
    return logits, end_points
