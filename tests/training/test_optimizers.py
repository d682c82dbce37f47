"""The fused Adam/AdamW/SGD: Keras' math and slots, TensorFlow's one-kernel update."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from slimkit.training.optimizers import FusedAdam, FusedAdamW, FusedSGD


def _train(cls, steps=30, **kwargs):
    keras.utils.set_random_seed(0)
    initial = np.random.default_rng(0).normal(size=(50, 30)).astype(np.float32)
    variable = keras.Variable(initial)
    schedule = keras.optimizers.schedules.ExponentialDecay(1e-2, 10, 0.9)
    optimizer = cls(schedule, **kwargs)
    optimizer.build([variable])

    @tf.function
    def step(gradient):
        optimizer.apply([gradient], [variable])

    for i in range(steps):
        step(tf.constant(np.sin(np.arange(1500).reshape(50, 30) * (i + 1)), tf.float32))
    return variable.numpy(), optimizer, initial


@pytest.mark.parametrize("keras_cls, fused_cls, kwargs", [
    (keras.optimizers.Adam, FusedAdam, {"epsilon": 1e-7}),
    (keras.optimizers.AdamW, FusedAdamW, {"epsilon": 1e-7, "weight_decay": 0.01}),
    (keras.optimizers.Adam, FusedAdam, {"epsilon": 1e-7, "amsgrad": True}),  # (Keras' own update)
    (keras.optimizers.SGD, FusedSGD, {}),
    (keras.optimizers.SGD, FusedSGD, {"momentum": 0.9}),
    (keras.optimizers.SGD, FusedSGD, {"momentum": 0.9, "nesterov": True}),
])
def test_fused_optimizer_is_keras_optimizer(keras_cls, fused_cls, kwargs):
    expected, keras_optimizer, initial = _train(keras_cls, **kwargs)
    actual, fused_optimizer, _ = _train(fused_cls, **kwargs)
    assert np.abs(expected - initial).max() > 0.05  # the weights moved
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5)
    # the same slots, under the same names: checkpoints of either load into the other
    def slots(optimizer):  # kind and shape (names carry Keras' uniquifying suffixes)
        return [(re.sub(r"^.*/(variable(_\d+)?_)?", "", v.path), tuple(v.shape))
                for v in optimizer.variables]

    assert slots(fused_optimizer) == slots(keras_optimizer)
    for a, b in zip(fused_optimizer.variables, keras_optimizer.variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fused_cls, kwargs, kernel", [
    (FusedAdam, {}, "ResourceApplyAdam"),
    (FusedSGD, {}, "ResourceApplyGradientDescent"),
    (FusedSGD, {"momentum": 0.9, "nesterov": True}, "ResourceApplyKerasMomentum"),
])
def test_the_update_is_one_fused_kernel_per_variable(fused_cls, kwargs, kernel):
    variables = [keras.Variable(np.ones((4, 3), np.float32)), keras.Variable(np.ones(3, np.float32))]
    optimizer = fused_cls(0.1, **kwargs)
    optimizer.build(variables)
    graph = tf.function(lambda g: optimizer.apply(g, variables)).get_concrete_function(
        [tf.TensorSpec(v.shape, tf.float32) for v in variables]).graph
    assert [op.type for op in graph.get_operations()].count(kernel) == len(variables)
