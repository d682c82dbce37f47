"""Every OSError reaching the `slimkit` command is one line naming the path, exit code 2.

Run as real subprocesses: what a user sees on stderr, with no traceback (unless SLIMKIT_DEBUG=1).
"""

import os
import subprocess
import sys
import tempfile

import pytest

LONG = "a" * 300  # one path component longer than NAME_MAX (255): "File name too long"


def run_cli(*argv, cwd=None, **env_vars):
    env = dict(os.environ, SLIMKIT_MIRRORS="http://127.0.0.1:9/")  # never a real download
    env.pop("SLIMKIT_DEBUG", None)
    env.update(env_vars)
    return subprocess.run([sys.executable, "-m", "slimkit", *argv], capture_output=True,
                          text=True, timeout=120, cwd=cwd, env=env)


def _one_line(result):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_name_too_long_for_datasets(tmp_path):
    result = run_cli("datasets", "mnist", "--data-dir", LONG, cwd=tmp_path)
    assert _one_line(result) == (f"slimkit datasets: error: File name too long: "
                                 f"{LONG}/train-images-idx3-ubyte.gz")


def test_name_too_long_for_a_train_logdir(tmp_path, mnist_dir):
    result = run_cli("train", "--preset", "mnist-softmax-tutorial", "--data-dir", str(mnist_dir),
                     "--logdir", LONG, cwd=tmp_path)
    assert _one_line(result) == f"slimkit train: error: File name too long: {LONG}"


def test_debug_shows_the_traceback(tmp_path):
    result = run_cli("datasets", "mnist", "--data-dir", LONG, cwd=tmp_path, SLIMKIT_DEBUG="1")
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "OSError: [Errno 36] File name too long" in \
        result.stderr


@pytest.fixture()
def unwritable_folder():
    """An existing folder this process cannot create files in, and the OS's reason."""
    if os.geteuid() != 0:
        folder = tempfile.mkdtemp()
        os.chmod(folder, 0o555)
    elif os.path.isdir("/sys"):  # root may write anywhere but in sysfs
        folder = "/sys"
    else:
        pytest.skip("running as root without /sys: no folder root cannot write")
    try:
        fd, probe = tempfile.mkstemp(dir=folder)
    except OSError as e:
        reason = e.strerror
    else:
        os.close(fd)
        os.remove(probe)
        pytest.skip(f"{folder} is writable here")
    yield folder, reason
    if folder != "/sys":
        os.chmod(folder, 0o755)
        os.rmdir(folder)


def test_download_into_an_unwritable_folder_names_it_and_the_fix(tmp_path, unwritable_folder):
    folder, reason = unwritable_folder
    assert reason == "Permission denied"  # (chmod 555 for a user; sysfs for root)
    result = run_cli("train", "softmax_regression", "--data-dir", folder, "--logdir",
                     str(tmp_path / "run"), "--steps", "1")
    assert _one_line(result) == (
        f"slimkit train: error: Cannot write {folder}/train-images-idx3-ubyte.gz: permission "
        f"denied. Let this user write in {folder} (`chmod`/`chown` it, or run as its owner) or "
        "pass --data-dir / data_dir= a writable folder with free space (or set XDG_CACHE_HOME), "
        f"or put the files in {folder} yourself.")
    assert not [n for n in os.listdir(folder) if n.endswith(".part")]
