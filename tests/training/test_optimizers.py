"""The fused Adam/AdamW: Keras' math and slots, TensorFlow's one-kernel update."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from slimkit.training.optimizers import FusedAdam, FusedAdamW


def _train(cls, steps=30, **kwargs):
    keras.utils.set_random_seed(0)
    variable = keras.Variable(np.random.default_rng(0).normal(size=(50, 30)).astype(np.float32))
    schedule = keras.optimizers.schedules.ExponentialDecay(1e-2, 10, 0.9)
    optimizer = cls(schedule, epsilon=1e-7, **kwargs)
    optimizer.build([variable])

    @tf.function
    def step(gradient):
        optimizer.apply([gradient], [variable])

    for i in range(steps):
        step(tf.constant(np.sin(np.arange(1500).reshape(50, 30) * (i + 1)), tf.float32))
    return variable.numpy(), optimizer


@pytest.mark.parametrize("keras_cls, fused_cls, kwargs", [
    (keras.optimizers.Adam, FusedAdam, {}),
    (keras.optimizers.AdamW, FusedAdamW, {"weight_decay": 0.01}),
    (keras.optimizers.Adam, FusedAdam, {"amsgrad": True}),  # (falls back to Keras' own update)
])
def test_fused_adam_is_keras_adam(keras_cls, fused_cls, kwargs):
    expected, keras_optimizer = _train(keras_cls, **kwargs)
    actual, fused_optimizer = _train(fused_cls, **kwargs)
    assert np.abs(expected).max() > 0.5  # the weights moved
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5)
    # the same slots, under the same names: checkpoints of either load into the other
    def slots(optimizer):  # kind and shape (names carry Keras' uniquifying suffixes)
        return [(re.sub(r"^.*/(variable(_\d+)?_)?", "", v.path), tuple(v.shape))
                for v in optimizer.variables]

    assert slots(fused_optimizer) == slots(keras_optimizer)
    for a, b in zip(fused_optimizer.variables, keras_optimizer.variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
