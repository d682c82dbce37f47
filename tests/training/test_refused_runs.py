"""A run refused at start-up writes nothing: no new logdir, and an existing logdir's config.json is
left as it was. A logdir records the data it was trained on and refuses other data clearly."""

import io
import shutil

import numpy as np
import pytest
from test_train_folder import _config as folder_config  # lenet on an image folder, 28x28, batch 3

from slimkit.training.config import TrainConfig
from slimkit.training.loop import train


def _make_folder(root, class_names, per_class=11):
    """root/<class>/<i>.png, colored per class, as test_train_folder's fixture makes them."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, name in enumerate(class_names):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            image = rng.integers(0, 60, (36, 36, 3), dtype=np.uint8)
            image[..., label % 3] += 150
            Image.fromarray(image).save(root / name / f"{i}.png")
    return root


def _softmax(mnist_dir, logdir, **kwargs):
    return TrainConfig(model="softmax_regression", data_dir=str(mnist_dir), logdir=str(logdir),
                       learning_rate=0.5, batch_size=100, steps=5, **kwargs)


def test_a_run_whose_warm_start_fails_leaves_no_logdir(tmp_path, mnist_dir):
    logdir, missing = tmp_path / "new" / "exp1" / "run", tmp_path / "missing"
    (tmp_path / "kept").mkdir()
    with pytest.raises(FileNotFoundError, match=rf"^No checkpoint at {missing}: expected"):
        train(_softmax(mnist_dir, logdir, checkpoint_path=str(missing)), log_stream=io.StringIO())
    # Neither config.json nor the lock's directory, nor the parents it created.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]
    # Removal stops at the topmost directory the run created: a parent that existed stays.
    logdir = tmp_path / "kept" / "new" / "run"
    with pytest.raises(FileNotFoundError):
        train(_softmax(mnist_dir, logdir, checkpoint_path=str(missing)), log_stream=io.StringIO())
    assert (tmp_path / "kept").is_dir() and not (tmp_path / "kept" / "new").exists()


@pytest.mark.parametrize("settings, message", [
    (dict(keep_best=True, validation_size=0), r"^Invalid value for `keep_best` with validation_size=0"),
    (dict(validation_size=60000),
     r"^Invalid value for `validation_size`\. Expected an integer from 0 to 59999: mnist has 60000 "
     r"training examples, validation_size of them are held out, and at least one must be left to "
     r"train on\. Received validation_size=60000\.$"),
    (dict(checkpoint_exclude_scopes=["logits"]),
     r"^Invalid value for `checkpoint_exclude_scopes` without `checkpoint_path`"),
])
def test_refused_settings_write_nothing(tmp_path, mnist_dir, settings, message):
    with pytest.raises(ValueError, match=message):
        train(_softmax(mnist_dir, tmp_path / "new" / "run", **settings), log_stream=io.StringIO())
    assert not (tmp_path / "new").exists()


def test_resuming_with_another_validation_size_is_refused(tmp_path, mnist_dir):
    """The saved data position (epoch, offset) points into the training array: with another
    --validation-size it would point into another one."""
    logdir = tmp_path / "run"
    train(_softmax(mnist_dir, logdir, validation_size=5000), log_stream=io.StringIO())
    saved = (logdir / "config.json").read_bytes()
    with pytest.raises(ValueError) as info:
        train(_softmax(mnist_dir, logdir, validation_size=1000), log_stream=io.StringIO())
    assert str(info.value) == (
        f"Logdir {str(logdir)!r} holds a run trained on other data: number of training examples "
        "55000 (this run's data: 59000). Its checkpoints cannot be resumed on this data (it was "
        f"trained with --data-dir {mnist_dir}). Use another --logdir for this data, or the data the "
        "logdir's run was trained on (or its --validation-size 5000) to resume it.")
    assert (logdir / "config.json").read_bytes() == saved


def test_a_logdir_refuses_other_data_and_keeps_its_config(tmp_path):
    two = _make_folder(tmp_path / "fA", ["blue", "red"])
    three = _make_folder(tmp_path / "fB", ["blue", "green", "red"])
    logdir = tmp_path / "run"
    train(folder_config(two, logdir, 2), log_stream=io.StringIO())
    saved = (logdir / "config.json").read_bytes()

    with pytest.raises(ValueError) as info:
        train(folder_config(three, logdir, 4), log_stream=io.StringIO())
    assert str(info.value) == (
        f"Logdir {str(logdir)!r} holds a run trained on other data: number of classes 2 (this run's "
        "data: 3); class names [blue, red] (this run's data: [blue, green, red]); number of "
        "training examples 20 (this run's data: 30). Its checkpoints "
        f"cannot be resumed on this data (it was trained with --data-dir {two}). Use another "
        "--logdir for this data, or the data the logdir's run was trained on to resume it.")
    assert (logdir / "config.json").read_bytes() == saved  # the refused run's config is not saved

    # As many classes, other names: refused too (it used to resume silently on other data).
    other = _make_folder(tmp_path / "fC", ["cat", "dog"])
    with pytest.raises(ValueError, match=r"holds a run trained on other data: class names \[blue, "
                                         r"red\] \(this run's data: \[cat, dog\]\)\. "):
        train(folder_config(other, logdir, 4), log_stream=io.StringIO())
    assert (logdir / "config.json").read_bytes() == saved

    # The same data elsewhere (another machine's copy, another --data-dir): resumed.
    copy = shutil.copytree(two, tmp_path / "copy")
    out = io.StringIO()
    assert train(folder_config(copy, logdir, 4), log_stream=out)["global_step"] == 4
    assert f"resuming from {logdir}/ckpt-2" in out.getvalue()


def test_keep_best_on_a_folder_without_a_validation_split_is_refused(tmp_path):
    tiny = _make_folder(tmp_path / "tiny", ["blue", "red"], per_class=4)  # 10% of 4 rounds to 0
    config = TrainConfig(**{**folder_config(tiny, tmp_path / "run", 2).to_dict(), "keep_best": True})
    with pytest.raises(ValueError) as info:
        train(config, log_stream=io.StringIO())
    assert str(info.value) == (
        f"Invalid value for `keep_best`: the data of this run (folder at {tiny}) has no validation "
        "split to evaluate on. Expected a validation split (an image folder: a val/ folder beside "
        "train/, or enough images per class to hold 10% out), or keep_best off. "
        "Received keep_best=True.")
    assert not (tmp_path / "run").exists()
