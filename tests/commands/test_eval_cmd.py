"""slimkit eval: the accuracy training reported, top-5, per-class accuracy, confusion matrix, table,
JSON and TensorBoard at the checkpoint's step."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from slimkit.cli import main
from slimkit.evaluation import evaluate

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def test_eval_gives_what_training_reported(deep_run, softmax_run, alexnet_run):
    for (logdir, reported), split in ((deep_run, "test"), (softmax_run, "test"),
                                      (alexnet_run, "validation")):
        metrics = evaluate(logdir, summaries=False)
        assert metrics["split"] == split
        assert metrics["accuracy"] == reported[f"{split}_accuracy"]  # exactly: the same code
        assert metrics["loss"] == pytest.approx(reported[f"{split}_loss"], rel=1e-6)
    assert deep_run[1]["test_accuracy"] > 0.9 and metrics["ema"] is False


def test_metrics_are_consistent_with_the_confusion_matrix(deep_run):
    metrics = evaluate(deep_run[0], summaries=False)
    matrix = np.array(metrics["confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == metrics["num_examples"] == 10000
    assert np.trace(matrix) / 10000 == metrics["accuracy"]
    np.testing.assert_allclose(metrics["per_class_accuracy"], np.diag(matrix) / matrix.sum(1))
    assert metrics["accuracy"] <= metrics["top5_accuracy"] <= 1
    assert metrics["ema"] is True and metrics["class_names"] == list("0123456789")
    assert (metrics["global_step"], metrics["checkpoint"]) == (200, str(deep_run[0] / "ckpt-200"))


def test_eval_table_and_json(softmax_run, capsys):
    logdir = softmax_run[0]
    assert main(["eval", str(logdir / "ckpt-200")]) == 0
    lines = capsys.readouterr().out.splitlines()
    metrics = evaluate(logdir / "ckpt-200", summaries=False)
    assert lines[0] == (f"test accuracy: {metrics['accuracy']:.4f}  top-5: "
                        f"{metrics['top5_accuracy']:.4f}  loss: {metrics['loss']:.4f}  (10000 "
                        f"examples, step 200, {logdir}/ckpt-200)")
    assert lines[2] == "class  accuracy  examples"
    assert lines[3] == f"0      {metrics['per_class_accuracy'][0]:8.4f}       980"
    assert lines[14] == "confusion matrix (rows: true class, columns: predicted class)"
    assert lines[15].split() == list("0123456789")
    assert [int(v) for v in lines[16].split()[1:]] == metrics["confusion_matrix"][0]
    assert len(lines) == 26

    assert main(["eval", str(logdir), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"accuracy", "top5_accuracy", "loss", "per_class_accuracy", "confusion_matrix",
            "class_names", "num_examples", "split", "global_step", "checkpoint", "ema",
            "model", "precision"} <= set(result)
    assert result["global_step"] == 300 and result["model"] == "softmax_regression"


def test_an_image_folder_table_has_its_class_names_and_no_top5(alexnet_run, capsys):
    assert main(["eval", str(alexnet_run[0])]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("val accuracy: ") and "top-5" not in lines[0]
    assert [line.split()[0] for line in lines[3:6]] == ["bar", "cross", "disc"]
    assert lines[-4].split() == ["bar", "cross", "disc"]  # the confusion matrix's columns


def _events(folder):
    found = {}
    for name in sorted(os.listdir(folder)):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(folder, name)):
            for value in event.summary.value:
                found[value.tag] = (event.step, tf.make_ndarray(value.tensor))
    return found


def test_eval_writes_tensorboard_at_the_checkpoints_step(softmax_run, tmp_path):
    import shutil

    logdir = shutil.copytree(softmax_run[0], tmp_path / "run")
    metrics = evaluate(logdir / "ckpt-100")
    events = _events(logdir / "eval_test")
    assert {tag: step for tag, (step, _) in events.items()} == {
        "accuracy": 100, "loss": 100, "top5_accuracy": 100, "confusion_matrix": 100,
        "misclassified": 100}
    assert float(events["accuracy"][1]) == pytest.approx(metrics["accuracy"])
    width, height, png = events["confusion_matrix"][1][:3]
    assert png[:4] == b"\x89PNG" and int(width) > 200 and int(height) > 200
