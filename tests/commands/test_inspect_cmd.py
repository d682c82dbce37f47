"""slimkit inspect: end points, a layer's weights and their gradients (against NumPy), the logits and
softmax of test images, the pictures, JSON - on any kept checkpoint and at initialization."""

import json

import numpy as np
import pytest
from PIL import Image

from slimkit.cli import main
from slimkit.data.registry import load_arrays
from slimkit.inspect import inspect_run
from slimkit.runs import load_run

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(scope="module")
def mnist(mnist_dir):
    return load_arrays("mnist", str(mnist_dir), validation_size=5000)  # the runs' split


def _softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_end_points_with_rank_shape_dtype_and_parameters(deep_run, capsys):
    assert main(["inspect", str(deep_run[0])]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (f"deep_mnist  {deep_run[0]}/ckpt-200  (step 200, fp32, EMA weights)  "
                        "3,274,634 parameters")
    assert lines[2:] == [
        "end point  rank  shape               dtype    parameters",
        "images        4  (None, 28, 28, 1)   float32           0",
        "conv1         4  (None, 28, 28, 32)  float32         832",
        "pool1         4  (None, 14, 14, 32)  float32           0",
        "conv2         4  (None, 14, 14, 64)  float32      51,264",
        "pool2         4  (None, 7, 7, 64)    float32           0",
        "flatten       2  (None, 3136)        float32           0",
        "fc1           2  (None, 1024)        float32   3,212,288",
        "dropout       2  (None, 1024)        float32           0",
        "fc2           2  (None, 10)          float32      10,250"]


def _gradient_reference(W, b, images, labels):
    """d(mean cross entropy)/dW and /db of softmax regression, in NumPy."""
    x = images.reshape(len(images), -1).astype(np.float64) / 255
    p = _softmax(x @ W + b)
    p[np.arange(len(labels)), labels] -= 1
    return x.T @ p / len(labels), p.mean(axis=0)


@pytest.mark.parametrize("at_init", [True, False])
def test_pixel_380s_weights_and_gradients_early_and_late(softmax_run, mnist, at_init, capsys):
    run = load_run(softmax_run[0], at_init=at_init)
    report = inspect_run(run, weights="logits", index=380)["weights"]
    W = run.model.get_layer("logits").kernel.numpy().astype(np.float64)
    b = run.model.get_layer("logits").bias.numpy().astype(np.float64)
    np.testing.assert_allclose(report["kernel"]["values"], W[380], rtol=1e-6, atol=1e-8)
    assert report["kernel"]["shape"] == [10] and report["bias"]["shape"] == [10]
    dW, db = _gradient_reference(W, b, mnist.train.images[:100], mnist.train.labels[:100])
    np.testing.assert_allclose(report["kernel_gradient"]["values"], dW[380], rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(report["bias_gradient"]["values"], db, rtol=1e-4, atol=1e-7)
    assert report["examples"] == 100 and "are 100 times these" in report["loss_convention"]
    if at_init:  # all weights 0: p = 0.1 everywhere, and pixel 380 is ink in some of the 100
        assert not any(report["kernel"]["values"]) and np.abs(dW[380]).max() > 1e-3

    argv = ["inspect", str(softmax_run[0]), "--weights", "logits", "--index", "380"]
    assert main(argv + (["--at-init"] if at_init else [])) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "logits (Dense), input unit 380 (row 380)" in lines
    table = next(i for i, line in enumerate(lines) if line.startswith("class "))
    assert lines[table].split() == ["class", "kernel", "d", "loss", "/", "d", "kernel", "bias",
                                    "d", "loss", "/", "d", "bias"]
    for c in (0, 9):
        row = [float(v) for v in lines[table + 1 + c].split()[1:]]
        np.testing.assert_allclose(row, [W[380, c], report["kernel_gradient"]["values"][c], b[c],
                                         report["bias_gradient"]["values"][c]], rtol=1e-5,
                                   atol=1e-12)


def test_first_images_logits_softmax_answers_and_labels(softmax_run, mnist, capsys):
    run = load_run(softmax_run[0])
    examples = inspect_run(run, n=5)["examples"]
    W = run.model.get_layer("logits").kernel.numpy().astype(np.float64)
    b = run.model.get_layer("logits").bias.numpy().astype(np.float64)
    x = mnist.test.images[:5].reshape(5, -1) / 255
    logits = x @ W + b
    p = _softmax(logits)
    labels = mnist.test.labels[:5]
    assert [row["label"] for row in examples["images"]] == labels.tolist()
    assert [row["answer"] for row in examples["images"]] == p.argmax(1).tolist()
    np.testing.assert_allclose([row["logits"] for row in examples["images"]], logits, atol=1e-4)
    np.testing.assert_allclose([row["probabilities"] for row in examples["images"]], p,
                               atol=1e-5)
    assert examples["accuracy"] == (p.argmax(1) == labels).mean()
    assert examples["cross_entropy"] == pytest.approx(
        -np.log(p[np.arange(5), labels]).mean(), rel=1e-4)

    assert main(["inspect", str(softmax_run[0]), "-n", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    first = lines.index("the first 2 test images")
    assert lines[first + 1] == f"image 0: label {labels[0]}, argmax {p[0].argmax()}"
    assert lines[first + 2].split() == ["class", *"0123456789"]
    assert [float(v) for v in lines[first + 4].split()[1:]] == pytest.approx(p[0], abs=6e-5)
    assert lines[-1].startswith("batch of 2: accuracy ")


def test_pictures_of_every_model_kind(softmax_run, deep_run, alexnet_run, tmp_path):
    for (logdir, _), expected in (
            (softmax_run, ["weights_logits.png", "input.png"]),
            (deep_run, ["filters_conv1.png", "filters_conv2.png", "input.png",
                        "feature_maps_conv1.png", "feature_maps_pool1.png",
                        "feature_maps_conv2.png", "feature_maps_pool2.png"]),
            (alexnet_run, ["filters_conv1.png", "filters_conv2.png", "filters_conv3.png",
                           "filters_conv4.png", "filters_conv5.png", "input.png"])):
        folder = tmp_path / logdir.name
        written = inspect_run(load_run(logdir), png_dir=folder)["pictures"]
        assert [p.split("/")[-1] for p in written][:len(expected)] == expected
        assert sorted(p.name for p in folder.iterdir()) == sorted(p.split("/")[-1]
                                                                  for p in written)
    heat = np.asarray(Image.open(tmp_path / softmax_run[0].name / "weights_logits.png"))
    assert heat.ndim == 3 and (heat[..., 0] > heat[..., 2] + 60).any()  # red: positive weights
    assert (heat[..., 2] > heat[..., 0] + 60).any()  # blue: negative
    colour = np.asarray(Image.open(tmp_path / alexnet_run[0].name / "filters_conv1.png"))
    assert colour.shape[2] == 3  # RGB input: one colour tile per filter
    maps = np.asarray(Image.open(tmp_path / deep_run[0].name / "feature_maps_conv1.png"))
    assert maps.shape == (175, 175)  # 32 maps of 28x28 in a 6x6 grid


def test_json_holds_everything(deep_run, capsys):
    assert main(["inspect", str(deep_run[0] / "ckpt-100"), "--weights", "conv1", "--index", "3",
                 "-n", "2", "--batch-size", "20", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["run"]["global_step"] == 100 and report["run"]["ema"] is True
    assert [p["name"] for p in report["end_points"]][:2] == ["images", "conv1"]
    w = report["weights"]
    assert w["selects"] == "filter 3" and w["examples"] == 20
    assert w["kernel"]["shape"] == [5, 5, 1] and w["bias"]["shape"] == []
    assert len(report["examples"]["images"]) == 2


@pytest.mark.parametrize("argv, message", [
    (["--weights", "fc_1"], "Model `deep_mnist` has no layer 'fc_1' with weights. Did you mean "
                            "'fc1'? Expected one of: conv1, conv2, fc1, fc2."),
    (["--weights", "fc2", "--index", "1024"], "Invalid value for `index`. Expected an input unit "
                                              "of layer `fc2`, from 0 to 1023. Received "
                                              "index=1024."),
    (["--index", "3"], "`index` selects weights of a layer: pass `weights` (--weights LAYER) with "
                       "it."),
])
def test_bad_requests_are_one_line(deep_run, capsys, argv, message):
    assert main(["inspect", str(deep_run[0]), *argv]) == 2
    assert capsys.readouterr().err == f"slimkit inspect: error: {message}\n"


def test_the_inspect_module_hides_nothing():
    """`slimkit/inspect.py` is `slimkit.inspect`; the package's `import inspect` stays the stdlib's."""
    import inspect as stdlib

    import slimkit
    import slimkit.inspect
    import slimkit.models.registry
    import slimkit.runs

    assert slimkit.runs.inspect is stdlib and slimkit.models.registry.inspect is stdlib
    assert slimkit.inspect.inspect_run is slimkit.inspect_run and callable(stdlib.signature)


def test_a_png_write_fault_is_one_line(softmax_run, tmp_path, capsys):
    (tmp_path / "pictures").write_text("a file where the folder should be")
    assert main(["inspect", str(softmax_run[0]), "--png", str(tmp_path / "pictures")]) == 2
    assert capsys.readouterr().err == (
        f"slimkit inspect: error: Cannot write {tmp_path}/pictures/weights_logits.png: "
        f"{tmp_path}/pictures is a file, not a folder. Expected a folder this user can write "
        "to, with room for the output: free space, or choose another --png folder.\n")
