"""AlexNet as in the paper: 227x227 input, two-GPU groups, LRN, about 61M parameters.

Source: Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep Convolutional Neural
Networks", NIPS 2012, section 3 and figure 2. The paper split conv2, conv4 and conv5 across two
GPUs, each half seeing only the channels on its own GPU; ``groups=2`` reproduces those kernels
(5x5x48, 3x3x192, 3x3x192). conv3 and the fc layers see both halves.

    conv1 11x11/4, 96, VALID  (N, 55, 55, 96)   -> lrn1 -> pool1 3x3/2  (N, 27, 27, 96)
    conv2 5x5, 256, groups 2  (N, 27, 27, 256)  -> lrn2 -> pool2 3x3/2  (N, 13, 13, 256)
    conv3 3x3, 384 -> conv4 3x3, 384, groups 2 -> conv5 3x3, 256, groups 2 -> pool5 (N, 6, 6, 256)
    flatten (N, 9216) -> fc6 4096 -> dropout6 -> fc7 4096 -> dropout7 -> fc8 num_classes

The paper's "224x224" input only gives its 55x55 first layer with 227x227 and no padding (the
tutorial's note says the same); conv2 to conv5 keep their size (SAME, Caffe's pad 2 and pad 1), and
pooling overlaps (3x3, stride 2, VALID). LRN: k=2, n=5, alpha=1e-4, beta=0.75 after the ReLU of
conv1 and conv2 (``lrn(depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75)``: the paper's alpha
multiplies the plain sum, like TensorFlow's). Initialization (section 5): weights from N(0, 0.01);
biases 1 in conv2, conv4, conv5, fc6 and fc7, 0 elsewhere; weight decay 5e-4, which in the
paper's update rule is the gradient of 5e-4 * sum(w**2) / 2 (TF-Slim's l2_regularizer(5e-4)).
60,965,224 parameters at 1,000 classes.
"""

import keras

from slimkit.layers.arg_scope import arg_scope
from slimkit.layers.core import conv2d, dropout, flatten, fully_connected, lrn, max_pool2d
from slimkit.layers.initializers import constant_initializer
from slimkit.layers.regularizers import l2_regularizer
from slimkit.models.registry import register_model


def alexnet_paper_arg_scope(weight_decay=0.0005):
    """The paper's defaults: ReLU, N(0, 0.01) weights, zero biases, weight decay 5e-4.

    Args:
        weight_decay: scale of the l2 penalty (scale * sum(w**2) / 2).

    Example:

    >>> import slimkit as slim
    >>> with slim.arg_scope(alexnet_paper_arg_scope()):
    ...     pass
    """
    with arg_scope([conv2d, fully_connected], activation_fn="relu",
                   weights_initializer=keras.initializers.RandomNormal(stddev=0.01),
                   biases_initializer=constant_initializer(0.0),
                   weights_regularizer=l2_regularizer(weight_decay)):
        with arg_scope([conv2d], padding="SAME"):
            with arg_scope([max_pool2d], padding="VALID"):
                with arg_scope([lrn], depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75) as scope:
                    return scope


@register_model(image_size=227, channels=3, num_classes=1000, arg_scope_fn=alexnet_paper_arg_scope,
                source="Krizhevsky et al., NIPS 2012 (two-GPU groups, LRN)")
def alexnet_paper(images, num_classes=1000, is_training=None, dropout_keep_prob=0.5,
                  scope="alexnet_paper"):
    """The paper's AlexNet; build it inside ``alexnet_paper_arg_scope()`` (``get_model`` does).

    Args:
        images: float32 (N, 227, 227, 3), normalized.
        num_classes: number of classes.
        is_training: None follows Keras' ``training`` flag for dropout; True/False fixes it.
        dropout_keep_prob: probability of keeping a unit of fc6 and fc7 when training.
        scope: the name of the Keras model built by ``get_model`` (layer names are not prefixed).

    Returns:
        ``(logits, end_points)``; end_points holds every layer's output under its scope name.

    Example:

    >>> import slimkit as slim
    >>> slim.get_model("alexnet_paper").count_params()
    60965224
    """
    del scope  # names the Keras model (see get_model); layers keep unprefixed names
    one = constant_initializer(1.0)  # the paper's bias 1 "accelerates the early stages of learning"
    end_points = {}
    net = end_points["conv1"] = conv2d(images, 96, [11, 11], 4, padding="VALID",
                                       scope="conv1")  # (N, 55, 55, 96)
    net = end_points["lrn1"] = lrn(net, scope="lrn1")
    net = end_points["pool1"] = max_pool2d(net, [3, 3], 2, scope="pool1")  # (N, 27, 27, 96)
    net = end_points["conv2"] = conv2d(net, 256, [5, 5], groups=2, biases_initializer=one,
                                       scope="conv2")  # (N, 27, 27, 256)
    net = end_points["lrn2"] = lrn(net, scope="lrn2")
    net = end_points["pool2"] = max_pool2d(net, [3, 3], 2, scope="pool2")  # (N, 13, 13, 256)
    net = end_points["conv3"] = conv2d(net, 384, [3, 3], scope="conv3")  # (N, 13, 13, 384)
    net = end_points["conv4"] = conv2d(net, 384, [3, 3], groups=2, biases_initializer=one,
                                       scope="conv4")  # (N, 13, 13, 384)
    net = end_points["conv5"] = conv2d(net, 256, [3, 3], groups=2, biases_initializer=one,
                                       scope="conv5")  # (N, 13, 13, 256)
    net = end_points["pool5"] = max_pool2d(net, [3, 3], 2, scope="pool5")  # (N, 6, 6, 256)
    net = end_points["flatten"] = flatten(net, scope="flatten")  # (N, 9216)
    net = end_points["fc6"] = fully_connected(net, 4096, biases_initializer=one, scope="fc6")
    net = end_points["dropout6"] = dropout(net, dropout_keep_prob, is_training=is_training,
                                           scope="dropout6")
    net = end_points["fc7"] = fully_connected(net, 4096, biases_initializer=one, scope="fc7")
    net = end_points["dropout7"] = dropout(net, dropout_keep_prob, is_training=is_training,
                                           scope="dropout7")
    logits = end_points["fc8"] = fully_connected(net, num_classes, activation_fn=None,
                                                 scope="fc8")  # (N, num_classes)
    return logits, end_points
