"""Faults while writing (issue 11): a file-size limit, a full disk, a logdir made read-only.

Each costs one line (`slimkit train: error: ...`, exit code 2) that names the file, the cause, the
fix and the intact checkpoint the logdir resumes from; the half-written checkpoint is removed, the
lock released, and the next run resumes without clean-up by hand. Real subprocesses, real files:
the kernel refuses the writes (tests/fault_injection.py).
"""

import contextlib
import io
import os
import re
import resource
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from fault_injection import PAGE, file_size_limit, fill, permissions_obeyed, read_only_bind_mount, \
    tmpfs

LIMIT = 20_000  # bytes: a softmax_regression checkpoint is 32,632 (config.json 1.8 kB fits)
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
ENV.pop("SLIMKIT_DEBUG", None)


def _command(logdir, mnist_dir, steps, save_every=5):
    return [sys.executable, "-m", "slimkit", "train", "softmax_regression", "--logdir", str(logdir),
            "--data-dir", str(mnist_dir), "--steps", str(steps), "--batch-size", "100",
            "--learning-rate", "0.5", "--save-every-n-steps", str(save_every),
            "--log-every-n-steps", "1000000", "--summaries", "none"]  # (summary faults only
    # warn: tests/summaries/test_tensorboard.py)


def _run(command, preexec_fn=None):
    return subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300,
                          preexec_fn=preexec_fn)


def _error_line(result):
    """The one line of a run refused with exit code 2 (and nothing else on stderr)."""
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr[-3000:]
    return lines[0]


def _listing(logdir):
    return sorted(p.name for p in logdir.iterdir())


def _checkpoint_files(*steps):
    return [name for step in steps for name in (f"ckpt-{step}.data-00000-of-00001",
                                                f"ckpt-{step}.index")]


def _values(checkpoint):
    reader = tf.train.load_checkpoint(str(checkpoint))
    return {key: reader.get_tensor(key) for key in reader.get_variable_to_shape_map()
            if key not in ("_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter/.ATTRIBUTES/VARIABLE_VALUE")}


def _limit_message(logdir, step, resume):
    return (f"slimkit train: error: Cannot write the checkpoint {logdir}/ckpt-{step}: file too "
            f"large for this process's file-size limit of {LIMIT} bytes (`ulimit -f`). Raise the "
            "limit (`ulimit -f unlimited` in the shell that starts slimkit). Training stopped at "
            f"step {step} without this checkpoint (its partial files were removed); {resume}")


def test_a_file_size_limit_at_the_first_and_at_a_later_save(tmp_path, mnist_dir):
    """EFBIG in the first save (no checkpoint yet), then in a later save of a run whose limit is
    lowered while it trains (``prlimit``; intact checkpoints before it): one line each, nothing
    left behind, and the resumed run ends bit-equal to an uninterrupted one."""
    steps = 1000  # (a second of training or more: time to lower the limit after its first save)
    reference = subprocess.Popen(_command(tmp_path / "reference", mnist_dir, steps, save_every=50),
                                 env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 text=True)
    logdir = tmp_path / "run"
    try:
        first = _run(_command(logdir, mnist_dir, steps, save_every=50), file_size_limit(LIMIT))
        assert _error_line(first) == _limit_message(
            logdir, 50, "the logdir holds no checkpoint yet, so the same command starts it afresh.")
        assert _listing(logdir) == ["config.json"]  # no ckpt-50_temp/, no lock

        proc = _start(logdir, mnist_dir, steps)  # without the limit: it saves ckpt-50, then ...
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (LIMIT, resource.RLIM_INFINITY))
        line = _error_line(_stop(proc, signal=None))  # ... its next save fails
        step, intact = _failed_step(line), _latest_step(logdir)
        assert step > intact >= 50
        assert line == _limit_message(
            logdir, step, f"the logdir resumes from its intact checkpoint {logdir}/ckpt-{intact} "
            f"(step {intact}) when the same command runs again.")
        assert _listing(logdir) == sorted(["checkpoint", "config.json", *_checkpoint_files(
            *range(max(50, intact - 200), intact + 1, 50))])  # (the last 5 kept)

        resumed = _run(_command(logdir, mnist_dir, steps, save_every=50))
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert f"resuming from {logdir}/ckpt-{intact} (step {intact} of {steps})" in resumed.stdout
        _, errors = reference.communicate(timeout=300)
        assert reference.returncode == 0, errors[-3000:]
    finally:
        reference.kill()
    expected = _values(tmp_path / "reference" / f"ckpt-{steps}")
    actual = _values(logdir / f"ckpt-{steps}")
    assert sorted(actual) == sorted(expected)
    assert [key for key in expected if not np.array_equal(expected[key], actual[key])] == []


