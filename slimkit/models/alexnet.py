"""AlexNet in one tower, the form of TensorFlow's AlexNet tutorial, with the paper's layer sizes.

Sources: Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep Convolutional Neural
Networks", NIPS 2012; TensorFlow's tutorial ``models/tutorials/image/alexnet/alexnet_benchmark.py``,
which builds AlexNet as a single tower on 224x224x3 images with SAME convolutions:

    conv1 11x11/4, 96    (N, 56, 56, 96)   -> lrn1 -> pool1 3x3/2  (N, 27, 27, 96)
    conv2 5x5, 256       (N, 27, 27, 256)  -> lrn2 -> pool2 3x3/2  (N, 13, 13, 256)
    conv3 3x3, 384 -> conv4 3x3, 384 -> conv5 3x3, 256 (N, 13, 13, 256) -> pool5 (N, 6, 6, 256)
    flatten (N, 9216) -> fc6 4096 -> dropout6 -> fc7 4096 -> dropout7 -> fc8 num_classes

62,378,344 parameters at 1,000 classes (one tower has no groups, hence more than the paper's 61M:
see ``alexnet_paper``). ``pool_padding="SAME"`` gives the form of the AlexNet tutorial article
(3x3/2 pools with SAME padding: 28, 14, 7; pool5 7x7x256, 76,009,832 parameters). Differences from the tutorial, which was a timing benchmark:
- its filter counts were 64-192-384-256-256 ("one weird trick" sizes); these are the paper's;
- it stopped at pool5; the paper's classifier (fc6-fc8 with dropout 0.5) is added;
- it left LRN out (a TODO in its code: no GPU kernel then); this has the paper's LRN after conv1
  and conv2, n=5 (``lrn(depth_radius=2, bias=2, alpha=1e-4, beta=0.75)``, see
  ``slimkit.layers.core.lrn``);
- its weights came from a truncated normal with stddev 0.1, fine for timing but not for training
  eight ReLU layers without normalization; this uses He et al. (2015) initialization and zero
  biases, and the paper's weight decay 5e-4 (in TF-Slim's meaning, 5e-4 * sum(w**2) / 2).
"""

from slimkit.layers.arg_scope import arg_scope
from slimkit.layers.core import conv2d, dropout, flatten, fully_connected, lrn, max_pool2d
from slimkit.layers.initializers import variance_scaling_initializer
from slimkit.layers.regularizers import l2_regularizer
from slimkit.models.registry import register_model


def alexnet_arg_scope(weight_decay=0.0005):
    """ReLU, He-initialized conv and fc layers with l2 weight decay; SAME convs, VALID pools.

    Args:
        weight_decay: scale of the l2 penalty (scale * sum(w**2) / 2); the paper's 5e-4.

    Example:

    >>> import slimkit as slim
    >>> with slim.arg_scope(alexnet_arg_scope(weight_decay=0)):
    ...     pass
    """
    with arg_scope([conv2d, fully_connected], activation_fn="relu",
                   weights_initializer=variance_scaling_initializer(2.0, "FAN_IN"),
                   weights_regularizer=l2_regularizer(weight_decay)):
        with arg_scope([conv2d], padding="SAME"):
            with arg_scope([max_pool2d], padding="VALID") as scope:
                return scope


@register_model(image_size=224, channels=3, num_classes=1000, arg_scope_fn=alexnet_arg_scope,
                source="TF AlexNet tutorial (single tower), Krizhevsky et al. NIPS 2012")
def alexnet(images, num_classes=1000, is_training=None, dropout_keep_prob=0.5, pool_padding="VALID",
            scope="alexnet"):
    """Single-tower AlexNet; build it inside ``alexnet_arg_scope()`` (``get_model`` does).

    Args:
        images: float32 (N, 224, 224, 3), normalized.
        num_classes: number of classes.
        is_training: None follows Keras' ``training`` flag for dropout; True/False fixes it.
        dropout_keep_prob: probability of keeping a unit of fc6 and fc7 when training.
        pool_padding: ``"VALID"`` (the paper's overlapping pools: pool5 is 6x6x256, 62,378,344
            parameters at 1,000 classes) or ``"SAME"``, the form of the AlexNet tutorial article
            (pools 28, 14, 7: pool5 is 7x7x256, 76,009,832 parameters). From the command line:
            ``--model-kwargs pool_padding=SAME``.
        scope: the name of the Keras model built by ``get_model`` (layer names are not prefixed).

    Returns:
        ``(logits, end_points)``; end_points holds every layer's output under its scope name.

    Example:

    >>> import slimkit as slim
    >>> slim.get_model("alexnet", num_classes=10).output.shape
    (None, 10)
    """
    del scope  # names the Keras model (see get_model); layers keep unprefixed names
    if pool_padding not in ("VALID", "SAME"):
        raise ValueError(f"Invalid value for argument `pool_padding` of alexnet. Expected 'VALID' "
                         f"or 'SAME'. Received pool_padding={pool_padding!r}.")
    pad = pool_padding
    end_points = {}
    net = end_points["conv1"] = conv2d(images, 96, [11, 11], 4, scope="conv1")  # (N, 56, 56, 96)
    net = end_points["lrn1"] = lrn(net, scope="lrn1")
    net = end_points["pool1"] = max_pool2d(net, [3, 3], 2, padding=pad,
                                           scope="pool1")  # (N, 27, 27, 96); SAME: 28
    net = end_points["conv2"] = conv2d(net, 256, [5, 5], scope="conv2")  # (N, 27, 27, 256)
    net = end_points["lrn2"] = lrn(net, scope="lrn2")
    net = end_points["pool2"] = max_pool2d(net, [3, 3], 2, padding=pad,
                                           scope="pool2")  # (N, 13, 13, 256); SAME: 14
    net = end_points["conv3"] = conv2d(net, 384, [3, 3], scope="conv3")  # (N, 13, 13, 384)
    net = end_points["conv4"] = conv2d(net, 384, [3, 3], scope="conv4")  # (N, 13, 13, 384)
    net = end_points["conv5"] = conv2d(net, 256, [3, 3], scope="conv5")  # (N, 13, 13, 256)
    net = end_points["pool5"] = max_pool2d(net, [3, 3], 2, padding=pad,
                                           scope="pool5")  # (N, 6, 6, 256); SAME: 7
    net = end_points["flatten"] = flatten(net, scope="flatten")  # (N, 9216); SAME: 12544
    net = end_points["fc6"] = fully_connected(net, 4096, scope="fc6")
    net = end_points["dropout6"] = dropout(net, dropout_keep_prob, is_training=is_training,
                                           scope="dropout6")
    net = end_points["fc7"] = fully_connected(net, 4096, scope="fc7")
    net = end_points["dropout7"] = dropout(net, dropout_keep_prob, is_training=is_training,
                                           scope="dropout7")
    logits = end_points["fc8"] = fully_connected(net, num_classes, activation_fn=None,
                                                 scope="fc8")  # (N, num_classes)
    return logits, end_points
