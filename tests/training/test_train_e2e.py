"""End-to-end training on the real MNIST (in this process): accuracy, checkpoints, stops, EMA."""

import io
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from slimkit.evaluation import evaluate
from slimkit.training.config import TrainConfig
from slimkit.training.loop import NonFiniteLossError, train


def _ckpt_steps(logdir):
    return sorted(int(name[5:-6]) for name in os.listdir(logdir)
                  if name.startswith("ckpt-") and name.endswith(".index"))


def _event_files(folder):
    """The TensorBoard event files of a run folder (which also holds e.g. projector files)."""
    return sorted(name for name in os.listdir(folder) if "tfevents" in name)


def _scalar_tags(folder):
    tags = set()
    for name in _event_files(folder):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(folder, name)):
            tags.update(v.tag for v in event.summary.value)
    return tags


def _scalars(folder, tag):
    """[(step, value)] of the TensorBoard scalar ``tag`` written to ``folder``, in order."""
    found = []
    for name in _event_files(folder):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(folder, name)):
            found += [(event.step, float(tf.make_ndarray(v.tensor)))
                      for v in event.summary.value if v.tag == tag]
    return found


def _assert_best_is_the_max(logdir, evaluated):
    """best.json holds the first of the highest validation accuracies evaluated."""
    best = json.loads((logdir / "best" / "best.json").read_text())
    top = max(accuracy for _, accuracy in evaluated)
    assert best["step"] == next(step for step, accuracy in evaluated if accuracy == top)
    assert best["accuracy"] == pytest.approx(top, abs=1e-6)  # (TensorBoard holds float32)
    assert _ckpt_steps(logdir / "best") == [best["step"]]
    return best


def _kernels(checkpoint):
    """{layer name: kernel} of a lenet checkpoint, read through the model."""
    from slimkit.models.registry import get_model

    model = get_model("lenet")
    tf.train.Checkpoint(model=model).restore(str(checkpoint)).expect_partial()
    return {layer.name: layer.kernel.numpy() for layer in model.layers if hasattr(layer, "kernel")}


def _quiet():
    return io.StringIO()


def test_softmax_tutorial_preset_full_run(tmp_path, mnist_dir):
    logdir = tmp_path / "softmax"
    out = io.StringIO()
    config = TrainConfig.from_sources("mnist-softmax-tutorial",
                                      overrides={"logdir": str(logdir), "data_dir": str(mnist_dir)})
    metrics = train(config, log_stream=out)
    # The tutorial's ~92%: the result is deterministic for seed 0 (0.9147 with TF 2.21).
    assert metrics["test_accuracy"] >= 0.91
    assert metrics["global_step"] == 1000 and metrics["stopped"] == "steps"
    assert f"test accuracy: {metrics['test_accuracy']:.4f}" in out.getvalue()
    assert "projected time:" in out.getvalue()
    assert _ckpt_steps(logdir) == [500, 1000]  # the preset saves every 500 steps
    saved = json.loads((logdir / "config.json").read_text())
    assert saved["model"] == "softmax_regression" and saved["learning_rate"] == 0.5
    assert {"loss", "accuracy", "learning_rate", "examples_per_sec"} <= _scalar_tags(logdir / "train")
    # `slimkit eval` restores the same model and gets the same number.
    assert evaluate(logdir)["accuracy"] == metrics["test_accuracy"]
    # Running it again: the steps are already reached, so it exits at once and says so.
    out = io.StringIO()
    again = train(config, log_stream=out)
    assert again["stopped"] == "already_done" and again["global_step"] == 1000
    assert "already at step 1000 of 1000" in out.getvalue()


