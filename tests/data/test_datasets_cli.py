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


@pytest.mark.parametrize("inside", [False, True])
def test_data_dir_that_is_a_file_is_an_error(env, capsys, inside):
    blocker = env / "passwd"
    blocker.write_text("root:x:0:0\n")
    data_dir = blocker / "mnist" if inside else blocker
    where = f"{blocker} is a file" if inside else "it is a file"
    assert main(["datasets", "--data-dir", str(data_dir)]) == 2
    captured = capsys.readouterr()
    assert captured.err == (f"slimkit datasets: error: Invalid data folder {data_dir}: {where}. "
                            "Expected a folder that holds a dataset's files (like the tutorial's "
                            "MNIST_data), or one that can be created to download them into; pass "
                            "--data-dir / data_dir= such a folder.\n")
    assert captured.out == ""


def test_slimkit_data_dir_at_the_dataset_folder_itself_gets_a_hint(env, capsys, mnist_dir,
                                                                   monkeypatch):
    folder = _linked_copy(mnist_dir, env / "mnist")
    monkeypatch.setenv("SLIMKIT_DATA_DIR", str(folder))
    assert main(["datasets", "mnist"]) == 0
    out = capsys.readouterr().out
    assert f"{env / 'cache' / 'slimkit' / 'mnist'} (cache)" in out  # mnist/mnist/ is not there
    assert out.splitlines()[-1] == (
        f"Note: SLIMKIT_DATA_DIR={folder} holds the files directly; it should be the folder above "
        f"it: SLIMKIT_DATA_DIR={env} (a data root with one folder per dataset: {env}/mnist/), or "
        f"pass --data-dir {folder}.")
    assert main(["datasets", "mnist", "--data-dir", str(folder)]) == 0
    assert "Note:" not in capsys.readouterr().out  # --data-dir wins; SLIMKIT_DATA_DIR is unused


def test_data_root_hint_for_a_folder_of_another_name(env, capsys, mnist_dir, monkeypatch):
    folder = _linked_copy(mnist_dir, env / "MNIST_data")
    monkeypatch.setenv("SLIMKIT_DATA_DIR", str(folder))
    assert main(["datasets"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"Note: SLIMKIT_DATA_DIR={folder} holds dataset files directly; it should be a data root "
        f"with one folder per dataset: move them into {folder}/mnist/ (or fashion_mnist/), or "
        f"pass --data-dir {folder}.")
