"""`slimkit train` and `slimkit eval`: flags, --json, resume by logdir, exit codes, one-line errors."""

import json
import os
import re

import pytest

from slimkit.cli import main


def _error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize("argv, message", [
    (["train"], r"slimkit train: error: No model given\. Expected a MODEL argument"),
    (["train", "lenet", "--optimizer", "adamm"],
     r"Received optimizer='adamm'\. Did you mean 'adam'\?"),
    (["train", "lenet", "--batch-size", "0"], r"Invalid value for `batch_size`"),
    (["train", "lenett", "--logdir", "/nonexistent/never-created"],
     r"Unknown model 'lenett'\. Did you mean 'lenet'"),
    (["train", "--preset", "deep-mnist-fats"], r"Unknown preset 'deep-mnist-fats'.*'deep-mnist-fast'"),
    (["train", "lenet", "--config", "/nonexistent/run.toml"], r"Config file not found"),
    (["eval", "/nonexistent/logdir"], r"slimkit eval: error: No checkpoint found at"),
    (["train", "softmax_regression", "--keep-best", "--validation-size", "0", "--logdir",
      "{tmp}/run"], r"Invalid value for `keep_best` with validation_size=0: "),
    (["train", "softmax_regression", "--checkpoint-exclude-scopes", "logits", "--logdir",
      "{tmp}/run"],
     r"Invalid value for `checkpoint_exclude_scopes` without `checkpoint_path`: "),
    (["train", "lenet", "--save-every-n-secs", "-1"],
     r"Invalid value for `save_every_n_secs`\. Expected a number of seconds >= 0 \(0: not by time\)"),
])
def test_user_errors_are_one_line_and_exit_2(argv, message, capsys, tmp_path):
    assert main([arg.replace("{tmp}", str(tmp_path)) for arg in argv]) == 2
    assert re.search(message, _error_line(capsys))
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_unknown_key_in_config_file(tmp_path, capsys):
    path = tmp_path / "run.json"
    path.write_text('{"learning_rat": 0.1}')
    assert main(["train", "lenet", "--config", str(path)]) == 2
    assert "Did you mean 'learning_rate'?" in _error_line(capsys)


def test_argparse_rejects_a_bad_number():
    with pytest.raises(SystemExit) as info:
        main(["train", "lenet", "--steps", "many"])
    assert info.value.code == 2


def test_train_json_then_resume_by_logdir_then_eval(tmp_path, mnist_dir, capsys):
    logdir = str(tmp_path / "run")
    argv = ["train", "softmax_regression", "--logdir", logdir, "--data-dir", str(mnist_dir),
            "--steps", "50", "--learning-rate", "0.5", "--batch-size", "100", "--json"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    metrics = json.loads(captured.out)  # stdout is exactly one JSON object
    assert metrics["global_step"] == 50 and 0.8 < metrics["test_accuracy"] <= 1
    assert "test accuracy:" in captured.err  # progress went to stderr

    # --logdir alone: the saved config.json is the base; flags still override it.
    assert main(["train", "--logdir", logdir, "--steps", "70"]) == 0
    out = capsys.readouterr().out
    assert f"resuming from {logdir}/ckpt-50 (step 50 of 70)" in out
    assert out.strip().splitlines()[-1].startswith("test accuracy: ")

    assert main(["eval", logdir]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("test accuracy: ") and "step 70" in line and "10000 examples" in line
    assert main(["eval", logdir, "--split", "validation", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["split"] == "validation" and result["num_examples"] == 5000

    # --watch evaluates the newest checkpoint, then each new one, until the timeout.
    assert main(["eval", logdir, "--watch", "--timeout", "0.5"]) == 0
    headlines = [line for line in capsys.readouterr().out.splitlines() if " accuracy: " in line]
    assert len(headlines) == 1 and "step 70" in headlines[0]  # (then its class table)
    assert any(name.startswith("events") for name in os.listdir(os.path.join(logdir, "eval_test")))

    # Another model in that logdir is refused, as one line.
    assert main(["train", "lenet", "--logdir", logdir, "--data-dir", str(mnist_dir)]) == 2
    assert "holds a run with model='softmax_regression'" in _error_line(capsys)


def test_save_every_n_secs_0_saves_by_steps_only(tmp_path, mnist_dir, capsys):
    # Calls of 5 steps: were 0 s "always", every call would save (5, 10, 15, 20, 25).
    logdir = tmp_path / "run"
    assert main(["train", "softmax_regression", "--logdir", str(logdir), "--data-dir", str(mnist_dir),
                 "--steps", "25", "--steps-per-call", "5", "--learning-rate", "0.5",
                 "--save-every-n-steps", "10", "--save-every-n-secs", "0", "--keep", "10"]) == 0
    steps = sorted(int(p.name[5:-6]) for p in logdir.glob("ckpt-*.index"))
    assert steps == [10, 20, 25]  # by steps, and the final checkpoint
    assert json.loads((logdir / "config.json").read_text())["save_every_n_secs"] == 0


@pytest.mark.parametrize("flags, expected", [
    ([], None),  # default: the cores this process may use (affinity mask, cgroup quota)
    (["--intra-op-threads", "1", "--inter-op-threads", "1"], (1, 1)),
])
def test_thread_settings_default_to_usable_cores_and_can_be_overridden(flags, expected, tmp_path,
                                                                       mnist_dir):
    # A fresh process: TensorFlow's thread pools can only be sized before its runtime starts.
    import subprocess
    import sys

    from slimkit.training.runtime import usable_cores

    code = ("import sys, json, tensorflow as tf; from slimkit.cli import main; rc = main(sys.argv[1:]);"
            "t = tf.config.threading; print(json.dumps([rc, t.get_intra_op_parallelism_threads(), "
            "t.get_inter_op_parallelism_threads()]))")
    result = subprocess.run(
        [sys.executable, "-c", code, "train", "softmax_regression", "--data-dir", str(mnist_dir),
         "--logdir", str(tmp_path / "run"), "--steps", "2", "--batch-size", "10", *flags],
        capture_output=True, text=True, timeout=120)
    rc, intra, inter = json.loads(result.stdout.splitlines()[-1])
    assert rc == 0, result.stderr
    intra_expected, inter_expected = expected or (usable_cores(), 0)
    assert (intra, inter) == (intra_expected, inter_expected)
    assert f"; {intra_expected} intra-op threads" in result.stdout


def test_model_kwargs_from_the_command_line():
    from slimkit.cli import build_parser
    from slimkit.cli.train import resolve

    parser = build_parser()
    args = parser.parse_args(["train", "alexnet", "--model-kwargs",
                              "pool_padding=SAME, dropout_keep_prob=0.7"])
    assert resolve(args).model_kwargs == {"pool_padding": "SAME", "dropout_keep_prob": 0.7}


def test_model_kwargs_without_a_value_is_one_line(capsys):
    assert main(["train", "alexnet", "--model-kwargs", "pool_padding"]) == 2
    assert _error_line(capsys) == (
        "slimkit train: error: Invalid value for `model_kwargs`. Expected KEY=VALUE pairs "
        "separated by commas, e.g. pool_padding=SAME. Received model_kwargs='pool_padding'.")
