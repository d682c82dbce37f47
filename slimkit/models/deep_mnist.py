"""The Deep MNIST convolutional network of TensorFlow's tutorial "Deep MNIST for Experts".

Source: TensorFlow tutorial "Deep MNIST for Experts" (tensorflow/examples/tutorials/mnist/
mnist_deep.py), whose TensorBoard version names the scopes conv1, pool1, conv2, pool2, fc1, dropout
and fc2 (we keep those names; the tutorial's flattening, inside fc1, is the layer ``flatten``):

    conv 5x5, 32, SAME, ReLU   (N, 28, 28, 32)     max-pool 2x2/2   (N, 14, 14, 32)
    conv 5x5, 64, SAME, ReLU   (N, 14, 14, 64)     max-pool 2x2/2   (N, 7, 7, 64)
    flatten (N, 3136) -> fc 1024, ReLU -> dropout (keep_prob 0.5) -> fc 10 (logits)

Weights are drawn from a truncated normal with stddev 0.1 and biases start at 0.1 ("to avoid dead
neurons", the tutorial says): 3,274,634 parameters. About 99.2% test accuracy after 20,000 Adam
steps (learning rate 1e-4, batch 50).
"""

from slimkit.layers.arg_scope import arg_scope
from slimkit.layers.core import conv2d, dropout, flatten, fully_connected, max_pool2d
from slimkit.layers.initializers import constant_initializer, truncated_normal_initializer
from slimkit.models.registry import register_model


def deep_mnist_arg_scope(weight_decay=0.0):
    """The tutorial's defaults: truncated normal(0.1) weights, 0.1 biases, ReLU, SAME padding.

    Args:
        weight_decay: l2 penalty (TF-Slim's meaning, scale * sum(w**2) / 2) on the weights of the
            conv and fc layers; the tutorial uses none.

    Returns:
        A captured arg scope for ``with slim.arg_scope(deep_mnist_arg_scope()):``.

    Example:

    >>> import slimkit as slim
    >>> with slim.arg_scope(deep_mnist_arg_scope()):
    ...     pass
    """
    from slimkit.layers.regularizers import l2_regularizer

    with arg_scope([conv2d, fully_connected],
                   weights_initializer=truncated_normal_initializer(stddev=0.1),
                   biases_initializer=constant_initializer(0.1),
                   weights_regularizer=l2_regularizer(weight_decay),
                   activation_fn="relu"):
        with arg_scope([conv2d, max_pool2d], padding="SAME") as scope:
            return scope


@register_model(image_size=28, channels=1, num_classes=10, arg_scope_fn=deep_mnist_arg_scope,
                source='TF tutorial "Deep MNIST for Experts" (mnist_deep.py)')
def deep_mnist(images, num_classes=10, is_training=None, dropout_keep_prob=0.5, scope="deep_mnist"):
    """The Deep MNIST CNN; build it inside ``deep_mnist_arg_scope()`` (``get_model`` does).

    Args:
        images: float32 (N, 28, 28, 1) in [0, 1].
        num_classes: number of classes.
        is_training: None follows Keras' ``training`` flag for dropout; True/False fixes it.
        dropout_keep_prob: probability of keeping a unit of fc1 when training.
        scope: the name of the Keras model built by ``get_model`` (layer names are not prefixed).

    Returns:
        ``(logits, end_points)``; end_points holds every layer's output under its scope name.

    Example:

    >>> import slimkit as slim
    >>> model = slim.get_model("deep_mnist")
    >>> list(model.end_points)
    ['conv1', 'pool1', 'conv2', 'pool2', 'flatten', 'fc1', 'dropout', 'fc2']
    """
    del scope  # names the Keras model (see get_model); layers keep unprefixed names
    end_points = {}
    net = end_points["conv1"] = conv2d(images, 32, [5, 5], scope="conv1")  # (N, 28, 28, 32)
    net = end_points["pool1"] = max_pool2d(net, [2, 2], scope="pool1")  # (N, 14, 14, 32)
    net = end_points["conv2"] = conv2d(net, 64, [5, 5], scope="conv2")  # (N, 14, 14, 64)
    net = end_points["pool2"] = max_pool2d(net, [2, 2], scope="pool2")  # (N, 7, 7, 64)
    net = end_points["flatten"] = flatten(net, scope="flatten")  # (N, 3136)
    net = end_points["fc1"] = fully_connected(net, 1024, scope="fc1")  # (N, 1024)
    net = end_points["dropout"] = dropout(net, dropout_keep_prob, is_training=is_training,
                                          scope="dropout")
    logits = end_points["fc2"] = fully_connected(net, num_classes, activation_fn=None,
                                                 scope="fc2")  # (N, 10)
    return logits, end_points
