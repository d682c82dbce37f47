"""TrainConfig: layering (defaults < preset < file < flags), validation, saving, presets."""

import json

import pytest

from slimkit.training import config as config_lib
from slimkit.training import saved_config
from slimkit.training.config import TrainConfig
from slimkit.training.presets import get_preset, list_presets


def test_defaults_are_valid_and_serializable():
    config = TrainConfig()
    assert config.optimizer == "sgd" and config.keep == 5
    assert json.loads(json.dumps(config.to_dict())) == config.to_dict()


def test_precedence_defaults_preset_file_flags(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"batch_size": 64, "learning_rate": 0.1, "seed": 7}))
    config = TrainConfig.from_sources("mnist-softmax-tutorial", path,
                                      overrides={"learning_rate": 0.2, "seed": None})
    assert config.model == "softmax_regression"      # preset
    assert config.batch_size == 64                   # file over preset (100)
    assert config.learning_rate == 0.2               # flag over file
    assert config.seed == 7                          # an unset flag (None) overrides nothing
    assert config.keep == 5                          # default
    assert config.preset == "mnist-softmax-tutorial"


def test_toml_file_and_preset_named_in_file(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('preset = "deep-mnist-tutorial"\nsteps = 300\nlr_boundaries = [10, 20]\n'
                    'lr_values = [0.1, 0.01, 0.001]\nlr_schedule = "piecewise"\n')
    config = TrainConfig.from_sources(config_file=path)
    assert config.model == "deep_mnist" and config.batch_size == 50
    assert config.steps == 300
    assert config.lr_values == [0.1, 0.01, 0.001]


def test_steps_and_epochs_latest_layer_wins():
    fast = TrainConfig.from_sources("deep-mnist-fast")
    assert fast.epochs == 3.0 and fast.steps is None
    assert fast.total_steps(num_train=60000) == 704         # ceil(3 * 60000 / 256)
    short = TrainConfig.from_sources("deep-mnist-fast", overrides={"steps": 300})
    assert short.steps == 300 and short.epochs is None
    with pytest.raises(ValueError, match="`steps` and `epochs` both set"):
        TrainConfig(steps=10, epochs=1.0)


def test_unknown_key_suggests_close_match(tmp_path):
    with pytest.raises(ValueError, match=r"Unknown TrainConfig key 'learnin_rate' in overrides\. "
                                         r"Did you mean 'learning_rate'\?"):
        TrainConfig.from_sources(overrides={"learnin_rate": 0.1})
    path = tmp_path / "bad.json"
    path.write_text('{"batch_sise": 3}')
    with pytest.raises(ValueError, match=r"Unknown TrainConfig key 'batch_sise' in config file .*"
                                         r"Did you mean 'batch_size'\?"):
        TrainConfig.from_sources(config_file=path)


@pytest.mark.parametrize("kwargs, message", [
    (dict(batch_size=0), r"Invalid value for `batch_size`\. Expected a strictly positive number\. "
                         r"Received batch_size=0\."),
    (dict(optimizer="adamm"), r"Expected one of sgd, .*Received optimizer='adamm'\. Did you mean "
                              r"'adam'\?"),
    (dict(learning_rate="fast"), r"Invalid value for `learning_rate`\. Expected a finite number"),
    (dict(label_smoothing=1.0), r"label_smoothing.*\[0, 1\)"),
    (dict(lr_schedule="piecewise", lr_boundaries=[5], lr_values=[0.1]),
     r"Invalid piecewise schedule"),
    (dict(warmup_steps=10), r"'fixed' schedule has no warm-up"),
    (dict(precision="fp16"), r"Expected one of fp32, bf16, auto"),
    (dict(nesterov="yes"), r"Invalid value for `nesterov`\. Expected true or false"),
    (dict(jit_compile=True), r"XLA has no deterministic version of some gradients .*"
                             r"--jit-compile --no-deterministic"),
])
def test_bad_values_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_jit_compile_with_deterministic_off_is_valid():
    assert TrainConfig(jit_compile=True, deterministic=False).jit_compile


def test_comma_separated_lists_and_numeric_strings():
    config = TrainConfig(checkpoint_exclude_scopes="fc8, fc7", steps="20", learning_rate="1e-3")
    assert config.checkpoint_exclude_scopes == ["fc8", "fc7"]
    assert config.steps == 20 and config.learning_rate == 1e-3


def test_missing_and_malformed_config_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="Config file not found"):
        TrainConfig.from_sources(config_file=tmp_path / "nope.json")
    bad = tmp_path / "bad.toml"
    bad.write_text("steps = = 3")
    with pytest.raises(ValueError, match="Cannot parse config file"):
        TrainConfig.from_sources(config_file=bad)
    yaml = tmp_path / "run.yaml"
    yaml.write_text("steps: 3")
    with pytest.raises(ValueError, match=r"Expected a \.json or \.toml file"):
        TrainConfig.from_sources(config_file=yaml)


