"""Exact resume: a run killed with SIGKILL at random moments and resumed ends with the same
weights, optimizer slots, dropout seed states and data position as an uninterrupted run.

Why exact equality holds: every input of a step is restored (weights, Adam/momentum slots,
``optimizer.iterations`` for the schedule, the Keras seed-generator state of each dropout layer,
the feed's (epoch, offset)), the feed is a pure function of (seed, epoch, offset), and ops are
deterministic (``tf.config.experimental.enable_op_determinism``, same thread count). The chunking
of steps into compiled calls differs between the runs and does not change the arithmetic.
"""

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf


def _command(logdir, mnist_dir):
    return [sys.executable, "-m", "slimkit", "train", "lenet", "--logdir", str(logdir),
            "--data-dir", str(mnist_dir), "--steps", "160", "--batch-size", "16",
            "--optimizer", "momentum", "--learning-rate", "0.02", "--save-every-n-steps", "8",
            "--steps-per-call", "4", "--log-every-n-steps", "40", "--keep", "2"]


def _latest_step(logdir):
    path = tf.train.latest_checkpoint(str(logdir))
    return int(path.rsplit("-", 1)[1]) if path else None


def _all_values(checkpoint):
    reader = tf.train.load_checkpoint(checkpoint)
    return {key: reader.get_tensor(key) for key in reader.get_variable_to_shape_map()
            if key not in ("_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter/.ATTRIBUTES/VARIABLE_VALUE")}


def test_sigkilled_and_resumed_run_equals_uninterrupted_run(tmp_path, mnist_dir):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    reference = tmp_path / "reference"
    # The uninterrupted run goes on meanwhile (same thread count, so the same arithmetic).
    uninterrupted = subprocess.Popen(_command(reference, mnist_dir), env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    logdir = tmp_path / "killed"
    delays = random.Random(0)
    kills = []
    for _ in range(3):
        proc = subprocess.Popen(_command(logdir, mnist_dir), env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        before = _latest_step(logdir)
        deadline = time.monotonic() + 120
        while _latest_step(logdir) == before and proc.poll() is None:  # a new checkpoint exists
            assert time.monotonic() < deadline, "no checkpoint written in 120 s"
            time.sleep(0.02)
        time.sleep(delays.uniform(0.0, 0.4))  # a random moment: mid-call, mid-save, ...
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL, "the run ended before it was killed"
        kills.append(_latest_step(logdir))
    assert kills == sorted(kills) and kills[-1] < 160

    resumed = subprocess.run(_command(logdir, mnist_dir), env=env, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming from {logdir}/ckpt-{kills[-1]}" in resumed.stdout
    _, errors = uninterrupted.communicate(timeout=300)
    assert uninterrupted.returncode == 0, errors[-2000:]
    expected = _all_values(str(reference / "ckpt-160"))
    actual = _all_values(str(logdir / "ckpt-160"))
    assert sorted(actual) == sorted(expected)
    assert any(key.startswith("rng/") for key in actual)  # dropout seed states are saved
    differing = [key for key in expected if not np.array_equal(expected[key], actual[key])]
    assert differing == []
