"""evaluate_model against NumPy, on a model whose logits are its input."""

import keras
import numpy as np
import pytest

from slimkit.metrics import evaluate_model


def _identity_model(num_classes):
    images = keras.Input((1, 1, num_classes))
    return keras.Model(images, keras.layers.Flatten()(images))


def _reference(logits, labels):
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_softmax[np.arange(len(labels)), labels].mean()
    predictions = logits.argmax(axis=1)
    top5 = (np.argsort(-logits, axis=1)[:, :5] == labels[:, None]).any(axis=1).mean()
    return loss, predictions, top5


@pytest.mark.parametrize("num_classes", [3, 12])
def test_metrics_match_numpy(num_classes):
    rng = np.random.default_rng(num_classes)
    logits = rng.normal(size=(250, num_classes)).astype(np.float32) * 3
    labels = rng.integers(0, num_classes, 250).astype(np.int32)
    labels[labels == 1] = 0  # class 1 has no examples: its accuracy is None
    model = _identity_model(num_classes)
    batches = [(logits[i:i + 64].reshape(-1, 1, 1, num_classes), labels[i:i + 64])
               for i in range(0, 250, 64)]  # the last batch is partial
    metrics = evaluate_model(model, batches, keep_misclassified=5)
    loss, predictions, top5 = _reference(logits, labels)
    confusion = np.zeros((num_classes, num_classes), int)
    np.add.at(confusion, (labels, predictions), 1)
    assert metrics["num_examples"] == 250
    assert metrics["accuracy"] == pytest.approx((predictions == labels).mean())
    assert metrics["loss"] == pytest.approx(loss, rel=1e-5)
    assert metrics["confusion_matrix"] == confusion.tolist()
    per_class = metrics["per_class_accuracy"]
    assert per_class[1] is None
    for c in (0, 2):
        assert per_class[c] == pytest.approx((predictions[labels == c] == c).mean())
    if num_classes > 5:
        assert metrics["top5_accuracy"] == pytest.approx(top5)
    else:
        assert "top5_accuracy" not in metrics
    missed = np.flatnonzero(predictions != labels)[:5]
    kept = metrics["misclassified"]
    np.testing.assert_array_equal(kept["labels"], labels[missed])
    np.testing.assert_array_equal(kept["predictions"], predictions[missed])
    np.testing.assert_array_equal(kept["images"].reshape(5, -1), logits[missed])


def test_nothing_to_evaluate_is_an_error():
    with pytest.raises(ValueError, match="Nothing to evaluate: the split has no examples"):
        evaluate_model(_identity_model(3), [])
