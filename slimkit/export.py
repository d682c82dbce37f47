"""Export a trained run as a model that loads without slimkit: SavedModel, ``.keras`` or TFLite.

    >>> run = slimkit.load_run("runs/deep-mnist-fast")           # EMA weights where kept
    >>> export_model(run, "saved_model", "exported/deep_mnist")["path"]
    'exported/deep_mnist'

    # elsewhere, with TensorFlow only:
    >>> loaded = tf.saved_model.load("exported/deep_mnist")
    >>> out = loaded.signatures["serving_default"](images=images)   # float32 (N, 28, 28, 1)
    >>> out["classes"], out["probabilities"], out["logits"]
    >>> loaded.signatures["class_names"]()["class_names"]           # [b'0', ..., b'9']

What each format holds (the input is always ``images``: float32 (N, H, W, C), scaled as in
training: MNIST-format pixels / 255 with the ink bright on black, e.g. from
:func:`slimkit.preprocess_digit`; image folders the evaluation preprocessing, see
:func:`slimkit.data.image_folder.evaluation_image`):

- ``saved_model`` (a folder, for TensorFlow Serving or ``tf.saved_model.load``): the signature
  ``serving_default`` returns ``logits`` and ``probabilities`` (float32, (N, classes)) and
  ``classes`` (int64, (N,), the argmax); the signature ``class_names`` (no input) returns the
  class names, index = class id; ``assets/class_names.txt`` holds them one per line and
  ``assets/slimkit_export.json`` the run it came from (model, checkpoint, step, precision, input).
  Written by Keras' ``ExportArchive``, which saves the variables and the traced functions only:
  loading needs no Python class of slimkit's.
- ``keras`` (a ``.keras`` file, for ``keras.models.load_model``): the model rebuilt from stock
  Keras layers (:func:`slimkit.layers.stock.to_stock_keras`), with a dict of outputs
  ``logits``, ``probabilities``, ``classes`` and ``class_name`` (the predicted class's name, from
  a stock ``StringLookup`` layer named ``class_names``, whose ``get_vocabulary()`` lists them
  all). A model with a layer that has no stock equivalent is refused with an error naming it.
- ``tflite`` (a ``.tflite`` file, for ``tf.lite.Interpreter`` or LiteRT's
  ``ai_edge_litert.interpreter.Interpreter``): converted from that SavedModel, with the same two
  signatures. It computes in float32 (TFLite has no mixed-bfloat16 kernels; the weights are the
  same float32 variables a bf16 run trains).

The SavedModel and ``.keras`` file compute in the run's saved precision, as ``slimkit eval``
does. Every output is written under a temporary name and renamed into place when complete
(:func:`slimkit.outputs.write_output`): a full disk leaves no half-written model.
"""

import json
import pathlib
import tempfile

FORMATS = ("saved_model", "keras", "tflite")


def export_model(run, format, out):
    """Writes ``run``'s model to ``out`` in ``format`` (see the module docstring).

    Args:
        run: A :class:`slimkit.runs.Run` (or a logdir or checkpoint path to load).
        format: ``"saved_model"``, ``"keras"`` or ``"tflite"``.
        out: The folder (SavedModel) or file to write; an existing one is replaced.

    Returns:
        ``{"format", "path", "inputs", "outputs", "class_names", "checkpoint", "global_step",
        "ema", "precision"}``.

    Raises:
        ValueError: For an unknown format, a ``.keras`` name not ending in ``.keras``, or a layer
            with no stock Keras equivalent (``keras``).
        OSError: If ``out`` cannot be written (one line naming it).

    Example:
        >>> export_model("runs/mnist-softmax-tutorial", "tflite", "softmax.tflite")["outputs"]
        ['logits', 'probabilities', 'classes']
    """
    from slimkit.runs import as_run

    run = as_run(run)
    if format not in FORMATS:
        raise ValueError(f"Invalid value for `format`. Expected one of {', '.join(FORMATS)}. "
                         f"Received format={format!r}.")
    out = pathlib.Path(out)
    if format == "keras" and out.suffix != ".keras":
        raise ValueError(f"Invalid output {out} for --format keras. Expected a file name ending "
                         f"in .keras (Keras' rule), e.g. {out.with_suffix('.keras')}.")
    outputs = ["logits", "probabilities", "classes"]
    if format == "saved_model":
        _write(out, lambda tmp: _saved_model(run, tmp))
    elif format == "keras":
        model = _keras_model(run)
        _write(out, model.save)
        outputs.append("class_name")
    else:
        with tempfile.TemporaryDirectory(prefix="slimkit-export-") as folder:
            _saved_model(run, pathlib.Path(folder) / "model", float32=True)
            contents = _tflite(pathlib.Path(folder) / "model")
        _write(out, lambda tmp: tmp.write_bytes(contents))
    return {"format": format, "path": str(out), **_description(run), "outputs": outputs}


