"""Training on an image folder (dataset='folder'): the tf.data feed resumes at the exact example,
also mid-batch across an epoch boundary, and the final evaluation is on the validation split."""

import io
import re

import numpy as np
import pytest
import tensorflow as tf

from slimkit.evaluation import evaluate
from slimkit.training.config import TrainConfig
from slimkit.training.loop import train


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("colors")
    rng = np.random.default_rng(0)
    for label, name in enumerate(["blue", "red"]):
        (root / name).mkdir()
        for i in range(11):
            image = rng.integers(0, 60, (36, 36, 3), dtype=np.uint8)
            image[..., 2 if label == 0 else 0] += 150
            Image.fromarray(image).save(root / name / f"{i}.png")
    return root


def _config(folder, logdir, steps):
    # 20 training images (10% of each class held out), batch 3: the batches straddle epochs and a
    # stop at step 7 leaves the feed 1 example into epoch 1, not a whole number of batches.
    return TrainConfig(model="lenet", dataset="folder", data_dir=str(folder), image_size=28,
                       logdir=str(logdir), steps=steps, batch_size=3, optimizer="momentum",
                       learning_rate=0.001, save_every_n_steps=100, steps_per_call=2,
                       precision="fp32")


def _weights(checkpoint):
    reader = tf.train.load_checkpoint(str(checkpoint))
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
            if k not in ("_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter/.ATTRIBUTES/VARIABLE_VALUE")}


def test_folder_training_resumes_exactly(folder, tmp_path):
    out = io.StringIO()
    whole = train(_config(folder, tmp_path / "whole", 12), log_stream=out)
    assert "val accuracy: " in out.getvalue() and 0 <= whole["validation_accuracy"] <= 1
    # `slimkit eval` picks the folder's one held-out split by itself.
    evaluated = evaluate(tmp_path / "whole")
    assert (evaluated["split"], evaluated["accuracy"]) == ("validation",
                                                           whole["validation_accuracy"])

    train(_config(folder, tmp_path / "parts", 7), log_stream=io.StringIO())
    position = _weights(tmp_path / "parts" / "ckpt-7")["data_position/.ATTRIBUTES/VARIABLE_VALUE"]
    assert position.tolist() == [1, 1]  # 21 examples served: epoch 1, offset 1
    train(_config(folder, tmp_path / "parts", 12), log_stream=io.StringIO())

    expected, actual = _weights(tmp_path / "whole" / "ckpt-12"), _weights(tmp_path / "parts" / "ckpt-12")
    assert sorted(expected) == sorted(actual)
    assert [k for k in expected if not np.array_equal(expected[k], actual[k])] == []


def test_folder_needs_data_dir(tmp_path):
    with pytest.raises(ValueError, match="dataset='folder' needs --data-dir"):
        train(TrainConfig(model="lenet", dataset="folder", logdir=str(tmp_path), steps=1),
              log_stream=io.StringIO())


def test_keep_best_on_a_folder_evaluates_each_step_once(folder, tmp_path):
    """An image folder's final evaluation is on its validation split: it reuses the keep-best
    evaluation of the final step (same EMA weights) instead of a second pass and a second point."""
    from test_train_e2e import _scalars

    config = TrainConfig(**{**_config(folder, tmp_path, 5).to_dict(), "keep_best": True,
                            "save_every_n_steps": 2, "ema_decay": 0.5})
    out = io.StringIO()
    metrics = train(config, log_stream=out)
    evaluated = _scalars(tmp_path / "validation", "accuracy")
    assert [step for step, _ in evaluated] == [2, 4, 5]  # one point per step
    assert metrics["validation_accuracy"] == pytest.approx(evaluated[-1][1])
    assert out.getvalue().count("step 5: validation accuracy") == 1
    assert "val accuracy: " in out.getvalue()