def _start(logdir, mnist_dir, steps=100_000_000, preexec_fn=None):
    """A run that checkpoints every 50 steps; returns once it has written one."""
    proc = subprocess.Popen(_command(logdir, mnist_dir, steps, save_every=50), env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=preexec_fn)
    deadline = time.monotonic() + 120
    lines = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            proc.kill()
            raise AssertionError(f"the run ended early: {''.join(lines)}{proc.stderr.read()}")
        lines.append(line)
        if line.startswith(f"saved {logdir}/ckpt-"):
            return proc
    proc.kill()
    raise AssertionError("no checkpoint in 120 s")


def _stop(proc, signal=signal.SIGTERM):
    """SIGTERM: the run saves a checkpoint and exits (if a periodic save failed first, it has)."""
    if signal is not None:
        proc.send_signal(signal)
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _latest_step(logdir):
    return int(tf.train.latest_checkpoint(str(logdir)).rsplit("-", 1)[1])


def _failed_step(line):
    found = re.search(r"Cannot write the checkpoint \S+/ckpt-(\d+): ", line)
    assert found, line
    return int(found.group(1))


def _train_in_process(logdir, mnist_dir, steps):
    """What `_command` runs, in this process (faster); returns what it printed."""
    from slimkit.training.config import TrainConfig
    from slimkit.training.loop import train

    out = io.StringIO()
    train(TrainConfig(model="softmax_regression", logdir=str(logdir), data_dir=str(mnist_dir),
                      steps=steps, batch_size=100, learning_rate=0.5, save_every_n_steps=5,
                      summaries="none"), log_stream=out)
    return out.getvalue()


def _resumes(logdir, mnist_dir, step, preexec_fn=None):
    """The same command (with a few more steps to train) resumes from ``ckpt-<step>`` and ends."""
    result = _run(_command(logdir, mnist_dir, step + 5), preexec_fn)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resuming from {logdir}/ckpt-{step} (step {step} of {step + 5})" in result.stdout
    return result


def test_a_disk_that_fills_up_during_training(tmp_path, mnist_dir):
    """ENOSPC at the next checkpoint of a running run: one line, the run ends, and once space is
    freed the same logdir resumes from the last intact checkpoint."""
    with tmpfs(tmp_path / "disk", 1024 * 1024) as disk:
        logdir = disk / "run"
        proc = _start(logdir, mnist_dir)
        filler = fill(disk)
        line = _error_line(_stop(proc))
        step, intact = _failed_step(line), _latest_step(logdir)
        assert step > intact >= 50 and intact % 50 == 0
        assert line == (
            f"slimkit train: error: Cannot write the checkpoint {logdir}/ckpt-{step}: no space left "
            f"on the device. Free space there (`df -h {logdir}` shows what is left) or use a "
            f"--logdir elsewhere. Training stopped at step {step} without this checkpoint (its "
            f"partial files were removed); the logdir resumes from its intact checkpoint "
            f"{logdir}/ckpt-{intact} (step {intact}) when the same command runs again.")
        names = _listing(logdir)
        assert not [n for n in names if n.startswith(f"ckpt-{step}") or "tmp" in n]
        assert "slimkit.lock" not in names
        filler.unlink()
        assert f"resuming from {logdir}/ckpt-{intact} (step {intact} of {intact + 5})" in \
            _train_in_process(logdir, mnist_dir, intact + 5)


