"""A lock file that keeps two training processes out of one logdir.

    with LogdirLock("runs/lenet"):
        ...  # restore, train, checkpoint

Two processes writing checkpoints into the same logdir would overwrite each other's
``checkpoint`` file and interleave their steps, so ``train()`` holds ``<logdir>/slimkit.lock``
while it runs. The file is created atomically (``O_CREAT | O_EXCL``) and says who holds it: PID,
host name and start time, as JSON. A process that finds it:

- refuses to start (:class:`LogdirLockedError`) if the holder is alive, or runs on another host
  (whose processes it cannot see);
- takes it over, with a warning, if the holder was on this host and is dead (killed with SIGKILL,
  or the machine rebooted). A PID that was reused by an unrelated process is recognized by its
  start time (read from ``/proc`` on Linux).

The lock is released when the ``with`` block ends, also on an exception (where the file cannot be
removed, in a logdir made read-only, the next run takes it over as stale). A lock file that cannot
be written (a full disk) is a :class:`~slimkit.writing.WriteFaultError` and leaves no file. A run
refused at start-up must leave no trace, not even the directories the lock created: see
:func:`no_empty_dirs_left`.
"""

import contextlib
import json
import logging
import os
import pathlib
import socket
import time
import uuid

from slimkit.writing import write_fault

LOCK_NAME = "slimkit.lock"

_log = logging.getLogger(__name__)


class LogdirLockedError(RuntimeError, ValueError):
    """Another live process is training into this logdir.

    A ``ValueError`` too, so the ``slimkit`` command prints it as one line (exit code 2).
    """


