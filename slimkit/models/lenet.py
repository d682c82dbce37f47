"""TF-Slim's LeNet, the MNIST network of the TF-Slim model library.

Source: TF-Slim image models library, ``nets/lenet.py`` (tensorflow/models research/slim), itself
the Deep MNIST CNN in TF-Slim form (after LeCun et al., "Gradient-based learning applied to
document recognition", Proc. IEEE 1998):

    conv 5x5, 32, SAME   (N, 28, 28, 32)    max-pool 2x2/2, VALID   (N, 14, 14, 32)
    conv 5x5, 64, SAME   (N, 14, 14, 64)    max-pool 2x2/2, VALID   (N, 7, 7, 64)
    flatten (N, 3136) -> fc3 1024 -> dropout3 -> fc4 num_classes (logits)

3,274,634 parameters at 10 classes, like ``deep_mnist``; the differences are TF-Slim's: its scope
names, VALID pooling, zero biases and an optional weight decay in ``lenet_arg_scope``. (The smaller
20-50-500 LeNet of the TF-Slim walkthrough is kept as a test, tests/models/test_tutorial_snippets.py.)
"""

from slimkit.layers.arg_scope import arg_scope
from slimkit.layers.core import conv2d, dropout, flatten, fully_connected, max_pool2d
from slimkit.layers.initializers import truncated_normal_initializer
from slimkit.layers.regularizers import l2_regularizer
from slimkit.models.registry import register_model


def lenet_arg_scope(weight_decay=0.0):
    """TF-Slim's ``lenet_arg_scope``: truncated normal(0.1) weights, ReLU, l2 weight decay.

    Args:
        weight_decay: scale of the l2 penalty (scale * sum(w**2) / 2) on conv and fc weights.

    Example:

    >>> import slimkit as slim
    >>> with slim.arg_scope(lenet_arg_scope(weight_decay=1e-4)):
    ...     pass
    """
    with arg_scope([conv2d, fully_connected],
                   weights_regularizer=l2_regularizer(weight_decay),
                   weights_initializer=truncated_normal_initializer(stddev=0.1),
                   activation_fn="relu") as scope:
        return scope


@register_model(image_size=28, channels=1, num_classes=10, arg_scope_fn=lenet_arg_scope,
                source="TF-Slim nets/lenet.py (LeCun et al., 1998)")
def lenet(images, num_classes=10, is_training=None, dropout_keep_prob=0.5, scope="LeNet"):
    """TF-Slim's LeNet; build it inside ``lenet_arg_scope()`` (``get_model`` does).

    Args:
        images: float32 (N, 28, 28, 1).
        num_classes: number of classes.
        is_training: None follows Keras' ``training`` flag for dropout; True/False fixes it.
        dropout_keep_prob: probability of keeping a unit of fc3 when training.
        scope: the name of the Keras model built by ``get_model`` (layer names are not prefixed).

    Returns:
        ``(logits, end_points)``; end_points holds every layer's output under its scope name.

    Example:

    >>> import slimkit as slim
    >>> slim.get_model("lenet").count_params()
    3274634
    """
    del scope  # names the Keras model (see get_model); layers keep unprefixed names
    end_points = {}
    net = end_points["conv1"] = conv2d(images, 32, [5, 5], scope="conv1")  # (N, 28, 28, 32)
    net = end_points["pool1"] = max_pool2d(net, [2, 2], 2, scope="pool1")  # (N, 14, 14, 32)
    net = end_points["conv2"] = conv2d(net, 64, [5, 5], scope="conv2")  # (N, 14, 14, 64)
    net = end_points["pool2"] = max_pool2d(net, [2, 2], 2, scope="pool2")  # (N, 7, 7, 64)
    net = end_points["flatten"] = flatten(net, scope="flatten")  # (N, 3136)
    net = end_points["fc3"] = fully_connected(net, 1024, scope="fc3")  # (N, 1024)
    net = end_points["dropout3"] = dropout(net, dropout_keep_prob, is_training=is_training,
                                           scope="dropout3")
    logits = end_points["fc4"] = fully_connected(net, num_classes, activation_fn=None,
                                                 scope="fc4")  # (N, 10)
    return logits, end_points
