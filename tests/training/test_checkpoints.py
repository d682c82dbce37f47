"""checkpoints.py: the best checkpoint decided for all workers, and unreadable checkpoints reported
clearly: corrupt (naming the previous checkpoint of the logdir) or not readable by this user."""

import contextlib
import json
import os
import pathlib
import shutil
import tempfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from slimkit.training import checkpoints as ckpt_lib
from slimkit.training.finetune import restore_for_finetuning


def _small():
    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.Dense(3, name="logits")(inputs))


def _checkpoints(directory, keep_best=False):
    model = _small()
    optimizer = keras.optimizers.SGD(0.1)
    optimizer.build(model.trainable_variables)
    state = ckpt_lib.RunState(model)
    return ckpt_lib.Checkpoints(ckpt_lib.make_checkpoint(model, optimizer, state), state,
                                directory, keep=5, keep_best=keep_best)


def test_save_best_acts_on_the_agreed_decision(tmp_path):
    """A non-chief worker restarted after a resume has a new scratch dir without best.json: its own
    decision would be "better" whatever the chief's best is. It acts on the chief's decision."""
    worker = _checkpoints(tmp_path / "scratch", keep_best=True)
    local = []
    assert worker.save_best(0.8, 10, agree=lambda better: local.append(better) or False) is False
    assert local == [True]  # its own best.json is missing: it alone would have saved
    assert tf.train.latest_checkpoint(str(tmp_path / "scratch" / "best")) is None
    assert worker.best_accuracy() is None
    # And it saves when the chief does, even where its own best.json says "not better".
    assert worker.save_best(0.9, 20) is True
    assert worker.save_best(0.5, 30, agree=lambda better: not better) is True
    assert json.loads((tmp_path / "scratch" / "best" / "best.json").read_text())["step"] == 30


def _two_checkpoints(directory):
    checkpoints = _checkpoints(directory)
    first = checkpoints.save(5)
    return checkpoints, first, checkpoints.save(10)


def test_a_corrupt_newest_checkpoint_names_the_logdirs_previous_one(tmp_path):
    """How a non-chief worker restores (from the chief's logdir, with the logdir's list)."""
    checkpoints, first, newest = _two_checkpoints(tmp_path)
    assert ckpt_lib.logdir_checkpoints(tmp_path) == [first, newest]
    assert ckpt_lib.logdir_checkpoints(tmp_path / "none") == []
    os.truncate(newest + ".data-00000-of-00001", 10)
    with pytest.raises(ValueError, match=rf"^Cannot restore checkpoint {newest}: its files are "
                       rf"corrupt or incomplete \(.*\)\. Nothing in the logdir was changed or "
                       rf"deleted\. To resume from the previous checkpoint, {first}, edit "):
        ckpt_lib.restore_checkpoint(checkpoints.checkpoint, newest,
                                    ckpt_lib.logdir_checkpoints(tmp_path))


