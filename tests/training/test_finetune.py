"""Warm-starting zoo models from slimkit checkpoints and Keras weights files, with excluded scopes."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from slimkit.models.registry import get_model
from slimkit.training.finetune import restore_for_finetuning, select_trainable


def values(model):
    return {v.path: v.numpy().copy() for v in model.weights}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A deep_mnist (10 classes) with non-initial weights, saved both ways like a training run."""
    root = tmp_path_factory.mktemp("source")
    model = get_model("deep_mnist")
    for v in model.weights:  # stand-in for training: weights no fresh model can have
        v.assign(tf.fill(v.shape, 0.5) + tf.cast(tf.reshape(tf.range(tf.size(v)), v.shape), tf.float32) * 1e-6)
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    # The slimkit layout: Checkpoint(model, optimizer, step, ...) managed in a logdir.
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=tf.Variable(200, dtype=tf.int64))
    manager = tf.train.CheckpointManager(checkpoint, str(root / "logdir"), max_to_keep=2)
    manager.save()
    prefix = manager.save()
    model.save_weights(str(root / "deep_mnist.weights.h5"))
    return {"values": values(model), "logdir": root / "logdir", "prefix": prefix,
            "h5": root / "deep_mnist.weights.h5"}


@pytest.mark.parametrize("source", ["logdir", "prefix", "h5"])
def test_new_number_of_classes_with_excluded_last_layer(trained, source):
    model = get_model("deep_mnist", num_classes=5)
    fresh = values(model)
    summary = restore_for_finetuning(model, trained[source], exclude_scopes=["fc2"])
    where = trained["prefix"] if source in ("logdir", "prefix") else str(trained["h5"])
    assert summary == (f"restored 6 variables (conv1, conv2, fc1) from {where}; kept the fresh "
                       "initialization of 2 under fc2")
    now = values(model)
    for name in ("conv1/kernel", "conv1/bias", "conv2/kernel", "conv2/bias", "fc1/kernel", "fc1/bias"):
        np.testing.assert_array_equal(now[name], trained["values"][name], err_msg=name)
    for name in ("fc2/kernel", "fc2/bias"):
        np.testing.assert_array_equal(now[name], fresh[name], err_msg=name)


@pytest.mark.parametrize("source", ["prefix", "h5"])
def test_mismatched_shapes_are_named_with_both_shapes_and_the_fix(trained, source):
    model = get_model("deep_mnist", num_classes=5)
    fresh = values(model)
    with pytest.raises(ValueError, match=r"Cannot warm-start from .*: fc2/kernel has shape \(1024, 10\) "
                       r"in the checkpoint but \(1024, 5\) in the model; fc2/bias has shape \(10,\) in "
                       r"the checkpoint but \(5,\) in the model\. Leave these layers' fresh initialization "
                       r"with --checkpoint-exclude-scopes fc2 \(in Python, checkpoint_exclude_scopes="
                       r"\['fc2'\]\)"):
        restore_for_finetuning(model, trained[source])
    # All or nothing: the refused restore assigned no variable.
    for name, value in values(model).items():
        np.testing.assert_array_equal(value, fresh[name], err_msg=name)


def test_same_model_restores_everything(trained):
    model = get_model("deep_mnist")
    assert restore_for_finetuning(model, trained["prefix"]) == (
        f"restored 8 variables (conv1, conv2, fc1, fc2) from {trained['prefix']}")
    for name, value in values(model).items():
        np.testing.assert_array_equal(value, trained["values"][name], err_msg=name)


def small(use_bias, units=3):
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(8, use_bias=use_bias, name="fc1")(inputs)
    return keras.Model(inputs, keras.layers.Dense(units, name="logits")(hidden))


@pytest.mark.parametrize("suffix", ["ckpt", "weights.h5"])
def test_variable_missing_from_the_checkpoint_is_named(tmp_path, suffix):
    source = small(use_bias=False)
    if suffix == "ckpt":
        path = tf.train.Checkpoint(model=source).save(str(tmp_path / "ckpt"))
    else:
        path = str(tmp_path / "small.weights.h5")
        source.save_weights(path)
    with pytest.raises(ValueError, match=r"fc1/bias \(8,\) is not in the checkpoint\. Leave these "
                       r"layers' fresh initialization with --checkpoint-exclude-scopes fc1"):
        restore_for_finetuning(small(use_bias=True), path)


def test_other_architecture_is_refused(trained):
    with pytest.raises(ValueError, match=r"was saved from another architecture: it holds 9 layers where "
                       r"this model has 3\. Layers are matched in order \(checkpoints do not record layer "
                       r"names\)"):
        restore_for_finetuning(get_model("softmax_regression"), trained["prefix"])


