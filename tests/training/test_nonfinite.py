"""diagnose_nonfinite names the first layer whose output, or variable whose gradient, is non-finite."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from slimkit.losses import softmax_cross_entropy, sparse_softmax_cross_entropy
from slimkit.models.registry import get_model
from slimkit.training.nonfinite import diagnose_nonfinite

RNG = np.random.default_rng(0)
IMAGES = RNG.random((4, 28, 28, 1), dtype=np.float32)
LABELS = np.array([0, 1, 2, 3], np.int32)
X = RNG.random((4, 8), dtype=np.float32)
Y = np.array([0, 1, 2, 0], np.int32)


def mlp(stddevs, batch_norm=False):
    """Dense layers fc1, fc2, ... with kernels drawn at the given scales; 3 logits."""
    net = inputs = keras.Input((8,))
    for i, stddev in enumerate(stddevs):
        units = 3 if i == len(stddevs) - 1 else 8
        net = keras.layers.Dense(units, name=f"fc{i + 1}",
                                 kernel_initializer=keras.initializers.RandomNormal(stddev=stddev, seed=i))(net)
        if batch_norm and i == 0:
            net = keras.layers.BatchNormalization(name="bn1")(net)
    return keras.Model(inputs, net)


def test_finite_model_reports_nothing_non_finite():
    model = get_model("deep_mnist")
    message = diagnose_nonfinite(model, sparse_softmax_cross_entropy, IMAGES, LABELS)
    assert message.startswith("no non-finite value in the forward pass, the loss (")
    assert "or the gradients of this batch" in message


def test_weight_set_to_inf_names_the_layer_and_the_variable():
    model = get_model("deep_mnist")
    kernel = model.get_layer("conv2").kernel
    kernel.assign(tf.tensor_scatter_nd_update(kernel, [[0, 0, 0, 0]], [np.inf]))
    message = diagnose_nonfinite(model, sparse_softmax_cross_entropy, IMAGES, LABELS)
    assert message.startswith("the output of layer 'conv2' (Conv2D) is the first non-finite value in "
                              "the forward pass (")
    assert "its variable conv2/kernel holds 1 inf: a previous update made the weights non-finite" in message


def test_exploding_gradients_name_the_first_variable():
    # The forward pass stays finite (1e-20 * 1e20 ~ 1, logits ~ 1e21 < 3.4e38), but backwards the
    # two 1e20 kernels multiply: the gradient reaching fc1 is ~1e40, beyond float32.
    model = mlp([1e-20, 1e20, 1e20])
    message = diagnose_nonfinite(model, sparse_softmax_cross_entropy, X, Y)
    assert message.startswith("the forward pass and the loss (")
    assert "are finite, but the gradient of variable fc1/kernel is the first non-finite gradient" in message
    assert "1 more variable(s) after it too: the gradients exploded" in message


def test_overflow_with_finite_weights_is_called_an_overflow():
    model = mlp([1e20, 1e20, 1e20])  # 1e20 * 1e20 overflows in fc2
    message = diagnose_nonfinite(model, sparse_softmax_cross_entropy, X, Y)
    assert message.startswith("the output of layer 'fc2' (Dense) is the first non-finite value")
    assert "its inputs and weights are finite, so the values overflowed in this layer" in message


def test_labels_outside_the_classes_are_named():
    message = diagnose_nonfinite(mlp([0.1, 0.1]), sparse_softmax_cross_entropy, X, np.array([0, 1, 7, 0]))
    assert message == ("the model's outputs (logits) are finite but 1 label(s) are outside [0, 3), the "
                       "model's classes (e.g. 7): check the dataset's labels and the model's num_classes")


def test_non_finite_one_hot_labels_are_named():
    onehot = np.eye(3, dtype=np.float32)[Y]
    onehot[1, 1] = np.nan
    message = diagnose_nonfinite(mlp([0.1, 0.1]), softmax_cross_entropy, X, onehot)
    assert message == ("the model's outputs (logits) are finite but the labels are non-finite "
                       "(1 NaN, 0 inf of 12 values): check the data")


def test_non_finite_loss_from_the_loss_function():
    def broken_loss(logits, labels):
        return sparse_softmax_cross_entropy(logits, labels) + tf.math.log(0.0)

    message = diagnose_nonfinite(mlp([0.1, 0.1]), broken_loss, X, Y)
    assert message == ("the model's outputs (logits) are finite but the loss is -inf: check the loss "
                       "function and the model's regularization losses")


def test_non_finite_input_blames_the_data():
    images = IMAGES.copy()
    images[0, 0, 0, 0] = np.nan
    message = diagnose_nonfinite(get_model("deep_mnist"), sparse_softmax_cross_entropy, images, LABELS)
    assert message == "the input batch is non-finite (1 NaN, 0 inf of 3136 values): check the data, not the model"


def test_diagnosis_leaves_the_model_unchanged():
    """Training mode updates batch-norm moving averages; the diagnosis puts them back."""
    model = mlp([0.1, 0.1], batch_norm=True)
    before = [v.numpy().copy() for v in model.weights]
    diagnose_nonfinite(model, sparse_softmax_cross_entropy, X * 10, Y)
    for a, v in zip(before, model.weights):
        np.testing.assert_array_equal(a, v.numpy(), err_msg=v.path)


@pytest.mark.parametrize("name", ["softmax_regression", "deep_mnist"])
def test_every_layer_of_zoo_models_is_observed(name):
    """A NaN bias in the last layer is found there, not reported as a vague model-level failure."""
    model = get_model(name)
    last = [layer for layer in model.layers if layer.weights][-1]
    last.bias.assign(tf.fill(last.bias.shape, np.nan))
    message = diagnose_nonfinite(model, sparse_softmax_cross_entropy, IMAGES, LABELS)
    assert message.startswith(f"the output of layer {last.name!r} ")
    assert f"its variable {last.name}/bias holds {last.bias.shape[0]} NaN" in message


def test_precision_hint_only_under_mixed_precision():
    message = diagnose_nonfinite(mlp([1e20, 1e20, 1e20]), sparse_softmax_cross_entropy, X, Y)
    assert message.endswith("(lower the learning rate or normalize the inputs)")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = mlp([1e20, 1e20, 1e20])
    finally:
        keras.config.set_dtype_policy(previous)
    message = diagnose_nonfinite(model, sparse_softmax_cross_entropy, X, Y)
    assert message.endswith("(lower the learning rate or normalize the inputs, or try --precision fp32)")