def test_saved_config_round_trip_and_compatibility(tmp_path):
    config = TrainConfig(model="lenet", steps=10, logdir=str(tmp_path))
    saved_config.save_config(config, tmp_path)
    assert TrainConfig(**saved_config.load_saved_config(tmp_path)) == config
    saved_config.check_compatible(TrainConfig(model="lenet", steps=99), tmp_path)  # more steps: fine
    with pytest.raises(ValueError, match=r"holds a run with model='lenet' \(this run: 'deep_mnist'\)"
                                         r".*Use another --logdir"):
        saved_config.check_compatible(TrainConfig(model="deep_mnist"), tmp_path)


def _data(num_classes=2, class_names=("blue", "red"), image_shape=(28, 28, 3), num_train=20):
    from slimkit.training.data import TrainingData

    return TrainingData(None, num_train, num_classes, image_shape, class_names, None,
                        ("validation",))


def test_saved_data_identity_refuses_other_data_and_config_json_is_a_config_file(tmp_path):
    config = TrainConfig(model="lenet", dataset="folder", data_dir="fA", steps=10)
    saved_config.save_config(config, tmp_path, _data())
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["data_identity"] == {"dataset": "folder", "num_classes": 2, "image_shape": [28, 28, 3],
                                      "class_names": ["blue", "red"], "num_train": 20}
    # The same classes from another folder (another machine's copy): accepted.
    saved_config.check_same_data(TrainConfig(**{**config.to_dict(), "data_dir": "copy"}), _data(),
                                 tmp_path)
    with pytest.raises(ValueError) as info:
        saved_config.check_same_data(config, _data(3, ("blue", "green", "red")), tmp_path)
    assert str(info.value) == (
        f"Logdir {str(tmp_path)!r} holds a run trained on other data: number of classes 2 (this "
        "run's data: 3); class names [blue, red] (this run's data: [blue, green, red]). Its "
        "checkpoints cannot be resumed on this data (it was trained with --data-dir fA). Use another "
        "--logdir for this data, or the data the logdir's run was trained on to resume it.")
    with pytest.raises(ValueError, match=r"holds a run trained on other data: class names \[blue, "
                                         r"red\] \(this run's data: \[cat, dog\]\)\. "):
        saved_config.check_same_data(config, _data(class_names=("cat", "dog")), tmp_path)
    with pytest.raises(ValueError, match=r"image shape 28x28x3 \(this run's data: 32x32x3\)\. .*"
                                         r"\(or --image-size of the logdir's run\) to resume it\.$"):
        saved_config.check_same_data(config, _data(image_shape=(32, 32, 3)), tmp_path)
    # Other training examples (images added to the folder): the saved data position points
    # into another array.
    with pytest.raises(ValueError, match=r"other data: number of training examples 20 \(this run's "
                                         r"data: 23\)\. .* trained on to resume it\.$"):
        saved_config.check_same_data(config, _data(num_train=23), tmp_path)
    # A logdir's config.json also serves as a --config file: its data record is not a setting.
    assert TrainConfig.from_sources(config_file=tmp_path / "config.json") == config


def test_data_identity_num_train_refuses_another_validation_size(tmp_path):
    config = TrainConfig(model="lenet", steps=10, validation_size=5000)
    saved_config.save_config(config, tmp_path, _data(10, tuple("0123456789"), (28, 28, 1), 55000))
    other = TrainConfig(model="lenet", steps=10, validation_size=0)
    with pytest.raises(ValueError) as info:
        saved_config.check_same_data(other, _data(10, tuple("0123456789"), (28, 28, 1), 60000),
                                     tmp_path)
    assert str(info.value) == (
        f"Logdir {str(tmp_path)!r} holds a run trained on other data: number of training examples "
        "55000 (this run's data: 60000). Its checkpoints cannot be resumed on this data. Use "
        "another --logdir for this data, or the data the logdir's run was trained on (or its "
        "--validation-size 5000) to resume it.")
    # A logdir saved before num_train was recorded is not checked for it.
    values = json.loads((tmp_path / "config.json").read_text())
    del values["data_identity"]["num_train"]
    (tmp_path / "config.json").write_text(json.dumps(values))
    saved_config.check_same_data(other, _data(10, tuple("0123456789"), (28, 28, 1), 60000),
                                 tmp_path)


def test_corrupt_saved_config_names_the_file_and_the_fix(tmp_path):
    (tmp_path / "config.json").write_text("")
    message = (f"Cannot read {tmp_path / 'config.json'}: it is not valid JSON (Expecting value: line 1 "
               "column 1 (char 0)). Expected the JSON object of TrainConfig settings that `slimkit "
               "train` saved there. Repair the file, or remove it to train on in this logdir with "
               "this run's settings (they are saved anew), or use another --logdir.")
    with pytest.raises(ValueError) as info:
        saved_config.check_compatible(TrainConfig(model="lenet"), tmp_path)
    assert str(info.value) == message
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"config\.json: it holds a list\. Expected the JSON object"):
        saved_config.load_saved_config(tmp_path)