def test_unknown_exclude_scope_lists_the_models_scopes(trained):
    with pytest.raises(ValueError, match=r"Invalid value for argument `checkpoint_exclude_scopes`: "
                       r"scope\(s\) \['fc8'\] match no variable of model 'deep_mnist'\. Expected "
                       r"layer-name prefixes among its scopes: conv1, conv2, fc1, fc2\."):
        restore_for_finetuning(get_model("deep_mnist"), trained["prefix"], exclude_scopes=["fc8"])


def test_missing_checkpoint_paths_say_what_was_expected(tmp_path):
    model = get_model("softmax_regression")
    with pytest.raises(FileNotFoundError, match=r"No checkpoint in .*: expected a slimkit logdir with a "
                       r"`checkpoint` file"):
        restore_for_finetuning(model, tmp_path)
    with pytest.raises(FileNotFoundError, match=r"No checkpoint at .*ckpt-7: expected a slimkit logdir, "
                       r"a checkpoint prefix \(a file .*ckpt-7\.index"):
        restore_for_finetuning(model, tmp_path / "ckpt-7")
    with pytest.raises(FileNotFoundError, match=r"Keras weights file not found: .*nope\.weights\.h5"):
        restore_for_finetuning(model, tmp_path / "nope.weights.h5")


def test_junk_weights_file_is_named_with_the_fix(tmp_path):
    junk = tmp_path / "bad.weights.h5"
    junk.write_text("junk")
    with pytest.raises(ValueError) as info:
        restore_for_finetuning(get_model("softmax_regression"), junk)
    assert str(info.value) == (
        f"Cannot read Keras weights file {junk}: Unable to synchronously open file (file signature "
        "not found). It is corrupt or not a weights file (a cut-off download or copy, another "
        "format). Expected a file written by model.save_weights('name.weights.h5'); pass an intact "
        "one to --checkpoint-path.")


def test_junk_checkpoint_index_is_named_with_the_fix(tmp_path):
    prefix = tmp_path / "g"
    (tmp_path / "g.index").write_text("junkjunk")
    with pytest.raises(ValueError) as info:
        restore_for_finetuning(get_model("softmax_regression"), prefix)
    assert str(info.value) == (
        f"Cannot read checkpoint {prefix}: its files ({prefix}.index, {prefix}.data-00000-of-00001) "
        "are corrupt or incomplete (file is too short to be an sstable). Expected an intact "
        "TensorFlow checkpoint; pass another to --checkpoint-path (e.g. an earlier ckpt-N of the "
        "same run).")


