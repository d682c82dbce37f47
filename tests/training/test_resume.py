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


def test_truncated_checkpoint_in_the_logdir_is_one_line_and_the_advice_resumes(tmp_path, mnist_dir):
    """A ckpt-N cut short (a full disk): `slimkit train` names it and the previous checkpoint, exit 2,
    no traceback, nothing in the logdir touched; following the advice resumes from the previous."""
    import io

    from slimkit.training.config import TrainConfig
    from slimkit.training.loop import train

    logdir = tmp_path / "run"
    config = TrainConfig(model="softmax_regression", data_dir=str(mnist_dir), logdir=str(logdir),
                         learning_rate=0.5, batch_size=100, steps=10, save_every_n_steps=5)
    train(config, log_stream=io.StringIO())
    os.truncate(logdir / "ckpt-10.data-00000-of-00001", 100)
    files = {p.name: p.read_bytes() for p in logdir.iterdir() if p.is_file()}

    refused = subprocess.run([sys.executable, "-m", "slimkit", "train", "--logdir", str(logdir),
                              "--steps", "20"], capture_output=True, text=True, timeout=120,
                             env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert refused.stderr.strip().splitlines() == [
        f"slimkit train: error: Cannot restore checkpoint {logdir}/ckpt-10: its files are corrupt or "
        "incomplete (Read less bytes than requested). Nothing in the logdir was changed or deleted. "
        f"To resume from the previous checkpoint, {logdir}/ckpt-5, edit {logdir}/checkpoint so that "
        'it reads model_checkpoint_path: "ckpt-5" and move ckpt-10.* out of the logdir; or train '
        "into another --logdir."]
    assert {p.name: p.read_bytes() for p in logdir.iterdir() if p.is_file()} == files

    state = (logdir / "checkpoint").read_text().splitlines()
    (logdir / "checkpoint").write_text("\n".join(['model_checkpoint_path: "ckpt-5"'] + state[1:]))
    (tmp_path / "aside").mkdir()
    for path in logdir.glob("ckpt-10.*"):
        path.rename(tmp_path / "aside" / path.name)
    out = io.StringIO()
    metrics = train(TrainConfig(**{**config.to_dict(), "steps": 20}), log_stream=out)
    assert f"resuming from {logdir}/ckpt-5 (step 5 of 20)" in out.getvalue()
    assert metrics["global_step"] == 20