def test_time_triggers_accept_0_for_off():
    config = TrainConfig(save_every_n_secs=0, save_summaries_secs=0, save_every_n_steps=100)
    assert (config.save_every_n_secs, config.save_summaries_secs) == (0.0, 0.0)
    with pytest.raises(ValueError) as info:
        TrainConfig(save_every_n_secs=-1)
    assert str(info.value) == ("Invalid value for `save_every_n_secs`. Expected a number of seconds "
                               ">= 0 (0: not by time). Received save_every_n_secs=-1.0.")
    with pytest.raises(ValueError, match="Expected a strictly positive number"):
        TrainConfig(save_every_n_steps=0)  # steps: unset (None) is off


def test_settings_training_would_ignore_are_refused():
    from slimkit.training.checks import check_training_settings

    with pytest.raises(ValueError) as info:
        check_training_settings(TrainConfig(model="lenet", keep_best=True, validation_size=0))
    assert str(info.value) == (
        "Invalid value for `keep_best` with validation_size=0: the best checkpoint is chosen by "
        "validation accuracy, and this run holds out no validation examples. Expected "
        "validation_size > 0 (e.g. 5000), or keep_best off. Received keep_best=True, "
        "validation_size=0.")
    with pytest.raises(ValueError) as info:
        check_training_settings(TrainConfig(model="lenet", eval_every_n_steps=100,
                                            validation_size=0))
    assert str(info.value) == (
        "Invalid value for `eval_every_n_steps` with validation_size=0: the periodic evaluation "
        "runs on the validation split, and this run holds out no validation examples. Expected "
        "validation_size > 0 (e.g. 5000), or eval_every_n_steps unset. Received "
        "eval_every_n_steps=100, validation_size=0.")
    with pytest.raises(ValueError) as info:
        check_training_settings(TrainConfig(model="lenet", checkpoint_exclude_scopes="fc4"))
    assert str(info.value) == (
        "Invalid value for `checkpoint_exclude_scopes` without `checkpoint_path`: it names the "
        "scopes NOT restored from --checkpoint-path, and there is none to restore from. Expected "
        "--checkpoint-path with it, or no checkpoint_exclude_scopes. Received "
        "checkpoint_exclude_scopes=['fc4'], checkpoint_path=None.")
    check_training_settings(TrainConfig(model="lenet", checkpoint_exclude_scopes="fc4",
                                        checkpoint_path="runs/x", keep_best=True))


def test_presets_resolve_and_unknown_preset():
    for name in list_presets():
        config = TrainConfig.from_sources(name)
        assert config.model and config.preset == name
    tutorial = get_preset("deep-mnist-tutorial")
    assert (tutorial["optimizer"], tutorial["learning_rate"], tutorial["batch_size"],
            tutorial["keep_prob"], tutorial["steps"]) == ("adam", 1e-4, 50, 0.5, 20000)
    softmax = TrainConfig.from_sources("mnist-softmax-tutorial")
    assert (softmax.model, softmax.optimizer, softmax.learning_rate, softmax.lr_schedule,
            softmax.batch_size, softmax.steps) == ("softmax_regression", "sgd", 0.5, "fixed", 100, 1000)
    # TF-Slim's train_lenet_on_mnist.sh: all 60,000 training images, summaries/checkpoints by time
    lenet = TrainConfig.from_sources("lenet-slim")
    assert (lenet.model, lenet.optimizer, lenet.learning_rate, lenet.lr_schedule, lenet.batch_size,
            lenet.steps, lenet.weight_decay, lenet.validation_size, lenet.save_every_n_secs,
            lenet.save_summaries_secs, lenet.save_summaries_steps, lenet.save_every_n_steps) == (
        "lenet", "sgd", 0.01, "fixed", 50, 20000, 0.0, 0, 60.0, 60.0, None, None)
    with pytest.raises(ValueError, match=r"Unknown preset 'deep-mnist-fats'.*Did you mean "
                                         r"'deep-mnist-fast'\?"):
        get_preset("deep-mnist-fats")


def test_strategy_names_match_distribute():
    from slimkit.training import distribute

    assert config_lib.STRATEGIES == distribute.STRATEGIES


def test_default_logdir():
    assert TrainConfig(model="lenet").resolved_logdir() == "runs/lenet"
    assert TrainConfig.from_sources("lenet-slim").resolved_logdir() == "runs/lenet-slim"


def test_summary_settings_are_checked():
    with pytest.raises(ValueError, match=r"Invalid value for `summaries`. Expected one of none, "
                                         r"scalars, default, full. Received summaries='ful'. "
                                         r"Did you mean 'full'\?"):
        TrainConfig(summaries="ful")
    with pytest.raises(ValueError, match=r"Expected an integer >= 0 \(0: no trace\). Received "
                                         r"trace_every_n_steps=-1"):
        TrainConfig(trace_every_n_steps=-1)
    with pytest.raises(ValueError, match=r"Invalid value for `image_every_n_secs`. Expected a "
                                         r"number of seconds >= 0"):
        TrainConfig(image_every_n_secs=-5)
    assert TrainConfig(histogram_every_n_secs=0, trace_every_n_steps=0).summaries == "default"
