"""Losses against NumPy references, the tutorial formula's failure on saturated logits, and
get_total_loss."""

import numpy as np
import pytest
import tensorflow as tf

import slimkit as slim
from slimkit import losses


def np_log_softmax(z):
    """Stable reference in float64: z - logsumexp(z)."""
    z = np.asarray(z, np.float64)
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def np_cross_entropy(logits, onehot):
    return float(np.mean(-(np.asarray(onehot, np.float64) * np_log_softmax(logits)).sum(-1)))


RNG = np.random.default_rng(0)
LOGITS = RNG.normal(size=(6, 5)).astype(np.float32) * 3
LABELS = np.array([0, 1, 2, 3, 4, 1])
ONEHOT = np.eye(5, dtype=np.float32)[LABELS]


def test_softmax_cross_entropy_matches_numpy():
    got = losses.softmax_cross_entropy(LOGITS, ONEHOT)
    assert got.dtype == tf.float32 and got.shape == ()
    np.testing.assert_allclose(float(got), np_cross_entropy(LOGITS, ONEHOT), rtol=1e-6)


def test_sparse_softmax_cross_entropy_matches_numpy():
    got = losses.sparse_softmax_cross_entropy(LOGITS, LABELS)
    np.testing.assert_allclose(float(got), np_cross_entropy(LOGITS, ONEHOT), rtol=1e-6)


def test_label_smoothing_matches_tf_slims_rule():
    smoothed = ONEHOT * 0.9 + 0.1 / 5
    got = losses.softmax_cross_entropy(LOGITS, ONEHOT, label_smoothing=0.1)
    np.testing.assert_allclose(float(got), np_cross_entropy(LOGITS, smoothed), rtol=1e-6)


def test_bfloat16_logits_are_computed_in_float32():
    got = losses.sparse_softmax_cross_entropy(tf.cast(LOGITS, tf.bfloat16), LABELS)
    assert got.dtype == tf.float32
    ref = np_cross_entropy(tf.cast(tf.cast(LOGITS, tf.bfloat16), tf.float32).numpy(), ONEHOT)
    np.testing.assert_allclose(float(got), ref, rtol=1e-6)


def test_tutorial_formula_fails_on_saturated_logits_where_ours_is_finite_and_right():
    """The MNIST tutorial's ``-reduce_sum(y_ * log(softmax(y)))``: a confidently wrong answer makes
    the softmax of the true class round to 0, log(0) = -inf, and 0 * -inf = NaN elsewhere."""
    logits = np.array([[200.0, -200.0, 0.0],      # wrong, saturated: p(true=1) rounds to 0
                       [-100.0, 100.0, 50.0]], np.float32)
    onehot = np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]], np.float32)
    tutorial = -tf.reduce_sum(onehot * tf.math.log(tf.nn.softmax(logits)), axis=1)
    assert not np.isfinite(tutorial.numpy()).all()
    assert np.isnan(tutorial.numpy()[0]) or np.isinf(tutorial.numpy()[0])

    expected = np_cross_entropy(logits, onehot)         # (400 + ~0) / 2 in float64
    np.testing.assert_allclose(expected, 200.0, rtol=1e-6)
    ours = losses.softmax_cross_entropy(logits, onehot)
    sparse = losses.sparse_softmax_cross_entropy(logits, [1, 1])
    assert np.isfinite(float(ours)) and np.isfinite(float(sparse))
    np.testing.assert_allclose([float(ours), float(sparse)], [expected, expected], rtol=1e-6)

    # and the gradient stays finite: softmax(z) - y
    z = tf.Variable(logits)
    with tf.GradientTape() as tape:
        loss = losses.sparse_softmax_cross_entropy(z, [1, 1])
    grad = tape.gradient(loss, z).numpy()
    probs = np.exp(np_log_softmax(logits))
    np.testing.assert_allclose(grad, (probs - onehot) / 2, atol=1e-6)


def test_loss_argument_errors():
    with pytest.raises(ValueError, match=r"argument `label_smoothing`.*Received label_smoothing=1"):
        losses.softmax_cross_entropy(LOGITS, ONEHOT, label_smoothing=1)
    with pytest.raises(ValueError, match=r"argument `onehot_labels`.*sparse_softmax_cross_entropy"):
        losses.softmax_cross_entropy(LOGITS, LABELS)
    with pytest.raises(ValueError, match=r"argument `labels`.*softmax_cross_entropy"):
        losses.sparse_softmax_cross_entropy(LOGITS, ONEHOT)


def test_sparse_labels_of_shape_n_by_1_are_class_ids_as_in_tf_slim():
    column = np.asarray(LABELS).reshape(-1, 1)
    np.testing.assert_allclose(float(losses.sparse_softmax_cross_entropy(LOGITS, column)),
                               float(losses.sparse_softmax_cross_entropy(LOGITS, LABELS)), rtol=1e-7)


def test_get_total_loss_adds_regularization_with_slims_l2_meaning():
    model = slim.get_model("deep_mnist", weight_decay=5e-4)
    data_loss = tf.constant(1.5)
    weights = [model.get_layer(s).kernel.numpy() for s in ("conv1", "conv2", "fc1", "fc2")]
    expected = 1.5 + 5e-4 * sum(np.sum(w.astype(np.float64) ** 2) for w in weights) / 2
    np.testing.assert_allclose(float(losses.get_total_loss(model, data_loss)), expected, rtol=1e-5)
    np.testing.assert_allclose(float(losses.get_total_loss(model, [data_loss, 0.5])),
                               expected + 0.5, rtol=1e-5)


def test_get_total_loss_without_regularizers_is_the_loss():
    model = slim.get_model("softmax_regression")
    assert float(losses.get_total_loss(model, 2.0)) == 2.0
    assert float(losses.get_regularization_loss(model)) == 0.0
