"""SIGTERM/SIGINT: checkpoint, then exit (143/130); the logdir lock keeps a second run out."""

import os
import signal
import subprocess
import sys
import time

import tensorflow as tf


def _start(logdir, mnist_dir):
    command = [sys.executable, "-m", "slimkit", "train", "softmax_regression", "--logdir",
               str(logdir), "--data-dir", str(mnist_dir), "--steps", "100000000",
               "--batch-size", "100", "--learning-rate", "0.5", "--log-every-n-steps", "50"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return command, subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)


def _wait_for_training(proc):
    """Reads stdout until the run reports progress (so it is inside the training loop)."""
    lines = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        assert line, f"the run ended early: {''.join(lines)} {proc.stderr.read()[-2000:]}"
        lines.append(line)
        if line.startswith("step "):
            return lines
    raise AssertionError("no progress line in 120 s")


def test_sigterm_and_sigint_checkpoint_then_exit_and_lock_refuses_second_run(tmp_path, mnist_dir):
    logdir = tmp_path / "run"
    command, proc = _start(logdir, mnist_dir)
    try:
        _wait_for_training(proc)
        # A second process cannot train into the same logdir while the first one runs.
        second = subprocess.run(command, capture_output=True, text=True, timeout=120,
                                env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        assert second.returncode == 2
        errors = [line for line in second.stderr.splitlines() if line.startswith("slimkit train:")]
        assert len(errors) == 1 and str(os.getpid()) not in errors[0]
        assert str(proc.pid) in errors[0]  # names the holder
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143
    step = int(tf.train.latest_checkpoint(str(logdir)).rsplit("-", 1)[1])
    assert step > 0 and f"stopped by SIGTERM at step {step}" in out
    assert "test accuracy" not in out  # stop at once: no evaluation
    assert not (logdir / "slimkit.lock").exists()

    _, proc = _start(logdir, mnist_dir)
    try:
        lines = _wait_for_training(proc)
        assert f"resuming from {logdir}/ckpt-{step} (step {step} of 100000000)\n" in lines
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130
    later = int(tf.train.latest_checkpoint(str(logdir)).rsplit("-", 1)[1])
    assert later > step and f"stopped by SIGINT at step {later}" in out