def test_a_full_disk_at_config_json_and_at_the_lock(tmp_path, mnist_dir):
    """A resumed run writes config.json before it trains: ENOSPC there stops it with the old file
    intact; on a disk without a single free page, the lock file cannot be written either."""
    from slimkit.training.lock import LogdirLock
    from slimkit.writing import WriteFaultError

    with tmpfs(tmp_path / "disk", 1024 * 1024) as disk:
        logdir = disk / "run"
        _train_in_process(logdir, mnist_dir, 5)
        files = {p.name: p.read_bytes() for p in logdir.iterdir() if p.is_file()}
        filler = fill(disk, leave=PAGE)  # one page: the lock file's, none for config.json
        refused = _run(_command(logdir, mnist_dir, 10))
        assert _error_line(refused) == (
            f"slimkit train: error: Cannot write {logdir}/config.json: no space left on the "
            f"device. Free space there (`df -h {logdir}` shows what is left) or use a --logdir "
            "elsewhere. Training did not start and no checkpoint changed: the logdir resumes "
            f"from its intact checkpoint {logdir}/ckpt-5 (step 5) when the same command runs "
            "again.")
        assert {p.name: p.read_bytes() for p in logdir.iterdir() if p.is_file()} == files

        with open(filler, "ab", buffering=0) as f:  # the last page too
            f.write(b"\0" * PAGE)
        with pytest.raises(WriteFaultError) as raised:
            LogdirLock(logdir).acquire()
        assert str(raised.value) == (
            f"Cannot write the lock file {logdir}/slimkit.lock: no space left on the device. Free "
            f"space there (`df -h {logdir}` shows what is left) or use another --logdir. Training "
            "did not start and nothing in the logdir changed.")
        assert {p.name: p.read_bytes() for p in logdir.iterdir() if p.is_file()} == files
        filler.unlink()
        assert f"resuming from {logdir}/ckpt-5 (step 5 of 10)" in \
            _train_in_process(logdir, mnist_dir, 10)


@pytest.mark.parametrize("how", ["chmod", "read-only mount"])
def test_a_logdir_made_read_only_during_training(tmp_path, mnist_dir, how):
    """`chmod a-w` on the logdir (the run obeying file permissions, as any user) or a read-only
    bind mount over it, while the run trains: one line at its next checkpoint. The lock file
    cannot be removed there: the next run takes it over (its holder is gone) and resumes."""
    logdir = tmp_path / "run"
    preexec_fn = permissions_obeyed() if how == "chmod" else None
    with contextlib.ExitStack() as stack:
        if how == "chmod":
            proc = _start(logdir, mnist_dir, preexec_fn=preexec_fn)
            stack.callback(logdir.chmod, 0o755)
            logdir.chmod(0o555)
        else:
            logdir.mkdir()
            proc = _start(logdir, mnist_dir)
            stack.callback(proc.kill)  # (if the mount is refused: skipped)
            stack.enter_context(read_only_bind_mount(logdir))
        line = _error_line(_stop(proc))
        step, intact = _failed_step(line), _latest_step(logdir)
        assert (logdir / "slimkit.lock").exists()  # could not be removed: taken over next time
    cause, fix = {
        "chmod": ("permission denied",
                  f"Let this user write in {logdir} (`chmod`/`chown` it, or run as its owner)"),
        "read-only mount": ("the file system is read-only", "Remount it read-write")}[how]
    assert line == (
        f"slimkit train: error: Cannot write the checkpoint {logdir}/ckpt-{step}: {cause}. {fix} "
        f"or use a --logdir elsewhere. Training stopped at step {step} without this checkpoint "
        "(nothing of it was written); the logdir resumes from its intact checkpoint "
        f"{logdir}/ckpt-{intact} (step {intact}) when the same command runs again.")
    result = _resumes(logdir, mnist_dir, intact, preexec_fn)
    assert "Taking over the stale lock" in result.stderr
    assert not [n for n in _listing(logdir) if n.startswith(f"ckpt-{step}.") or "_temp" in n]
