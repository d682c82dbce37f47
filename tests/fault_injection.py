"""Real write faults for tests: a file-size limit, a full file system, a read-only logdir.

Nothing is mocked: the kernel refuses the writes. What the machine does not allow (mounting without
root, dropping root's file-permission override) is a ``pytest.skip`` that says why.
"""

import contextlib
import ctypes
import errno
import os
import pathlib
import resource
import subprocess
import tempfile
import uuid

import pytest

PAGE = 4096  # tmpfs allocates whole pages
# Linux capabilities that let root ignore file permissions (linux/capability.h).
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH, _CAP_FOWNER = 1, 2, 3
_PR_CAPBSET_DROP = 24


def file_size_limit(limit):
    """A ``preexec_fn``: files of at most ``limit`` bytes (``ulimit -f``). Python ignores SIGXFSZ,
    so a write past the limit fails with EFBIG ("File too large")."""
    def preexec():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    return preexec


@contextlib.contextmanager
def tmpfs(path, size):
    """A ``size``-byte tmpfs mounted at ``path`` (created), unmounted at the end; skips where the
    machine does not allow mounting."""
    path = pathlib.Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs (a really full file system) needs root")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                             str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip() or result.returncode}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def fill(folder, leave=0):
    """Fills the file system of ``folder`` up, leaving ``leave`` bytes (whole pages) free.

    Returns:
        The filler file; remove it to free the space again.
    """
    filler = pathlib.Path(folder, f"filler-{uuid.uuid4().hex[:6]}")
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * PAGE)
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
    if leave:
        os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


@contextlib.contextmanager
def read_only_bind_mount(path):
    """``path`` mounted read-only over itself (writes fail with EROFS); skips where not allowed."""
    if os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root")
    for command in (["mount", "--bind", str(path), str(path)],
                    ["mount", "-o", "remount,bind,ro", str(path)]):
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            if command[1] != "--bind":
                subprocess.run(["umount", str(path)])
            pytest.skip(f"cannot bind-mount read-only here: {result.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def permissions_obeyed():
    """A ``preexec_fn`` under which file permissions apply to the child, even as root.

    As root: drops the capabilities that override file permissions from the child's bounding set,
    so root's new process gets them no more (``chmod a-w`` then denies it, as it would any user).
    Running as ``nobody`` instead would need the Python installation readable by it. Skips where
    the capabilities cannot be dropped; None (nothing to do) when not root.
    """
    if os.geteuid() != 0:
        return None
    libc = ctypes.CDLL(None, use_errno=True)

    def preexec():
        for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH, _CAP_FOWNER):
            if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")

    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, 0o555)
        try:
            probe = subprocess.run(["touch", os.path.join(folder, "probe")], preexec_fn=preexec,
                                   capture_output=True, text=True)
        except subprocess.SubprocessError as e:  # prctl refused (no CAP_SETPCAP)
            pytest.skip(f"cannot drop CAP_DAC_OVERRIDE here: {e}")
        finally:
            os.chmod(folder, 0o755)
    if probe.returncode == 0:
        pytest.skip("cannot make root obey file permissions here: with CAP_DAC_OVERRIDE dropped, "
                    "a folder of mode 555 was still writable")
    if "Permission denied" not in probe.stderr:
        pytest.skip(f"cannot make root obey file permissions here: {probe.stderr.strip()[-200:]}")
    return preexec