def test_damaged_checkpoint_data_assigns_nothing(tmp_path):
    """lenet's data file is mostly fc3's kernel: damaged in its middle, conv1 and conv2 (read first)
    and the object graph (stored last, so a cut-off tail fails before any value is read) are intact
    and fc3 is not, so an assign-as-you-go restore would have changed conv1 and conv2."""
    source = get_model("lenet")
    for v in source.weights:
        v.assign(tf.fill(v.shape, 0.5))
    prefix = tf.train.Checkpoint(model=source).save(str(tmp_path / "ckpt"))
    data = prefix + ".data-00000-of-00001"
    with open(data, "r+b") as f:
        f.seek(os.path.getsize(data) // 2)
        f.write(b"\xff" * 64)  # (as a bad disk block or a broken copy)
    reader = tf.train.load_checkpoint(prefix)
    shapes = reader.get_variable_to_shape_map()
    conv1 = next(k for k in shapes if k.startswith("model/") and shapes[k] == [5, 5, 1, 32])
    np.testing.assert_array_equal(reader.get_tensor(conv1), 0.5)  # still readable
    model = get_model("lenet")
    fresh = values(model)
    with pytest.raises(ValueError, match=rf"^Cannot read checkpoint {prefix}: its files .* are corrupt "
                                         r"or incomplete \(.*Checksum does not match"):
        restore_for_finetuning(model, prefix)
    for name, value in values(model).items():
        np.testing.assert_array_equal(value, fresh[name], err_msg=name)


def test_checkpoint_without_a_model_is_refused(tmp_path):
    path = tf.train.Checkpoint(step=tf.Variable(1)).save(str(tmp_path / "ckpt"))
    with pytest.raises(ValueError, match=r"is not a checkpoint of a Keras functional model: it has no "
                       r"`model/_operations` \(top-level objects: step, save_counter\)"):
        restore_for_finetuning(get_model("softmax_regression"), path)


def test_restores_into_a_model_built_under_a_strategy(trained):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        model = get_model("deep_mnist", num_classes=5)
    restore_for_finetuning(model, trained["logdir"], exclude_scopes=["fc2"])
    np.testing.assert_array_equal(values(model)["conv2/kernel"], trained["values"]["conv2/kernel"])


def test_select_trainable_by_scope_prefix():
    model = get_model("deep_mnist")
    assert [v.path for v in select_trainable(model, ["fc2"])] == ["fc2/kernel", "fc2/bias"]
    assert [v.path for v in select_trainable(model, ["fc"])] == [
        "fc1/kernel", "fc1/bias", "fc2/kernel", "fc2/bias"]
    assert [v.path for v in select_trainable(model, "conv2,fc2/bias")] == [
        "conv2/kernel", "conv2/bias", "fc2/bias"]
    assert select_trainable(model, []) == list(model.trainable_variables)
    assert select_trainable(model, None) == list(model.trainable_variables)


def test_select_trainable_unknown_scope_lists_the_models_scopes():
    with pytest.raises(ValueError, match=r"Invalid value for argument `trainable_scopes`: scope\(s\) "
                       r"\['fc9', 'logits'\] match no variable of model 'deep_mnist'\. Expected layer-name "
                       r"prefixes among its scopes: conv1, conv2, fc1, fc2\."):
        select_trainable(get_model("deep_mnist"), ["fc1", "fc9", "logits"])


def test_lenet_ten_to_five_classes(tmp_path):
    source = get_model("lenet")
    path = tf.train.Checkpoint(model=source).save(str(tmp_path / "ckpt"))
    model = get_model("lenet", num_classes=5)
    with pytest.raises(ValueError, match=r"fc4/kernel has shape \(1024, 10\) in the checkpoint but "
                       r"\(1024, 5\) in the model; fc4/bias has shape \(10,\) in the checkpoint but "
                       r"\(5,\) in the model\. .*--checkpoint-exclude-scopes fc4 "):
        restore_for_finetuning(model, path)
    assert restore_for_finetuning(model, path, exclude_scopes=["fc4"]).startswith(
        "restored 6 variables (conv1, conv2, fc3) from ")
    np.testing.assert_array_equal(model.get_layer("fc3").kernel.numpy(), source.get_layer("fc3").kernel.numpy())


# ------------------------------------------------------------------ through `slimkit train`
def slimkit_train(*args):
    command = [sys.executable, "-m", "slimkit", "train", "lenet", "--steps", "10", "--batch-size", "32",
               "--precision", "fp32", "--save-every-n-steps", "10", *args]
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"slimkit train timed out:\n{e.stderr}")


def test_slimkit_train_warm_starts_with_excluded_and_trainable_scopes(tmp_path, mnist_dir):
    """A 5-class lenet checkpoint warm-starts a 10-class MNIST run: refused with the fix in one
    line, then accepted with --checkpoint-exclude-scopes; --trainable-scopes leaves the rest as
    restored."""
    source = get_model("lenet", num_classes=5)
    source_path = tf.train.Checkpoint(model=source).save(str(tmp_path / "source" / "ckpt"))

    refused = slimkit_train("--logdir", str(tmp_path / "refused"), "--checkpoint-path", source_path)
    assert refused.returncode == 2, refused.stderr[-2000:]
    last = refused.stderr.strip().splitlines()[-1]
    assert last.startswith(f"slimkit train: error: Cannot warm-start from {source_path}: fc4/kernel has "
                           "shape (1024, 5) in the checkpoint but (1024, 10) in the model")
    assert "--checkpoint-exclude-scopes fc4 " in last

    logdir = tmp_path / "tuned"
    done = slimkit_train("--logdir", str(logdir), "--checkpoint-path", source_path,
                         "--checkpoint-exclude-scopes", "fc4", "--trainable-scopes", "fc4")
    assert done.returncode == 0, done.stderr[-2000:]
    assert (f"warm start from {source_path}: restored 6 variables (conv1, conv2, fc3) from "
            f"{source_path}; kept the fresh initialization of 2 under fc4") in done.stdout
    # The run's checkpoint: conv/fc3 exactly as restored (not trained), fc4 trained from scratch.
    tuned = get_model("lenet")
    restore_for_finetuning(tuned, logdir)
    for layer in ("conv1", "conv2", "fc3"):
        np.testing.assert_array_equal(tuned.get_layer(layer).kernel.numpy(),
                                      source.get_layer(layer).kernel.numpy(), err_msg=layer)
    assert tuned.get_layer("fc4").kernel.shape == (1024, 10)
