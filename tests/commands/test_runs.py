"""load_run: the one way eval, predict, inspect and export load a run, and its one-line errors."""

import io
import json
import re
import shutil

import numpy as np
import pytest
import tensorflow as tf

from slimkit.cli import main
from slimkit.runs import load_run


def _checkpoint_value(checkpoint, name):
    return tf.train.load_checkpoint(str(checkpoint)).get_tensor(name)


def test_a_logdir_loads_its_newest_checkpoint_with_the_ema_weights(deep_run):
    logdir, metrics = deep_run
    run = load_run(logdir)
    assert (run.global_step, run.checkpoint, run.ema) == (200, str(logdir / "ckpt-200"), True)
    assert run.class_names == tuple("0123456789") and run.image_shape == (28, 28, 1)
    assert run.config.model == "deep_mnist" and run.precision == "fp32" and run.mnist_type
    kernel = run.model.get_layer("conv1").kernel.numpy()
    shadow = _checkpoint_value(logdir / "ckpt-200", "ema/shadows/0/.ATTRIBUTES/VARIABLE_VALUE")
    np.testing.assert_array_equal(kernel, shadow)  # the averages, not the raw weights
    raw = load_run(logdir, use_ema=False)
    assert not raw.ema
    assert not np.array_equal(raw.model.get_layer("conv1").kernel.numpy(), shadow)


def test_kept_checkpoints_by_prefix_or_index_file(softmax_run):
    logdir, _ = softmax_run
    for path in (logdir / "ckpt-100", logdir / "ckpt-100.index"):
        run = load_run(path)
        assert (run.global_step, run.checkpoint) == (100, str(logdir / "ckpt-100"))
        np.testing.assert_array_equal(
            run.model.get_layer("logits").kernel.numpy(),
            _checkpoint_value(logdir / "ckpt-100",
                              "optimizer/_trainable_variables/0/.ATTRIBUTES/VARIABLE_VALUE"))


def test_at_init_is_the_untrained_model(softmax_run):
    run = load_run(softmax_run[0], at_init=True)
    assert (run.global_step, run.checkpoint) == (0, None)
    assert not run.model.get_layer("logits").kernel.numpy().any()  # the tutorial's zeros


def test_the_saved_precision_is_used_not_this_machines_choice(softmax_run, tmp_path):
    logdir = shutil.copytree(softmax_run[0], tmp_path / "run")
    config = json.loads((logdir / "config.json").read_text())
    config.update(model="lenet", precision="bf16")  # lenet: bf16 is its `auto` on AMX, not here
    shutil.rmtree(logdir)
    logdir.mkdir()
    (logdir / "config.json").write_text(json.dumps(config))
    run = load_run(logdir, at_init=True)
    assert run.precision == "bf16"
    assert run.model.get_layer("conv1").dtype_policy.name == "mixed_bfloat16"


def _copy(logdir, tmp_path, name="run"):
    return shutil.copytree(logdir, tmp_path / name)


def _cli_error(capsys, *argv):
    assert main(list(map(str, argv))) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    return err.strip()


def test_a_folder_without_checkpoint(softmax_run, tmp_path, capsys):
    shutil.copy(softmax_run[0] / "config.json", tmp_path)
    assert _cli_error(capsys, "eval", tmp_path) == (
        f"slimkit eval: error: No checkpoint found in {tmp_path}. Expected a logdir that `slimkit "
        "train` has saved a checkpoint into (a `checkpoint` file and ckpt-N.index files): train "
        f"first (`slimkit train --logdir {tmp_path}`), or name a checkpoint prefix such as "
        "runs/lenet/ckpt-2000.")


def test_a_checkpoint_that_does_not_exist_lists_those_that_do(softmax_run, capsys):
    logdir = softmax_run[0]
    assert _cli_error(capsys, "eval", logdir / "ckpt-150") == (
        f"slimkit eval: error: No checkpoint found at {logdir}/ckpt-150: no such logdir or "
        "checkpoint. Expected a logdir written by `slimkit train` or a checkpoint prefix such as "
        f"runs/lenet/ckpt-2000. Checkpoints in {logdir}: ckpt-100, ckpt-200, ckpt-300.")


def test_a_missing_config(softmax_run, tmp_path, capsys):
    logdir = _copy(softmax_run[0], tmp_path)
    (logdir / "config.json").unlink()
    assert _cli_error(capsys, "predict", logdir, "x.png") == (
        f"slimkit predict: error: No config.json in {logdir}: it is needed to rebuild the model. "
        "Expected the logdir of a `slimkit train` run, which writes it beside its checkpoints; "
        "copy the run's config.json there.")