class LogdirLock:
    """Context manager holding ``<logdir>/slimkit.lock`` for the duration of a training run.

    Args:
        logdir: The run's directory; created if missing.

    Raises:
        LogdirLockedError: On entering, if another live process holds the lock (the message names
            its PID, host and start time and says how to proceed).

    Example:
        >>> with LogdirLock("/tmp/run1") as lock:
        ...     print(lock.path.name)
        slimkit.lock
    """

    def __init__(self, logdir):
        self.logdir = pathlib.Path(logdir)
        self.path = self.logdir / LOCK_NAME
        self._token = None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, exc_type, exc, traceback):
        try:
            self.release()
        except OSError:
            if exc is None:
                raise
            # The lock file could not be removed (a logdir made read-only): the run's own error
            # is what the user must see. This process ends, so the next run on this host takes
            # the lock over as stale.

    @property
    def held(self):
        """True while this object holds the lock."""
        return self._token is not None

    def acquire(self):
        """Takes the lock, or raises :class:`LogdirLockedError` (see the class docs)."""
        if self.held:
            return
        self.logdir.mkdir(parents=True, exist_ok=True)
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%d %H:%M:%S %z"), "started_at": time.time(),
                "proc_start": _process_start(os.getpid()), "token": uuid.uuid4().hex}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._handle_existing()
                continue  # the lock was released or a stale one removed: try again
            except OSError as e:
                raise self._write_fault(e) from None
            try:
                with os.fdopen(fd, "w") as f:
                    json.dump(info, f)
                    f.write("\n")
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as e:  # a full disk: no empty lock file left for the next run to doubt
                with contextlib.suppress(OSError):
                    self.path.unlink()
                raise self._write_fault(e) from None
            self._token = info["token"]
            return
        raise LogdirLockedError(f"Could not take the lock {self.path} within 10 s: other processes "
                                "keep taking it. Make sure only one training process uses this logdir.")

    def release(self):
        """Removes the lock file if this object still holds it."""
        if not self.held:
            return
        holder = _read(self.path)
        if holder is not None and holder.get("token") == self._token:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
        self._token = None

    def _write_fault(self, error):
        return write_fault(error, self.path, "Training did not start and nothing in the logdir "
                           "changed.", action="write the lock file",
                           instead="use another --logdir") or error

    def _handle_existing(self):
        """Raises if the existing lock is live; removes a stale one otherwise.

        Removal happens only under a short-lived guard file (also created with ``O_EXCL``) and after
        re-reading the lock, so of several processes finding the same stale lock one removes it,
        and a live lock is never removed by anyone but its holder.
        """
        holder = _read_settled(self.path)
        if holder is None:  # vanished meanwhile: its owner released it
            return
        if not _is_stale(holder):
            raise LogdirLockedError(_locked_message(self.path, holder))
        guard = self.path.with_name(LOCK_NAME + ".takeover")
        try:
            os.close(os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            try:  # a guard left by a process that died within its few microseconds of use
                if time.time() - guard.stat().st_mtime > 5:
                    guard.unlink()
            except FileNotFoundError:
                pass
            time.sleep(0.02)  # another process is taking over: look again shortly
            return
        try:
            current = _read(self.path)
            if current is None or current.get("token") != holder.get("token"):
                return  # changed meanwhile: look again
            self.path.unlink()
        finally:
            guard.unlink()
        if holder.get("corrupt"):
            _log.warning("Taking over the unreadable lock %s (its holder died while writing it?).",
                         self.path)
        else:
            _log.warning("Taking over the stale lock %s: process %s on host %s (started %s) is no "
                         "longer running; it was probably killed.", self.path, holder.get("pid"),
                         holder.get("host"), holder.get("started"))


@contextlib.contextmanager
def no_empty_dirs_left(logdir):
    """Context: on an exception, removes the directories of ``logdir`` that did not exist before.

    ``--logdir runs/new/exp1`` with neither directory there: a refused run removes ``exp1`` and
    then ``new``, if empty, and stops at the first directory that is not (or that existed before).
    Files are never removed (``os.rmdir`` only removes empty directories). Only the process that
    owns the logdir (the chief of a multi-worker run) should use it.

    Example:
        >>> with no_empty_dirs_left("runs/new/exp1"), LogdirLock("runs/new/exp1"):
        ...     raise ValueError("refused")     # runs/new is gone again
    """
    path = os.path.abspath(logdir)
    top = None  # the topmost directory that did not exist
    while not os.path.lexists(path):
        top, parent = path, os.path.dirname(path)
        if parent == path:
            break
        path = parent
    try:
        yield
    except BaseException:
        path = os.path.abspath(logdir)
        while top is not None:
            try:
                os.rmdir(path)  # only an empty directory: files are never removed
            except OSError:
                break
            if path == top:
                break
            path = os.path.dirname(path)
        raise


def _locked_message(path, holder):
    pid, host = holder.get("pid"), holder.get("host")
    here = host == socket.gethostname()
    who = "this process" if here and pid == os.getpid() else f"process {pid} on host {host}"
    fix = ("wait for it to finish, stop it (e.g. `kill {pid}`; it saves a checkpoint and releases "
           "the lock), or choose another --logdir.").format(pid=pid)
    if not here:
        fix += (f" If that process is no longer running, delete {path} (it cannot be checked from "
                "this host).")
    return (f"The logdir {path.parent} is in use: {who} has been training into it since "
            f"{holder.get('started')} (lock file {path}). To proceed, {fix}")


def _is_stale(holder):
    if holder.get("corrupt"):
        return True
    if holder.get("host") != socket.gethostname():
        return False  # cannot see processes on other machines: assume alive
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, owned by another user
    recorded, current = holder.get("proc_start"), _process_start(pid)
    # Same PID, different start time: the holder died and the PID was reused.
    return recorded is not None and current is not None and recorded != current


def _process_start(pid):
    """The process's start time in clock ticks since boot (Linux), or None where unavailable."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime); the command name in field 2 may contain spaces, so split after ')'.
    return int(stat.rsplit(")", 1)[1].split()[19])


def _read(path):
    """The lock's JSON, {"corrupt": True} if unreadable as such, None if the file is gone."""
    try:
        text = pathlib.Path(path).read_text()
    except FileNotFoundError:
        return None
    try:
        holder = json.loads(text)
    except json.JSONDecodeError:
        return {"corrupt": True, "empty": not text.strip()}
    return holder if isinstance(holder, dict) else {"corrupt": True, "empty": False}


def _read_settled(path, wait=2.0):
    """Reads the lock, giving a process that is just writing it up to ``wait`` seconds to finish."""
    deadline = time.monotonic() + wait
    while True:
        holder = _read(path)
        if holder is None or not holder.get("corrupt") or time.monotonic() > deadline:
            return holder
        time.sleep(0.05)
