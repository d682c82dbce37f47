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
    if not clip_gradient_norm:  # plain SGD: ||dw|| = lr * ||g||, and the step reports ||g||
        assert float(result["gradient_norm"]) == pytest.approx(change / learning_rate, rel=1e-4)
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


def _conv_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.MaxPooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(x)))


def _three_steps(jit_compile):
    """Weights after one call of 3 Adam steps, and the call's concrete graph."""
    model = _conv_model()
    optimizer = keras.optimizers.Adam(1e-2)
    optimizer.build(model.trainable_variables)
    options = StepOptions(global_step=tf.Variable(0, dtype=tf.int64), jit_compile=jit_compile)
    step = make_train_step(model, make_loss_fn(3), optimizer, options=options)
    rng = np.random.default_rng(1)
    images = rng.normal(size=(3, 16, 8, 8, 1)).astype(np.float32)
    labels = rng.integers(0, 3, (3, 16)).astype(np.int32)
    assert int(step(images, labels)["steps"]) == 3
    graph = step.get_concrete_function(tf.constant(images), tf.constant(labels)).graph
    return [v.numpy() for v in model.trainable_variables], graph


def _xla_compiled_calls(graph):
    """Names of the functions the graph (its while loop's body included) must compile with XLA."""
    names, graphs = [], [graph]
    while graphs:
        g = graphs.pop()
        for op in g.get_operations():
            try:
                if op.get_attr("_XlaMustCompile"):
                    names.append(op.name)
            except ValueError:
                pass
        graphs += [f.graph for f in getattr(g, "_functions", {}).values() if hasattr(f, "graph")]
    return names


def test_jit_compile_compiles_each_step_with_xla_and_trains_as_without():
    """XLA compiles the per-step forward/backward inside the call's loop (with the whole loop
    compiled a Deep MNIST step took 16 s on a CPU); three steps end where the same three steps
    without XLA end."""
    from tensorflow.python.framework import config as tf_config

    was_deterministic = tf_config.is_op_determinism_enabled()
    tf_config.disable_op_determinism()  # XLA has no deterministic max-pool gradient
    try:
        plain, plain_graph = _three_steps(False)
        xla, xla_graph = _three_steps(True)
    finally:
        if was_deterministic:
            tf.config.experimental.enable_op_determinism()
    assert _xla_compiled_calls(xla_graph) and not _xla_compiled_calls(plain_graph)
    initial = [v.numpy() for v in _conv_model().weights]
    assert not any(np.allclose(p, b) for p, b in zip(plain, initial))  # the steps moved every weight
    for p, x in zip(plain, xla):
        np.testing.assert_allclose(x, p, rtol=1e-4, atol=1e-5)
