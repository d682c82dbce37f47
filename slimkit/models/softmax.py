"""Softmax regression, the model of TensorFlow's first tutorial, "MNIST For ML Beginners".

Source: TensorFlow tutorial "MNIST For ML Beginners" (tensorflow/examples/tutorials/mnist/
mnist_softmax.py): ``y = tf.matmul(x, W) + b`` with ``W`` (784, 10) and ``b`` (10,) initialized to
zeros. 784 * 10 + 10 = 7,850 parameters; about 92% test accuracy after 1,000 steps of SGD
(learning rate 0.5, batch 100).

The tutorial feeds flat (N, 784) vectors; here the input is (N, 28, 28, 1) like every other model,
and the first layer flattens it.
"""

from slimkit.layers.core import flatten, fully_connected
from slimkit.layers.initializers import constant_initializer
from slimkit.models.registry import register_model


@register_model(image_size=28, channels=1, num_classes=10,
                source='TF tutorial "MNIST For ML Beginners" (mnist_softmax.py)')
def softmax_regression(images, num_classes=10, scope="softmax_regression"):
    """Multinomial logistic regression on the pixels: ``logits = flatten(images) @ W + b``.

    Args:
        images: float32 (N, H, W, C), e.g. (N, 28, 28, 1) in [0, 1].
        num_classes: number of classes.
        scope: the name of the Keras model built by ``get_model`` (layer names are not prefixed).

    Returns:
        ``(logits, end_points)``: logits (N, num_classes) and {"flatten", "logits"} outputs.

    Example:

    >>> import slimkit as slim
    >>> slim.get_model("softmax_regression").count_params()
    7850
    """
    del scope  # names the Keras model (see get_model); layers keep unprefixed names
    end_points = {}
    net = end_points["flatten"] = flatten(images, scope="flatten")  # (N, 784)
    # The tutorial starts from zeros: the loss is convex, so no symmetry needs breaking.
    logits = end_points["logits"] = fully_connected(
        net, num_classes, activation_fn=None, weights_initializer=constant_initializer(0.0),
        biases_initializer=constant_initializer(0.0), scope="logits")  # (N, 10)
    return logits, end_points