def _description(run):
    scaling = ("pixels / 255 in [0, 1], ink bright on black (slimkit.preprocess_digit)"
               if run.mnist_type else "RGB resized and centre-cropped as in training, minus the "
               "ImageNet mean, divided by its standard deviation (slimkit.data.image_folder."
               "evaluation_image)")
    return {"inputs": {"images": {"dtype": "float32", "shape": [None, *run.image_shape],
                                  "scaling": scaling}},
            "class_names": list(run.class_names), "model": run.config.model,
            "checkpoint": run.checkpoint, "global_step": run.global_step, "ema": run.ema,
            "precision": run.precision}


def _write(out, write):
    """Writes one export output: every file ``export`` writes goes through here."""
    import tensorflow as tf

    from slimkit.outputs import write_output

    return write_output(out, write, "OUT", errors=(OSError, tf.errors.OpError))


# ---------------------------------------------------------------------------- SavedModel
def _saved_model(run, folder, float32=False):
    import keras
    import tensorflow as tf

    model = _float32_copy(run) if float32 and run.precision != "fp32" else run.model
    archive = keras.export.ExportArchive()
    archive.track(model)

    def serve(images):
        logits = tf.cast(model(images, training=False), tf.float32)
        return {"logits": logits, "probabilities": tf.nn.softmax(logits),
                "classes": tf.argmax(logits, axis=-1)}

    names = [str(name) for name in run.class_names]
    archive.add_endpoint("serving_default", serve, [tf.TensorSpec(
        [None, *run.image_shape], tf.float32, name="images")])
    archive.add_endpoint("class_names", lambda: {"class_names": tf.constant(names)}, [])
    archive.write_out(str(folder), verbose=False)
    assets = pathlib.Path(folder) / "assets"
    assets.mkdir(exist_ok=True)
    (assets / "class_names.txt").write_text("".join(f"{name}\n" for name in names))
    (assets / "slimkit_export.json").write_text(json.dumps(_description(run), indent=2) + "\n")


def _float32_copy(run):
    """The run's model built in float32 with the same weights (for TFLite)."""
    import types

    from slimkit.runs import build_model
    from slimkit.training.runtime import precision_policy

    with precision_policy("fp32"):
        model = build_model(run.config, types.SimpleNamespace(num_classes=run.num_classes,
                                                              image_shape=run.image_shape))
    model.set_weights(run.model.get_weights())
    return model


def _tflite(saved_model):
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    return converter.convert()


# ---------------------------------------------------------------------------- .keras
def _keras_model(run):
    import keras
    from keras import ops

    from slimkit.layers.stock import to_stock_keras

    stock = to_stock_keras(run.model)
    logits = stock.output
    classes = ops.cast(ops.argmax(logits, axis=-1), "int64")
    lookup = keras.layers.StringLookup(vocabulary=[str(n) for n in run.class_names], invert=True,
                                       num_oov_indices=0, mask_token=None, name="class_names")
    return keras.Model(stock.input, {
        "logits": logits, "probabilities": keras.layers.Softmax(name="probabilities")(logits),
        "classes": classes, "class_name": lookup(classes)}, name=run.model.name)
