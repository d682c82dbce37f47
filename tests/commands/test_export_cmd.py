"""slimkit export: the SavedModel, .keras and TFLite files load in a fresh Python that never imports
slimkit (it is made unimportable there) and give slimkit's predictions on real MNIST test images."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import slimkit as slim
from slimkit.cli import main
from slimkit.data.registry import load_arrays
from slimkit.export import export_model
from slimkit.layers.stock import to_stock_keras
from slimkit.prediction import predict
from slimkit.runs import load_run

pytestmark = [pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
              pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning")]

# Runs in a fresh interpreter: slimkit cannot be imported there at all (an import finder refuses
# it), so a file that needed a slimkit class or function to load would fail.
_WITHOUT_SLIMKIT = textwrap.dedent("""
    import importlib.abc, json, sys
    class NoSlimkit(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "slimkit" or name.startswith("slimkit."):
                raise ImportError("slimkit is not installed here")
    sys.meta_path.insert(0, NoSlimkit())
    import numpy as np, tensorflow as tf, keras
    results = {}
    for name, (fmt, path, images) in json.loads(sys.argv[1]).items():
        images = np.load(images)
        if fmt == "needs_slimkit":  # the check of this check: a file that needs slimkit fails
            try:
                keras.models.load_model(path)
                results[name] = "loaded"
            except Exception as e:
                results[name] = type(e).__name__
            continue
        if fmt == "saved_model":
            loaded = tf.saved_model.load(path)
            out = loaded.signatures["serving_default"](images=tf.constant(images))
            names = loaded.signatures["class_names"]()["class_names"].numpy()
            out = {k: v.numpy() for k, v in out.items()}
        elif fmt == "keras":
            model = keras.models.load_model(path)
            out = {k: np.asarray(v) for k, v in model(images).items()}
            names = np.array(model.get_layer("class_names").get_vocabulary())
            out["class_name"] = out["class_name"].astype(str)
        else:
            interpreter = tf.lite.Interpreter(model_path=path)
            out = interpreter.get_signature_runner("serving_default")(images=images)
            names = interpreter.get_signature_runner("class_names")()["class_names"]
        results[name] = {k: np.asarray(v).tolist() for k, v in out.items()}
        results[name]["names"] = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    assert "slimkit" not in sys.modules
    print(json.dumps(results))
""")


def _load_elsewhere(exports):
    """``{name: (format, path, images.npy)}`` loaded and run in a Python without slimkit."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", _WITHOUT_SLIMKIT, json.dumps(exports)],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


