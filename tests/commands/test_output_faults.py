"""`slimkit export`, `inspect --png` and `predict --save-preprocessed` into a really full or a
read-only folder: one line naming the file, the cause and the fix, exit 2, nothing half-written."""

import numpy as np
import pytest
from PIL import Image

from fault_injection import PAGE, fill, read_only_bind_mount, tmpfs

from slimkit.cli import main


def _error(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def _digit(tmp_path):
    path = tmp_path / "seven.png"
    image = np.full((40, 40), 255, np.uint8)
    image[8:32, 18:22] = 0
    Image.fromarray(image).save(path)
    return path


@pytest.mark.parametrize("command", ["export", "inspect", "predict"])
def test_a_full_disk_is_one_line_and_leaves_nothing(command, deep_run, tmp_path, capsys):
    digit = _digit(tmp_path)  # (outside the full disk)
    with tmpfs(tmp_path / "full", 12000 * PAGE) as folder:  # 47 MB: room for the output once freed
        filler = fill(folder)
        out = folder / "out"
        argv = {"export": ["export", str(deep_run[0]), "--format", "saved_model", str(out)],
                "inspect": ["inspect", str(deep_run[0]), "--png", str(out)],
                "predict": ["predict", str(deep_run[0]), str(digit), "--save-preprocessed",
                            str(out)]}[command]
        assert main(argv) == 2
        line = _error(capsys)
        assert line.startswith(f"slimkit {command}: error: Cannot write {out}")
        assert ": no space left on the device. Free space there (`df -h " in line
        option = {"export": "OUT", "inspect": "--png folder", "predict": "--save-preprocessed folder"}
        assert f"or choose another {option[command]}." in line
        # nothing half-written beside the filler; with the space freed, the same command works
        assert [p for p in folder.rglob("*") if p.is_file() and p != filler] == []
        filler.unlink()
        capsys.readouterr()
        assert main(argv) == 0
        assert out.exists()


def test_a_read_only_folder_is_one_line(deep_run, tmp_path, capsys):
    target = tmp_path / "pictures"
    target.mkdir()
    with read_only_bind_mount(target):
        assert main(["inspect", str(deep_run[0]), "--png", str(target)]) == 2
        line = _error(capsys)
    assert line.startswith(f"slimkit inspect: error: Cannot write {target}/")
    assert ": the file system is read-only. Remount it read-write or choose another --png " \
           "folder." in line
    assert list(target.iterdir()) == []