def test_deep_mnist_short_run_learns(tmp_path, mnist_dir):
    # precision auto: mixed bfloat16 where the CPU computes it fast (AMX, or measured faster on a
    # CPU with AVX512_BF16 alone), else fp32. Forcing bf16 on a CPU without it emulates every
    # bfloat16 op (over 10 min here on an AVX2 EPYC).
    from slimkit.training.runtime import choose_precision

    config = TrainConfig(model="deep_mnist", data_dir=str(mnist_dir), logdir=str(tmp_path),
                         optimizer="adam", learning_rate=1e-3, batch_size=64, steps=300,
                         keep_prob=0.5, precision="auto", log_every_n_steps=100)
    metrics = train(config, log_stream=_quiet())
    assert metrics["test_accuracy"] >= 0.95
    # (where it was measured, the second call reads the measurement from the cache)
    expected, why = choose_precision("auto", "deep_mnist", config)
    assert metrics["precision"] == expected
    # config.json records what `auto` chose and why (eval and export build the model in it), and
    # still serves as a config file
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["precision"] == metrics["precision"]
    assert saved["precision_reason"] in (why, why.replace("(cached in ", "(now saved in "))
    assert TrainConfig.from_sources(config_file=tmp_path / "config.json").precision == \
        metrics["precision"]


def test_checkpoint_retention_keeps_the_last_n(tmp_path, mnist_dir):
    config = TrainConfig(model="softmax_regression", data_dir=str(mnist_dir), logdir=str(tmp_path),
                         learning_rate=0.5, batch_size=50, steps=40, save_every_n_steps=5,
                         keep=3, steps_per_call=4)
    train(config, log_stream=_quiet())
    assert _ckpt_steps(tmp_path) == [30, 35, 40]
    state = (tmp_path / "checkpoint").read_text()
    assert 'model_checkpoint_path: "ckpt-40"' in state
    keys = {k for k, _ in tf.train.list_variables(str(tmp_path / "ckpt-40"))}
    assert {"global_step/.ATTRIBUTES/VARIABLE_VALUE",
            "data_position/.ATTRIBUTES/VARIABLE_VALUE"} <= keys
    position = tf.train.load_checkpoint(str(tmp_path / "ckpt-40")).get_tensor(
        "data_position/.ATTRIBUTES/VARIABLE_VALUE")
    assert position.tolist() == [0, 40 * 50]  # (epoch, offset) of the next example


def test_logdir_of_another_model_is_refused(tmp_path, mnist_dir):
    train(TrainConfig(model="softmax_regression", data_dir=str(mnist_dir), logdir=str(tmp_path),
                      steps=5), log_stream=_quiet())
    with pytest.raises(ValueError, match=r"holds a run with model='softmax_regression' \(this run: "
                                         r"'lenet'\).*Use another --logdir"):
        train(TrainConfig(model="lenet", data_dir=str(mnist_dir), logdir=str(tmp_path), steps=5),
              log_stream=_quiet())


def test_nonfinite_loss_stops_with_diagnosis_and_keeps_last_good_checkpoint(tmp_path, mnist_dir):
    # A sane rate for 10 steps (checkpoint at 10), then 1e30: the weights blow up at once.
    config = TrainConfig(model="deep_mnist", data_dir=str(mnist_dir), logdir=str(tmp_path),
                         optimizer="sgd", lr_schedule="piecewise", lr_boundaries=[10],
                         lr_values=[0.01, 1e30], batch_size=16, steps=50, save_every_n_steps=10,
                         precision="fp32")
    with pytest.raises(NonFiniteLossError) as info:
        train(config, log_stream=_quiet())
    message = str(info.value)
    assert "Non-finite loss or gradient at step 1" in message          # step 11..19
    # diagnose_nonfinite's finding: the first layer whose output overflowed (deterministic ops).
    assert ": the output of layer 'conv2' (Conv2D) is the first non-finite value in the forward " \
           "pass" in message
    assert "its inputs and weights are finite, so the values overflowed in this layer" in message
    assert f"the last good checkpoint is {tmp_path / 'ckpt-10'}" in message
    assert _ckpt_steps(tmp_path) == [10]                               # no NaN weights written
    reader = tf.train.load_checkpoint(str(tmp_path / "ckpt-10"))
    assert all(np.isfinite(reader.get_tensor(k)).all() for k in reader.get_variable_to_shape_map()
               if k.startswith("model/") or "_trainable_variables" in k)
    assert not (tmp_path / "slimkit.lock").exists()                    # resumable by a new run


