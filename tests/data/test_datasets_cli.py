"""`slimkit datasets`: the table, the location rules it reports, and its exit codes."""

import os
import subprocess
import sys

import pytest

from slimkit.cli import main
from slimkit.data.registry import get_dataset_info

HEADER = "name   image    classes  train   test    location"


@pytest.fixture()
def env(monkeypatch, tmp_path, mnist_dir):
    monkeypatch.setenv("SLIMKIT_DATA_DIR", str(mnist_dir.parent))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("SLIMKIT_MIRRORS", raising=False)
    return tmp_path


def _linked_copy(mnist_dir, folder):
    folder.mkdir()
    for f in get_dataset_info("mnist").files:
        (folder / f.name).symlink_to(mnist_dir / f.name)
    return folder


def test_lists_all_datasets(env, capsys, mnist_dir):
    assert main(["datasets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "image", "classes", "train", "test", "location", "status"]
    names = [line.split()[0] for line in lines[1:3]]
    assert names == ["fashion_mnist", "mnist"]
    assert lines[2].split() == ["mnist", "28x28x1", "10", "60,000", "10,000", str(mnist_dir),
                                "(SLIMKIT_DATA_DIR)", "present,", "checksums", "verified"]


def test_missing_files_would_be_downloaded(env, capsys, monkeypatch):
    monkeypatch.setenv("SLIMKIT_MIRRORS", "http://127.0.0.1:9/{name}/")
    assert main(["datasets", "mnist", "--data-dir", str(env / "MNIST_data")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(HEADER)
    assert (f"{env / 'MNIST_data'} (--data-dir)  4 of 4 files missing: would be downloaded from "
            f"127.0.0.1:9") in out
    assert not (env / "MNIST_data").exists()  # listing never creates or downloads anything


def test_corrupt_file_is_flagged_with_exit_code_1(env, capsys, mnist_dir):
    folder = _linked_copy(mnist_dir, env / "data")
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    assert main(["datasets", "mnist", "--data-dir", str(folder)]) == 1
    assert ("CORRUPT (checksum mismatch): t10k-labels-idx1-ubyte.gz; delete to re-download"
            in capsys.readouterr().out)


def test_unknown_dataset_is_a_one_line_error(env, capsys):
    assert main(["datasets", "minst"]) == 2
    captured = capsys.readouterr()
    assert captured.err == ("slimkit datasets: error: Unknown dataset 'minst'. Expected one of: "
                            "fashion_mnist, mnist. Did you mean 'mnist'?\n")
    assert captured.out == ""


def test_subprocess_without_tensorflow(env, mnist_dir):
    code = ("import sys; from slimkit.cli import main; rc = main(['datasets', 'mnist']); "
            "print('tensorflow imported' if 'tensorflow' in sys.modules else 'no tensorflow'); "
            "sys.exit(rc)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=dict(os.environ), timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"{mnist_dir} (SLIMKIT_DATA_DIR)  present, checksums verified" in result.stdout
    assert result.stdout.rstrip().endswith("no tensorflow")