def test_images_kept_in_memory_or_on_disk_train_exactly_as_files_read_every_epoch(
        folder, tmp_path, monkeypatch):
    """The default keeps the decoded images in memory (--image-cache-mb), else resized on disk
    in the user cache (--image-disk-cache-mb): the same checkpoint as reading every file every
    epoch, and the log says which one the run did."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user_cache"))
    logs = {}
    for name, memory, disk in (("kept", 1024.0, None), ("read", 0.0, 0.0),
                               ("on_disk", 0.01, None), ("too_small", 0.01, 0.01),
                               ("disk_only", 0.0, None)):
        config = TrainConfig(**{**_config(folder, tmp_path / name, 8).to_dict(),
                                "image_cache_mb": memory, "image_disk_cache_mb": disk})
        out = io.StringIO()
        train(config, log_stream=out)
        logs[name] = out.getvalue()
    (cache,) = (tmp_path / "user_cache" / "slimkit" / "image_folders").glob("*-32px-tf*-f1")
    assert ("20 training images and 2 validation images kept decoded in memory (0.1 MiB): read "
            "and decoded once") in logs["kept"]
    assert "the 20 training images are read and decoded every epoch: --image-cache-mb 0 keeps " \
           "nothing in memory, and --image-disk-cache-mb 0 keeps nothing on disk" in logs["read"]
    assert re.search(
        r"the 20 training images are not kept in memory \(they need more than --image-cache-mb "
        r"0.01 MiB of memory, or one no longer decodes\): resizing 20 of them once onto disk in "
        + re.escape(str(cache)) + r", up to [\d,.]+ MiB \(half the free space there; "
        r"--image-disk-cache-mb sets it\); they stay there for later runs", logs["on_disk"])
    assert ("20 training images and 2 validation images kept resized on disk (0.1 MiB): read "
            "without decoding") in logs["on_disk"]
    assert (f"the 20 training images are read and decoded every epoch: they need more than "
            f"--image-cache-mb 0.01 MiB of memory, or one no longer decodes, and they are not "
            f"kept on disk in {cache}: they need more than the budget (--image-disk-cache-mb 0.01 "
            f"MiB)") in logs["too_small"]
    # a later run reuses the entries: nothing to resize, no line before the work
    assert "resizing" not in logs["disk_only"]
    assert ("20 training images and 2 validation images kept resized on disk (0.1 MiB; 20 "
            "training images resized by an earlier run): read without decoding") \
        in logs["disk_only"]
    assert len(list(cache.iterdir())) == 22  # written once, by the first run that needed them
    # a run with nothing left to train decodes nothing
    out = io.StringIO()
    train(_config(folder, tmp_path / "kept", 8), log_stream=out)
    assert "nothing to train" in out.getvalue() and "decoded" not in out.getvalue()
    expected = _weights(tmp_path / "read" / "ckpt-8")
    for name in ("kept", "on_disk", "too_small", "disk_only"):
        actual = _weights(tmp_path / name / "ckpt-8")
        assert [k for k in expected if not np.array_equal(expected[k], actual[k])] == []


@pytest.mark.parametrize("memory, said", [
    (1024.0, "18 training images and 2 validation images kept decoded in memory"),
    (0.0, "18 training images and 2 validation images kept resized on disk"),
    # the training images fit in memory (18 x 32x35x3 bytes), the validation ones go to disk
    (0.06, "the 2 validation images kept resized on disk")])
def test_the_feed_and_evaluation_read_what_prepare_kept(tmp_path, monkeypatch, memory, said):
    """After ``prepare`` the training feed and the validation batches come from memory or disk:
    the same batches once the image files are gone."""
    import shutil

    from slimkit.training.data import load_training_data

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user_cache"))
    root = tmp_path / "colors"
    rng = np.random.default_rng(1)
    for name in ("blue", "red"):
        for i in range(10):  # one of each class held out for validation
            _save_png(root / name / f"{i}.png", rng.integers(0, 256, (36, 40, 3), dtype=np.uint8))
    config = TrainConfig(**{**_config(root, tmp_path / "run", 4).to_dict(),
                            "image_cache_mb": memory})

    def batches(data):
        data.feed.seek(0, 0)
        images, labels = data.feed.next_batches(3)
        evaluation = list(data.eval_batches("validation", 2))
        return [np.asarray(images), np.asarray(labels)] + [np.asarray(x) for b in evaluation
                                                            for x in b]

    expected = batches(load_training_data(config))
    data = load_training_data(config)
    messages = []
    data.prepare(messages.append)
    assert said in messages[-1]
    shutil.rmtree(root)
    actual = batches(data)
    assert len(actual) == len(expected) == 2 + 2 * 1  # one validation batch (2 images)
    for x, y in zip(expected, actual):
        np.testing.assert_array_equal(x, y)


def _save_png(path, array):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_the_image_cache_budget_is_1024_mib_or_a_quarter_of_the_available_memory(tmp_path):
    from slimkit.training.data import image_cache_budget

    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       25165824 kB\nMemAvailable:   20971520 kB\n")  # 20 GiB
    assert image_cache_budget(None, meminfo) == (1024.0, "the default")
    meminfo.write_text("MemTotal:        4194304 kB\nMemAvailable:    2097152 kB\n")  # 2 GiB
    assert image_cache_budget(None, meminfo) == (512.0, "a quarter of the available memory")
    assert image_cache_budget(0.0, meminfo) == (0.0, "--image-cache-mb")
    assert image_cache_budget(2048, meminfo) == (2048.0, "--image-cache-mb")
    # no MemAvailable (not Linux, or an old kernel): a quarter of the physical memory, at most 1024
    meminfo.write_text("MemTotal:        4194304 kB\n")
    budget, why = image_cache_budget(None, meminfo)
    assert 0 < budget <= 1024 and why in ("the default", "a quarter of the available memory")


def test_the_image_disk_budget_is_half_the_free_space_where_the_cache_goes(tmp_path):
    import shutil

    from fault_injection import PAGE, fill, tmpfs
    from slimkit.training.data import image_disk_budget

    assert image_disk_budget(0.0, tmp_path) == (0.0, "--image-disk-cache-mb")
    assert image_disk_budget(300, tmp_path) == (300.0, "--image-disk-cache-mb")
    with tmpfs(tmp_path / "disk", 1024 * PAGE) as disk:  # 4 MiB, the cache folder not made yet
        directory = disk / "slimkit" / "image_folders" / "x-256px"
        budget, why = image_disk_budget(None, directory)
        assert (budget, why) == (round(shutil.disk_usage(disk).free / 2**21, 1),
                                 "half the free space there")
        assert budget == 2.0
        # what the entries of earlier runs take counts as theirs: a later run keeps them
        directory.mkdir(parents=True)
        (directory / "0123456789abcdef01234567-512x512.u8").write_bytes(bytes(512 * 512 * 3))
        assert image_disk_budget(None, directory) == (2.0, "half the free space there")
        fill(disk)
        assert image_disk_budget(None, directory) == (0.4, "half the free space there")
        (directory / "0123456789abcdef01234567-512x512.u8").unlink()
        fill(disk)
        assert image_disk_budget(None, directory) == (
            0.0, f"there is no free space on the file system of {directory}")