def test_max_time_checkpoints_then_evaluates(tmp_path, mnist_dir):
    config = TrainConfig(model="softmax_regression", data_dir=str(mnist_dir), logdir=str(tmp_path),
                         learning_rate=0.5, batch_size=100, steps=10**6, max_time=1.0)
    metrics = train(config, log_stream=_quiet())
    assert metrics["stopped"] == "max_time"
    assert 0 < metrics["global_step"] < 10**6
    assert _ckpt_steps(tmp_path)[-1] == metrics["global_step"]
    assert 0 < metrics["test_accuracy"] <= 1  # the final evaluation still ran


def test_ema_best_checkpoint_and_trainable_scopes(tmp_path, mnist_dir):
    config = TrainConfig(model="lenet", data_dir=str(mnist_dir), logdir=str(tmp_path),
                         optimizer="momentum", learning_rate=0.02, batch_size=32, steps=60,
                         ema_decay=0.9, keep_best=True, eval_every_n_steps=20, label_smoothing=0.1,
                         validation_size=1000,
                         clip_gradient_norm=1.0, trainable_scopes=["fc3", "fc4"],
                         save_every_n_steps=20, precision="fp32")
    metrics = train(config, log_stream=_quiet())
    evaluated = _scalars(tmp_path / "validation", "accuracy")
    assert [step for step, _ in evaluated] == [20, 40, 60]  # the final step once, not twice
    best = _assert_best_is_the_max(tmp_path, evaluated)
    assert {"accuracy", "loss"} <= _scalar_tags(tmp_path / "validation")
    # Only fc3 and fc4 were trained: the conv kernels are the same at steps 20 and 60.
    first, last = (_kernels(tmp_path / f"ckpt-{s}") for s in (20, 60))
    changed = sorted(name for name in first if not np.array_equal(first[name], last[name]))
    assert changed == ["fc3", "fc4"]
    # EMA shadows are saved, and evaluation uses them.
    assert any(k.startswith("ema/") for k, _ in tf.train.list_variables(str(tmp_path / "ckpt-20")))
    result = evaluate(tmp_path)
    assert result["ema"] is True
    assert result["accuracy"] == metrics["test_accuracy"]
    # The kept best checkpoint evaluates too (config.json is found in the logdir above best/).
    kept = evaluate(tmp_path / "best", split="validation")
    assert (kept["global_step"], kept["accuracy"]) == (best["step"], best["accuracy"])


def test_custom_train_step_fn_is_used(tmp_path, mnist_dir):
    from slimkit.training.step import make_train_step

    calls = []

    def my_step_fn(model, loss_fn, optimizer, strategy, options):
        step = make_train_step(model, loss_fn, optimizer, strategy, options)

        def counted(images, labels):
            calls.append(int(labels.shape[0]))
            return step(images, labels)
        return counted

    config = TrainConfig(model="softmax_regression", data_dir=str(mnist_dir), logdir=str(tmp_path),
                         learning_rate=0.5, batch_size=100, steps=30, steps_per_call=10)
    metrics = train(config, train_step_fn=my_step_fn, log_stream=_quiet())
    assert calls == [10, 10, 10] and metrics["global_step"] == 30


def test_keep_best_considers_the_final_weights(tmp_path, mnist_dir):
    # Checkpoints are due at step 20 only; the final checkpoint (30) is evaluated for best/ too.
    config = TrainConfig(model="softmax_regression", data_dir=str(mnist_dir), logdir=str(tmp_path),
                         learning_rate=0.5, steps=30, keep_best=True, save_every_n_steps=20)
    out = io.StringIO()
    train(config, log_stream=out)
    evaluated = _scalars(tmp_path / "validation", "accuracy")
    assert [step for step, _ in evaluated] == [20, 30]
    assert "step 30: validation accuracy" in out.getvalue()
    _assert_best_is_the_max(tmp_path, evaluated)


