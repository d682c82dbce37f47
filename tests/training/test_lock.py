"""The logdir lock, with real processes: a live holder refuses others, a dead one is taken over."""

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from slimkit.training.lock import LOCK_NAME, LogdirLock, LogdirLockedError

# A process that takes the lock, says so, then holds it until its stdin closes (or it is killed).
_HOLDER = """
import sys
from slimkit.training.lock import LogdirLock
with LogdirLock(sys.argv[1]):
    print("locked", flush=True)
    sys.stdin.read()
"""

# A process that waits for a start signal (a file), then tries to take the lock and holds it briefly.
_CONTENDER = """
import os, sys, time
from slimkit.training.lock import LogdirLock, LogdirLockedError
while not os.path.exists(sys.argv[2]):
    time.sleep(0.005)
try:
    with LogdirLock(sys.argv[1]):
        time.sleep(1.5)  # longer than all contenders need to try
except LogdirLockedError:
    sys.exit(3)
"""


@pytest.fixture
def holder(tmp_path):
    """Starts a process holding the lock on tmp_path/run; yields the Popen; always cleans it up."""
    procs = []

    def start(logdir):
        proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(logdir)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "locked"
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def test_lock_file_records_holder_and_is_removed_on_exit(tmp_path):
    logdir = tmp_path / "run"
    with LogdirLock(logdir) as lock:
        info = json.loads((logdir / LOCK_NAME).read_text())
        assert lock.held
        assert info["pid"] == os.getpid()
        assert info["host"] == socket.gethostname()
        assert abs(info["started_at"] - time.time()) < 60
    assert not (logdir / LOCK_NAME).exists()
    assert not lock.held


def test_lock_is_released_when_the_body_raises(tmp_path):
    with pytest.raises(KeyError):
        with LogdirLock(tmp_path):
            raise KeyError("boom")
    assert not (tmp_path / LOCK_NAME).exists()
    with LogdirLock(tmp_path):  # and can be taken again
        pass


def test_second_process_is_refused_while_holder_lives(tmp_path, holder):
    logdir = tmp_path / "run"
    proc = holder(logdir)
    with pytest.raises(LogdirLockedError, match=rf"in use: process {proc.pid} on host .* since .*"
                       r"stop it \(e\.g\. `kill \d+`.*or choose another --logdir"):
        LogdirLock(logdir).acquire()
    # A refused process must not disturb the holder's lock file.
    assert json.loads((logdir / LOCK_NAME).read_text())["pid"] == proc.pid
    # Once the holder ends normally the lock is free.
    proc.stdin.close()
    assert proc.wait(timeout=10) == 0
    assert not (logdir / LOCK_NAME).exists()
    with LogdirLock(logdir):
        pass


def test_error_is_one_line_for_the_cli(tmp_path, holder):
    """LogdirLockedError is a ValueError (the CLI prints it as one line) and a RuntimeError."""
    holder(tmp_path)
    with pytest.raises(ValueError) as info:
        LogdirLock(tmp_path).acquire()
    assert isinstance(info.value, RuntimeError)
    assert "\n" not in str(info.value)


def test_stale_lock_of_killed_process_is_taken_over(tmp_path, holder, caplog):
    proc = holder(tmp_path)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert (tmp_path / LOCK_NAME).exists()  # SIGKILL left it behind
    with caplog.at_level(logging.WARNING, logger="slimkit.training.lock"):
        with LogdirLock(tmp_path):
            assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert f"stale lock {tmp_path / LOCK_NAME}: process {proc.pid}" in caplog.text
    assert "no longer running" in caplog.text


def test_reused_pid_is_recognized_by_its_start_time(tmp_path, holder, caplog):
    """A lock naming a live PID whose process started at another time belongs to a dead holder."""
    proc = holder(tmp_path / "other")  # any live process will do
    fake = {"pid": proc.pid, "host": socket.gethostname(), "started": "earlier",
            "proc_start": 1, "token": "old"}
    (tmp_path / LOCK_NAME).write_text(json.dumps(fake))
    with caplog.at_level(logging.WARNING, logger="slimkit.training.lock"):
        with LogdirLock(tmp_path):
            pass
    assert "stale lock" in caplog.text


def test_lock_from_another_host_is_respected(tmp_path):
    other = {"pid": 4242, "host": "another-machine", "started": "2024-01-01 10:00:00 +0000"}
    (tmp_path / LOCK_NAME).write_text(json.dumps(other))
    with pytest.raises(LogdirLockedError, match=r"process 4242 on host another-machine has been "
                       r"training into it since 2024-01-01 10:00:00.*If that process is no longer "
                       r"running, delete .*slimkit\.lock"):
        LogdirLock(tmp_path).acquire()
    assert json.loads((tmp_path / LOCK_NAME).read_text()) == other


def test_unreadable_lock_is_taken_over(tmp_path, caplog):
    (tmp_path / LOCK_NAME).write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="slimkit.training.lock"):
        with LogdirLock(tmp_path):
            assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert "unreadable lock" in caplog.text


def test_release_leaves_a_lock_that_is_not_ours(tmp_path):
    lock = LogdirLock(tmp_path)
    lock.acquire()
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "x", "token": "someone else"}))
    lock.release()
    assert (tmp_path / LOCK_NAME).exists()


def test_exactly_one_of_several_processes_takes_over_a_stale_lock(tmp_path, holder):
    logdir, go = tmp_path / "run", tmp_path / "go"
    dead = holder(logdir)
    dead.send_signal(signal.SIGKILL)
    dead.wait(timeout=10)
    procs = [subprocess.Popen([sys.executable, "-c", _CONTENDER, str(logdir), str(go)],
                              stderr=subprocess.DEVNULL) for _ in range(4)]
    try:
        time.sleep(0.5)  # let them all start and wait for the signal
        go.touch()
        codes = sorted(p.wait(timeout=30) for p in procs)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert codes == [0, 3, 3, 3]
    assert not (logdir / LOCK_NAME).exists()
    assert not (logdir / (LOCK_NAME + ".takeover")).exists()


def test_same_process_cannot_take_its_own_logdir_twice(tmp_path):
    with LogdirLock(tmp_path):
        with pytest.raises(LogdirLockedError, match="in use: this process has been training into it"):
            LogdirLock(tmp_path).acquire()



def test_a_lock_that_cannot_be_removed_does_not_hide_the_runs_error(tmp_path):
    """A logdir made read-only while a run holds the lock: the run's own error reaches the user
    (the lock stays, and the next run takes it over once this process has ended)."""
    from fault_injection import read_only_bind_mount

    logdir = tmp_path / "run"
    lock = LogdirLock(logdir)
    lock.acquire()
    with read_only_bind_mount(logdir):
        with pytest.raises(KeyError):
            with lock:
                raise KeyError("the run's own error")
        assert (logdir / LOCK_NAME).exists()
        with pytest.raises(OSError, match="Read-only file system"):  # no error of its own: raised
            with lock:
                pass
    lock.release()
    assert not (logdir / LOCK_NAME).exists()