@pytest.fixture
def shared_dir():
    """A directory another user may enter (pytest's tmp_path is private to root)."""
    path = pathlib.Path(tempfile.mkdtemp(prefix="slimkit-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


@contextlib.contextmanager
def _not_root():
    """Root reads every file: reads in this block run as `nobody`, so mode 000 files are denied."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def _denied_message(path):
    return (f"Cannot read {path}: permission denied. Expected a checkpoint or weights file this "
            f"user can read. Give read permission (e.g. `chmod a+r {path}`) or run as a user who "
            "may read it.")


def test_an_unreadable_checkpoint_is_a_permission_error_not_corrupt(shared_dir):
    checkpoints, _, newest = _two_checkpoints(shared_dir / "run")
    (shared_dir / "run").chmod(0o755)
    data = newest + ".data-00000-of-00001"
    os.chmod(data, 0)
    with _not_root(), pytest.raises(PermissionError) as info:
        ckpt_lib.restore_checkpoint(checkpoints.checkpoint, newest,
                                    ckpt_lib.logdir_checkpoints(shared_dir / "run"))
    assert str(info.value) == _denied_message(data)
    # The same file as a warm-start source (--checkpoint-path).
    model = _small()
    before = [v.numpy() for v in model.weights]
    with _not_root(), pytest.raises(PermissionError) as info:
        restore_for_finetuning(model, newest)
    assert str(info.value) == _denied_message(data)
    for old, variable in zip(before, model.weights):
        np.testing.assert_array_equal(variable.numpy(), old)


def test_an_unreadable_weights_file_is_a_permission_error(shared_dir):
    path = str(shared_dir / "small.weights.h5")
    _small().save_weights(path)
    os.chmod(path, 0)
    with _not_root(), pytest.raises(PermissionError) as info:
        restore_for_finetuning(_small(), path)
    assert str(info.value) == _denied_message(path)


def test_restore_removes_what_a_save_killed_midway_left(tmp_path):
    """TensorFlow's temporaries of a killed save (SIGKILL, power loss): the checkpoint's
    `ckpt-N_temp/` folder and the state file's `checkpoint.tmp<random>`; the checkpoints stay."""
    checkpoints, first, newest = _two_checkpoints(tmp_path)
    (tmp_path / "ckpt-11_temp").mkdir()
    (tmp_path / "ckpt-11_temp" / "part-00000-of-00001.data-00000-of-00001.tempstate42").write_bytes(
        b"\0" * 100)
    (tmp_path / "best" / "ckpt-11_temp").mkdir(parents=True)
    (tmp_path / "checkpoint.tmp0f3a9c").write_text("model_checkpoint_path: \"ckpt-11\"\n")
    kept = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("ckpt-")
            and p.is_file()}
    assert len(kept) == 4  # ckpt-5.*, ckpt-10.*
    assert _checkpoints(tmp_path).restore() == newest
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["best", "checkpoint", *kept])
    assert list((tmp_path / "best").iterdir()) == []
    assert {name: (tmp_path / name).read_bytes() for name in kept} == kept


def test_a_full_disk_at_save_best_leaves_best_and_best_json_as_they_were(tmp_path):
    """best.json is written first and renamed last: whichever write fails, best/ and best.json
    stay the previous best's, and nothing temporary is left."""
    from fault_injection import PAGE, fill, tmpfs
    from slimkit.writing import WriteFaultError

    with tmpfs(tmp_path / "disk", 64 * PAGE) as disk:
        run = disk / "run"
        checkpoints = _checkpoints(run, keep_best=True)
        assert checkpoints.save_best(0.5, 5) is True
        checkpoints.save(10)
        best = {p.name: p.read_bytes() for p in (run / "best").iterdir()}
        resume = (f"the logdir resumes from its intact checkpoint {run}/ckpt-10 (step 10) when the "
                  "same command runs again.")
        filler = fill(disk, leave=PAGE)  # room for best.json's new copy, none for the checkpoint
        with pytest.raises(WriteFaultError) as raised:
            checkpoints.save_best(0.9, 10)
        assert str(raised.value) == (
            f"Cannot write the checkpoint {run}/best/ckpt-10: no space left on the device. Free "
            f"space there (`df -h {run}/best` shows what is left) or use a --logdir elsewhere. "
            f"Training stopped at step 10 without this checkpoint (its partial files were "
            f"removed); {resume}")
        assert {p.name: p.read_bytes() for p in (run / "best").iterdir()} == best
        filler.unlink()
        fill(disk)
        with pytest.raises(WriteFaultError) as raised:
            checkpoints.save_best(0.9, 10)
        assert str(raised.value) == (
            f"Cannot write {run}/best/best.json: no space left on the device. Free space there "
            f"(`df -h {run}/best` shows what is left) or use a --logdir elsewhere. Training "
            f"stopped at step 10 with best/ unchanged; {resume}")
        assert {p.name: p.read_bytes() for p in (run / "best").iterdir()} == best
        assert checkpoints.best_accuracy() == 0.5