def test_startup_delay_steps_is_a_no_op_on_one_worker(tmp_path, mnist_dir):
    """TF-Slim delays only non-chief workers of asynchronous training: one worker runs at once.
    Synchronous multi-worker training refuses it (every worker takes part in every step)."""
    from slimkit.training.checks import check_startup_delay

    config = TrainConfig(model="softmax_regression", data_dir=str(mnist_dir), logdir=str(tmp_path),
                         learning_rate=0.5, batch_size=100, steps=30, startup_delay_steps=5)
    metrics = train(config, log_stream=_quiet())
    assert (metrics["global_step"], metrics["stopped"]) == (30, "steps")
    check_startup_delay(config, workers=1)
    with pytest.raises(ValueError) as info:
        check_startup_delay(config, workers=2)  # the count distribute.num_workers gives train()
    assert str(info.value) == (
        "Invalid value for `startup_delay_steps` with synchronous multi-worker training: every "
        "worker takes part in every step, so none can start later (TF-Slim requires 0 with a sync "
        "optimizer too). Expected 0. Received startup_delay_steps=5.")


def test_seconds_based_checkpoints_and_summaries(tmp_path, mnist_dir):
    # Steps-based triggers off, a time trigger shorter than any call: each call of 2 steps saves.
    config = TrainConfig(model="softmax_regression", data_dir=str(mnist_dir), logdir=str(tmp_path),
                         learning_rate=0.5, batch_size=100, steps=20, steps_per_call=2, keep=100,
                         save_every_n_steps=None, save_every_n_secs=1e-6,
                         save_summaries_steps=None, save_summaries_secs=1e-6)
    train(config, log_stream=_quiet())
    assert _ckpt_steps(tmp_path) == list(range(2, 21, 2))
    assert [step for step, _ in _scalars(tmp_path / "train", "loss")] == list(range(2, 21, 2))


def test_time_triggers_off_leave_only_the_final_checkpoint(tmp_path, mnist_dir):
    config = TrainConfig(model="softmax_regression", data_dir=str(mnist_dir), logdir=str(tmp_path),
                         learning_rate=0.5, batch_size=100, steps=20, steps_per_call=2,
                         save_every_n_secs=0, save_summaries_steps=None, save_summaries_secs=0)
    train(config, log_stream=_quiet())
    assert _ckpt_steps(tmp_path) == [20]
    # No scalar summary was due (the once-per-run ones, text, graph, the end's pictures, are
    # written; `--summaries none` turns everything off).
    assert "loss" not in _scalar_tags(tmp_path / "train")


def test_precision_auto_rules(monkeypatch):
    from slimkit.training import runtime

    monkeypatch.setattr(runtime, "cpu_flags", lambda: {"avx512f", "avx512_bf16", "amx_bf16"})
    assert runtime.choose_precision("auto", "deep_mnist") == (
        "bf16", "auto: the CPU has AMX (amx_bf16)")
    precision, why = runtime.choose_precision("auto", "softmax_regression")
    assert precision == "fp32" and "softmax_regression stays in float32" in why
    # AVX512_BF16 without AMX: measured (test_precision_probe.py); with nothing to measure, fp32
    monkeypatch.setattr(runtime, "cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    assert runtime.fast_bf16_hardware() == (None, "the CPU has AVX512_BF16 but no AMX")
    assert runtime.choose_precision("auto", "deep_mnist") == (
        "fp32", "auto: the CPU has AVX512_BF16 but no AMX, and no run to measure")
    monkeypatch.setattr(runtime, "cpu_flags", lambda: {"avx2"})
    assert runtime.choose_precision("auto", "deep_mnist")[0] == "fp32"
    assert runtime.choose_precision("bf16", "softmax_regression") == ("bf16", "asked for")


def test_checkpoint_path_warm_starts_only_a_logdir_without_its_own(tmp_path, mnist_dir):
    def config(logdir, steps, **kw):
        return TrainConfig(model="softmax_regression", data_dir=str(mnist_dir),
                           logdir=str(tmp_path / logdir), learning_rate=0.5, batch_size=100,
                           steps=steps, **kw)

    source = train(config("source", 20), log_stream=_quiet())
    out = io.StringIO()
    warm = train(config("target", 5, checkpoint_path=source["checkpoint"]), log_stream=out)
    assert f"warm start from {source['checkpoint']}: restored 2 variables" in out.getvalue()
    assert warm["test_accuracy"] > 0.8  # 20 + 5 steps of training (5 from scratch: 0.74)
    out = io.StringIO()
    train(config("target", 8, checkpoint_path=source["checkpoint"]), log_stream=out)
    assert "resuming from" in out.getvalue() and "warm start" not in out.getvalue()  # own wins