def test_exports_load_without_slimkit_and_give_its_predictions(deep_run, alexnet_run, tmp_path,
                                                               mnist_dir, capsys):
    logdir = deep_run[0]
    paths = {"saved_model": tmp_path / "deep", "keras": tmp_path / "deep.keras",
             "tflite": tmp_path / "deep.tflite"}
    for fmt, path in paths.items():
        assert main(["export", str(logdir), "--format", fmt, str(path)]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0] == f"wrote {path} ({fmt}) from {logdir}/ckpt-200 (step 200, EMA weights)"
        assert lines[1] == ("  input:   images float32 (None, 28, 28, 1): pixels / 255 in [0, 1], "
                            "ink bright on black (slimkit.preprocess_digit)")
    alexnet = load_run(alexnet_run[0])
    export_model(alexnet, "keras", tmp_path / "alexnet.keras")  # LRN from stock Keras parts
    load_run(logdir).model.save(tmp_path / "with_slimkit_layers.keras")

    images = load_arrays("mnist", str(mnist_dir), validation_size=0).test.images[:64]
    images = images.astype(np.float32) / 255
    folder_images = np.asarray(next(iter(alexnet.data().eval_batches("validation", 8)))[0])
    np.save(tmp_path / "mnist.npy", images)
    np.save(tmp_path / "folder.npy", folder_images)
    exports = {fmt: (fmt, str(p), str(tmp_path / "mnist.npy")) for fmt, p in paths.items()}
    exports["alexnet"] = ("keras", str(tmp_path / "alexnet.keras"), str(tmp_path / "folder.npy"))
    exports["check"] = ("needs_slimkit", str(tmp_path / "with_slimkit_layers.keras"),
                        str(tmp_path / "mnist.npy"))
    elsewhere = _load_elsewhere(exports)
    assert elsewhere["check"] != "loaded"  # the slimkit-free interpreter really lacks slimkit
    expected = predict(load_run(logdir), images)
    for fmt in paths:
        got = elsewhere[fmt]
        np.testing.assert_allclose(got["logits"], expected["logits"], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(got["probabilities"], expected["probabilities"], atol=1e-5)
        assert got["classes"] == expected["classes"].tolist()
        assert got["names"] == list("0123456789")
    assert elsewhere["keras"]["class_name"] == expected["class_names"].tolist()
    np.testing.assert_allclose(elsewhere["alexnet"]["probabilities"],
                               predict(alexnet, folder_images)["probabilities"], atol=1e-5)
    assert elsewhere["alexnet"]["names"] == ["bar", "cross", "disc"]


def test_the_saved_model_says_what_it_holds(softmax_run, tmp_path, capsys):
    assert main(["export", str(softmax_run[0] / "ckpt-100"), "--format", "saved_model",
                 str(tmp_path / "m"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["global_step"], result["ema"], result["model"]) == (100, False,
                                                                        "softmax_regression")
    assert (tmp_path / "m" / "assets" / "class_names.txt").read_text() == "".join(
        f"{d}\n" for d in range(10))
    described = json.loads((tmp_path / "m" / "assets" / "slimkit_export.json").read_text())
    assert described["checkpoint"] == str(softmax_run[0] / "ckpt-100")
    assert described["inputs"]["images"]["shape"] == [None, 28, 28, 1]


def test_slimkits_own_layers_become_stock_keras_layers():
    """GroupedConv2D, LocalResponseNormalization and the dropouts of the paper's AlexNet."""
    model = slim.get_model("alexnet_paper", num_classes=4, input_shape=(67, 67, 3))
    stock = to_stock_keras(model)
    classes = {type(layer).__module__.split(".")[0] for layer in stock.layers}
    assert classes == {"keras"}
    assert stock.get_layer("conv2").groups == 2
    x = np.random.default_rng(0).normal(size=(2, 67, 67, 3)).astype(np.float32)
    np.testing.assert_allclose(stock(x).numpy(), model(x, training=False).numpy(), rtol=1e-4,
                               atol=1e-5)


def test_a_layer_without_a_stock_equivalent_is_refused(tmp_path):
    import keras

    images = keras.Input((8, 8, 1))
    net = slim.dropout(slim.flatten(images), 0.5, is_training=True, scope="always_on")
    model = keras.Model(images, slim.fully_connected(net, 3, scope="logits"), name="pinned")
    with pytest.raises(ValueError, match=r"^Cannot write model `pinned` as a \.keras file that "
                                         r"loads without slimkit: layer `always_on` has no stock "
                                         r"Keras equivalent \(it is pinned to training mode "
                                         r"\(is_training=True\), which stock Keras cannot "
                                         r"express\)\. Export it with --format saved_model \(or "
                                         r"tflite\), which needs no Python classes to load\.$"):
        to_stock_keras(model)


def test_a_write_fault_is_one_line_and_leaves_nothing_half_written(softmax_run, tmp_path,
                                                                   capsys):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the output's folder should be")
    out = blocker / "model.tflite"
    assert main(["export", str(softmax_run[0]), "--format", "tflite", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"slimkit export: error: Cannot write {out}: {blocker} is a file, not a folder. Expected a "
        "folder this user "
        "can write to, with room for the output: free space, or choose another OUT.\n")
    assert main(["export", str(softmax_run[0]), "--format", "keras", str(tmp_path / "m.h5")]) == 2
    assert "Expected a file name ending in .keras (Keras' rule), e.g. " in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_a_bf16_run_exports_in_its_precision_and_tflite_in_float32(softmax_run, tmp_path,
                                                                   mnist_dir):
    import shutil

    import tensorflow as tf

    logdir = shutil.copytree(softmax_run[0], tmp_path / "run")
    config = json.loads((logdir / "config.json").read_text())
    (logdir / "config.json").write_text(json.dumps({**config, "precision": "bf16"}))
    run = load_run(logdir)
    assert run.model.get_layer("logits").dtype_policy.name == "mixed_bfloat16"
    images = load_arrays("mnist", str(mnist_dir), validation_size=0).test.images[:32]
    images = images / np.float32(255)
    export_model(run, "saved_model", tmp_path / "m")
    export_model(run, "tflite", tmp_path / "m.tflite")
    served = tf.saved_model.load(str(tmp_path / "m")).signatures["serving_default"](
        images=tf.constant(images[..., None]))
    np.testing.assert_array_equal(served["logits"].numpy(), predict(run, images)["logits"])
    lite = tf.lite.Interpreter(model_path=str(tmp_path / "m.tflite"))
    lite_logits = lite.get_signature_runner("serving_default")(images=images[..., None])["logits"]
    float32 = predict(load_run(softmax_run[0]), images)["logits"]
    np.testing.assert_allclose(lite_logits, float32, rtol=1e-5, atol=1e-5)  # float32, not bf16
    assert np.abs(served["logits"].numpy() - float32).max() > 1e-4  # (bf16 differs from it)
