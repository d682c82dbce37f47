"""The compiled train step on a tiny model: gradient clipping bounds the update, label smoothing
gives the NumPy reference loss."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from slimkit.training.step import StepOptions, make_loss_fn, make_train_step

_RNG = np.random.default_rng(0)
IMAGES = (_RNG.normal(size=(1, 8, 4)) * 10).astype(np.float32)  # k=1 step of a batch of 8: (1, 8, 4)
LABELS = _RNG.integers(0, 3, (1, 8)).astype(np.int32)           # (1, 8)


def _model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.Dense(3, name="logits")(inputs))


def _one_step(loss_fn, learning_rate=0.1, clip_gradient_norm=0.0):
    """(||w_after - w_before|| over all weights, the step's reported loss) of one SGD step."""
    model = _model()
    optimizer = keras.optimizers.SGD(learning_rate)
    optimizer.build(model.trainable_variables)
    before = [v.numpy() for v in model.trainable_variables]
    options = StepOptions(global_step=tf.Variable(0, dtype=tf.int64),
                          clip_gradient_norm=clip_gradient_norm)
    result = make_train_step(model, loss_fn, optimizer, options=options)(IMAGES, LABELS)
    assert int(result["steps"]) == 1
    change = np.sqrt(sum(np.sum((v.numpy() - b) ** 2)
                         for v, b in zip(model.trainable_variables, before)))
    return change, float(result["loss_sum"])


def _numpy_cross_entropy(logits, labels, smoothing, num_classes=3):
    """TF-Slim's rule: targets = onehot * (1 - s) + s / num_classes."""
    logits = logits.astype(np.float64)
    targets = np.eye(num_classes)[labels] * (1 - smoothing) + smoothing / num_classes
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-(targets * log_softmax).sum(axis=1).mean())


def test_clip_gradient_norm_bounds_one_sgd_update():
    lr, clip = 0.1, 0.01
    unclipped, _ = _one_step(make_loss_fn(3), lr)
    clipped, _ = _one_step(make_loss_fn(3), lr, clip_gradient_norm=clip)
    assert unclipped > 100 * lr * clip                   # the raw gradient is far above the norm
    assert clipped <= lr * clip * (1 + 1e-5)             # ||dw|| = lr * ||clipped grad|| <= lr*clip
    assert clipped == pytest.approx(lr * clip, rel=1e-4)  # and clipped to the norm, not below it
    # A clip norm above the gradient's norm leaves the update as it was.
    assert _one_step(make_loss_fn(3), lr, clip_gradient_norm=1e6)[0] == pytest.approx(unclipped)


def test_label_smoothing_gives_the_numpy_reference_loss():
    logits = _model()(IMAGES[0]).numpy()  # the weights the step starts from
    smoothed = _numpy_cross_entropy(logits, LABELS[0], 0.2)
    plain = _numpy_cross_entropy(logits, LABELS[0], 0.0)
    assert abs(smoothed - plain) > 0.1  # the smoothing is visible in the loss
    assert float(make_loss_fn(3, 0.2)(logits, LABELS[0])) == pytest.approx(smoothed, rel=1e-5)
    # The step reports the loss of the batch before its update: the smoothed one.
    assert _one_step(make_loss_fn(3, 0.2))[1] == pytest.approx(smoothed, rel=1e-5)
    assert _one_step(make_loss_fn(3))[1] == pytest.approx(plain, rel=1e-5)