@pytest.mark.parametrize("config_of, checkpoints_of, missing, guess", [
    ("deep", "softmax", "8 of the model's weights (conv1/kernel, conv1/bias, conv2/kernel, "
     "conv2/bias, ...)", "softmax_regression"),
    # deep_mnist and lenet have the same weights: a deep_mnist checkpoint could be either
    ("softmax", "deep", "2 of the model's weights (logits/kernel, logits/bias)",
     "deep_mnist` or `lenet"),
])
def test_another_models_checkpoint_is_refused_and_named(softmax_run, deep_run, tmp_path, capsys,
                                                        config_of, checkpoints_of, missing, guess):
    runs = {"softmax": softmax_run[0], "deep": deep_run[0]}
    logdir = _copy(runs[checkpoints_of], tmp_path)
    shutil.copy(runs[config_of] / "config.json", logdir)
    model = {"softmax": "softmax_regression", "deep": "deep_mnist"}[config_of]
    newest = {"softmax": "ckpt-300", "deep": "ckpt-200"}[checkpoints_of]
    assert _cli_error(capsys, "eval", logdir) == (
        f"slimkit eval: error: Checkpoint {logdir}/{newest} does not hold the `{model}` model "
        f"that {logdir}/config.json names: {missing} have no value in it. It seems to hold a "
        f"`{guess}` model. Expected a "
        "checkpoint of the run that config.json describes: pass the logdir the checkpoint was "
        "trained in, or put that run's config.json beside it.")


