"""precision auto where the hardware does not say (AVX512_BF16 without AMX): measured, cached.

The CPU flags are set by monkeypatch (this machine may be any of the project's CPUs); the
measurement itself is real in the test that times it, and a stand-in elsewhere, so that the
choice it leads to is known.
"""

import io
import json

import numpy as np
import pytest
import tensorflow as tf

from slimkit.training import precision_probe, runtime
from slimkit.training.config import TrainConfig
from slimkit.training.loop import train

NO_AMX = {"avx2", "avx512f", "avx512_bf16"}


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    home = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    return home


def _timings(fp32_s, bf16_s, calls):
    def measure(config, batch):
        calls.append((config.model, batch))
        return fp32_s, bf16_s
    return measure


def _must_not_measure(config, batch):
    raise AssertionError("measured although the choice was cached")


def test_auto_measures_once_per_machine_and_recipe_then_reads_the_cache(cache_home, monkeypatch):
    monkeypatch.setattr(runtime, "cpu_flags", lambda: NO_AMX)
    calls = []
    monkeypatch.setattr(precision_probe, "measure_step_seconds", _timings(0.030, 0.020, calls))
    config = TrainConfig(model="deep_mnist", batch_size=256)
    path = cache_home / "slimkit" / "precision.json"
    announced = []

    choice = runtime.choose_precision("auto", "deep_mnist", config, replicas=2,
                                      on_measure=lambda: announced.append(1))
    assert choice == ("bf16", "auto: the CPU has AVX512_BF16 but no AMX; measured on this machine: "
                              "one deep_mnist step at batch 128 takes 20 ms in bfloat16, 30 ms in "
                              f"float32 (now saved in {path})")
    assert calls == [("deep_mnist", 128)] and announced == [1]  # one replica's share of 256
    (entry,) = json.loads(path.read_text()).values()
    assert entry["choice"] == "bf16" and entry["batch"] == 128

    monkeypatch.setattr(precision_probe, "measure_step_seconds", _must_not_measure)
    again = runtime.choose_precision("auto", "deep_mnist", config, replicas=2,
                                     on_measure=lambda: announced.append(2))
    assert again == ("bf16", choice[1].replace("now saved in", "cached in"))
    assert announced == [1]  # nothing said when nothing is measured

    # Another recipe (batch, model arguments) is another measurement, kept beside the first.
    monkeypatch.setattr(precision_probe, "measure_step_seconds", _timings(0.021, 0.020, calls))
    other = TrainConfig(model="deep_mnist", batch_size=64)
    assert runtime.choose_precision("auto", "deep_mnist", other)[0] == "fp32"  # 5% is too little
    assert calls[-1] == ("deep_mnist", 64) and len(json.loads(path.read_text())) == 2
    # Asked-for precisions and models kept in float32 are never measured.
    monkeypatch.setattr(precision_probe, "measure_step_seconds", _must_not_measure)
    assert runtime.choose_precision("fp32", "deep_mnist", config) == ("fp32", "asked for")
    assert runtime.choose_precision("auto", "softmax_regression", config)[0] == "fp32"
    # Without a run to measure (a logdir of old that saved `auto`), float32.
    assert runtime.choose_precision("auto", "deep_mnist") == (
        "fp32", "auto: the CPU has AVX512_BF16 but no AMX, and no run to measure")


def test_a_cache_that_cannot_be_read_or_written_is_measured_again_never_an_error(
        tmp_path, monkeypatch):
    monkeypatch.setattr(runtime, "cpu_flags", lambda: NO_AMX)
    calls = []
    monkeypatch.setattr(precision_probe, "measure_step_seconds", _timings(0.010, 0.040, calls))
    config = TrainConfig(model="lenet", batch_size=32)
    # The cache folder's parent is a file: nothing can be created there.
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("x")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    for _ in range(2):
        precision, why = runtime.choose_precision("auto", "lenet", config)
        assert precision == "fp32"
        assert why.endswith(f"40 ms in bfloat16, 10 ms in float32 (could not be saved in "
                            f"{blocker / 'slimkit' / 'precision.json'})")
    assert len(calls) == 2
    assert blocker.read_text() == "x"
    # A damaged cache file is measured again and replaced by a good one.
    home = tmp_path / "home"
    (home / "slimkit").mkdir(parents=True)
    (home / "slimkit" / "precision.json").write_text("{not json")
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    assert runtime.choose_precision("auto", "lenet", config)[0] == "fp32"
    assert len(calls) == 3
    (entry,) = json.loads((home / "slimkit" / "precision.json").read_text()).values()
    assert entry["choice"] == "fp32" and entry["fp32_s"] == 0.010


def test_the_measurement_times_the_runs_own_step_in_both_precisions():
    config = TrainConfig(model="mnist_speedrun", batch_size=32, label_smoothing=0.1,
                         model_kwargs={"conv2": 32})
    fp32_s, bf16_s = precision_probe.measure_step_seconds(config, batch=8, rounds=2)
    assert 0 < fp32_s < 10 and 0 < bf16_s < 60
    # the global policy is left as it was
    import keras
    assert keras.mixed_precision.global_policy().name == "float32"


def test_train_says_it_measures_saves_the_choice_and_starts_from_the_same_weights(
        cache_home, monkeypatch, tmp_path, mnist_dir):
    """The measurement may draw random numbers (the real one builds two models): the run's
    weights must be the same whether the choice was measured now or read from the cache."""
    monkeypatch.setattr(runtime, "cpu_flags", lambda: NO_AMX)
    calls = []

    def measure(config, batch):
        calls.append(batch)
        tf.random.uniform(())  # as building the probe's models does
        np.random.random()
        import keras
        keras.random.uniform(())
        return 0.010, 0.030  # float32 faster: the run trains in float32 on this CPU

    monkeypatch.setattr(precision_probe, "measure_step_seconds", measure)
    outputs, weights = [], []
    for name in ("measured", "cached"):
        logdir = tmp_path / name
        out = io.StringIO()
        config = TrainConfig(model="mnist_speedrun", data_dir=str(mnist_dir), logdir=str(logdir),
                             batch_size=16, steps=3, validation_size=0, summaries="none",
                             precision="auto", seed=3)
        metrics = train(config, log_stream=out)
        outputs.append(out.getvalue())
        saved = json.loads((logdir / "config.json").read_text())
        assert metrics["precision"] == saved["precision"] == "fp32"
        assert "measured on this machine: one mnist_speedrun step at batch 16" in \
            saved["precision_reason"]
        reader = tf.train.load_checkpoint(str(logdir))
        weights.append({name: reader.get_tensor(name)
                        for name in reader.get_variable_to_shape_map()
                        if name.startswith("optimizer/_trainable_variables/")})  # the weights
    assert calls == [16]
    assert "precision auto: timing a mnist_speedrun step in bfloat16 and in float32" in outputs[0]
    assert "timing" not in outputs[1] and "(cached in " in outputs[1]
    assert weights[0].keys() == weights[1].keys() and len(weights[0]) > 4
    for name in weights[0]:
        np.testing.assert_array_equal(weights[0][name], weights[1][name], err_msg=name)