@pytest.mark.parametrize("damaged, reason", [
    ("ckpt-300.data-00000-of-00001", "Read less bytes than requested"),
    ("ckpt-300.index", None),
])
def test_a_truncated_checkpoint_names_the_previous_one(softmax_run, tmp_path, capsys, damaged,
                                                       reason):
    logdir = _copy(softmax_run[0], tmp_path)
    size = (logdir / damaged).stat().st_size
    with open(logdir / damaged, "r+b") as f:
        f.truncate(size // 2)
    line = _cli_error(capsys, "eval", logdir)
    match = re.fullmatch(rf"slimkit eval: error: Cannot read checkpoint {logdir}/ckpt-300: its "
                         r"files are corrupt or incomplete \((.+)\)\. Name an earlier checkpoint "
                         rf"instead, e.g\. {logdir}/ckpt-200; nothing was changed or deleted\.",
                         line)
    assert match, line
    if reason:
        assert match.group(1) == reason
    # and the previous one it names can be used
    assert main(["eval", str(logdir / "ckpt-200"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["global_step"] == 200


@pytest.mark.parametrize("argv", [["eval"], ["predict", "IMAGE"], ["inspect"],
                                  ["export", "--format", "tflite", "OUT"]])
def test_every_command_loads_runs_the_same_way(softmax_run, tmp_path, capsys, argv):
    logdir = _copy(softmax_run[0], tmp_path)
    (logdir / "ckpt-300.data-00000-of-00001").write_bytes(b"")
    command, *rest = argv
    line = _cli_error(capsys, command, logdir, *(str(tmp_path / a) if a.isupper() else a
                                                  for a in rest))
    assert line.startswith(f"slimkit {command}: error: Cannot read checkpoint {logdir}/ckpt-300: "
                           "its files are corrupt or incomplete (")
    assert line.endswith(f"Name an earlier checkpoint instead, e.g. {logdir}/ckpt-200; nothing "
                         "was changed or deleted.")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing written


def _speedrun(logdir, mnist_dir, steps, model_kwargs=None):
    from slimkit.training.config import TrainConfig
    from slimkit.training.loop import train

    return train(TrainConfig(logdir=str(logdir), model="mnist_speedrun", data_dir=str(mnist_dir),
                             precision="fp32", batch_size=32, steps=steps, validation_size=0,
                             model_kwargs=model_kwargs or {}), log_stream=io.StringIO())


def _as_saved_before_2026_12_06(logdir, given):
    """config.json as slimkit wrote it then: no `model_form`, the model_kwargs as given."""
    config = json.loads((logdir / "config.json").read_text())
    del config["model_form"]
    config["model_kwargs"] = given
    (logdir / "config.json").write_text(json.dumps(config))


def _files(logdir):
    return {p.relative_to(logdir): p.read_bytes() for p in logdir.rglob("*") if p.is_file()}


@pytest.mark.parametrize("given", [{}, {"conv2": 48}])
def test_a_run_saved_before_the_models_defaults_changed(mnist_dir, tmp_path, capsys, given):
    # A mnist-speedrun logdir of before 2026-12-06: conv1 at stride 1 then pool1, conv2 64 wide
    # unless given. With conv2=48 given, its weights have the shapes of today's default form: only
    # the absent `model_form` tells that it is the earlier one.
    logdir = tmp_path / "speedrun"
    trained = {"conv1_stride": 1, "conv2": 64, **given}  # the defaults then, and what was given
    _speedrun(logdir, mnist_dir, 3, trained)
    _as_saved_before_2026_12_06(logdir, given)

    for run in (load_run(logdir), load_run(logdir, at_init=True)):  # the form the run trained
        assert run.config.model_kwargs == trained
        shapes = {name: tuple(t.shape[1:]) for name, t in run.model.end_points.items()}
        assert shapes["conv1"] == (24, 24, 16) and shapes["pool1"] == (12, 12, 16)
        assert shapes["conv2"] == (12, 12, trained["conv2"])
    # at_init: the weights training started from (the trial builds of the forms draw no seed)
    import keras

    from slimkit.models.registry import get_model

    keras.utils.set_random_seed(run.config.seed)
    start = get_model("mnist_speedrun", **trained)
    for layer in ("conv1", "conv2", "fc3"):
        np.testing.assert_array_equal(run.model.get_layer(layer).kernel.numpy(),
                                      start.get_layer(layer).kernel.numpy())
    np.testing.assert_array_equal(  # (no EMA: the trained weights themselves)
        load_run(logdir).model.get_layer("conv2").kernel.numpy(),
        _checkpoint_value(logdir / "ckpt-3",
                          "optimizer/_trainable_variables/2/.ATTRIBUTES/VARIABLE_VALUE"))
    assert main(["eval", str(logdir)]) == 0
    capsys.readouterr()

    before = _files(logdir)
    with pytest.raises(ValueError) as refused:  # training on needs the form named
        _speedrun(logdir, mnist_dir, 6, given)
    flags = ",".join(f"{k}={v}" for k, v in sorted(trained.items()) if k != "conv2" or v != 48)
    assert str(refused.value) == (
        f"Cannot resume from {logdir}/ckpt-3: it holds `mnist_speedrun` with conv1_stride=1"
        f"{', conv2=64' if not given else ''}, and this run builds it with conv1_stride=2"
        f"{', conv2=48' if not given else ''}. Pass --model-kwargs {flags} to train on in this "
        "logdir, or use another --logdir. Nothing in the logdir was changed.")
    assert _files(logdir) == before
    _speedrun(logdir, mnist_dir, 6, trained)  # as the message says
    assert load_run(logdir).global_step == 6


def test_a_run_records_its_models_whole_form(mnist_dir, tmp_path):
    logdir = tmp_path / "speedrun"
    _speedrun(logdir, mnist_dir, 3, {"conv2": 32})
    saved = json.loads((logdir / "config.json").read_text())
    assert saved["model_form"] == {"crop": 2, "conv1": 16, "conv2": 32, "fc": 512,
                                   "conv1_stride": 2}
    assert saved["model_kwargs"] == {"conv2": 32}
    assert load_run(logdir).model.get_layer("conv2").kernel.shape == (3, 3, 16, 32)
    before = _files(logdir)
    with pytest.raises(ValueError, match=r"it holds `mnist_speedrun` with conv2=32, and this run "
                                         r"builds it with conv2=48. Pass --model-kwargs conv2=32 "
                                         r"to train on"):
        _speedrun(logdir, mnist_dir, 6)
    assert _files(logdir) == before


def test_dropout_and_unknown_keys_are_not_the_form(mnist_dir, tmp_path):
    from slimkit.training.config import TrainConfig
    from slimkit.training.loop import train

    logdir = tmp_path / "deep"

    def deep(steps, **settings):
        return train(TrainConfig(logdir=str(logdir), model="deep_mnist", data_dir=str(mnist_dir),
                                 precision="fp32", batch_size=16, steps=steps, validation_size=0,
                                 **settings), log_stream=io.StringIO())

    deep(2, keep_prob=0.7)
    assert json.loads((logdir / "config.json").read_text())["model_form"] == {}
    deep(4, model_kwargs={"dropout_keep_prob": 0.6})  # dropout may change on resume, either way
    assert load_run(logdir).global_step == 4
    with pytest.raises(ValueError, match=r"Invalid keyword argument.*conv3"):  # the model says so
        deep(6, model_kwargs={"conv3": 5})
