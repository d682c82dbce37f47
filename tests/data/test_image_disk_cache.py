"""Resized images kept on disk (ImageFolder.keep_on_disk): the same batches, reuse, faults."""

import os
import pathlib
import re

import numpy as np
import pytest
from PIL import Image

from slimkit.data.image_disk_cache import DiskCache, default_directory
from slimkit.data.image_folder import ImageFolder

SIZE = 32  # resized to shorter side 37 before cropping


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, quality=90)
    return path


def _noise(seed, shape):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.fixture()
def root(tmp_path):
    """Images of different sizes and aspect ratios (portrait, landscape, square, larger)."""
    shapes = [(40, 48), (60, 37), (37, 37), (90, 50), (45, 80), (38, 41)]
    for i, shape in enumerate(shapes * 2):
        _save(tmp_path / "photos" / ("ab"[i % 2]) / f"{i}.jpg", _noise(30 + i, shape + (3,)))
    return tmp_path / "photos"


def _folder(root):
    return ImageFolder(root, SIZE, validation_fraction=0.34)


def _batches(ds):
    return [(x.numpy(), y.numpy()) for x, y in ds]


def _all_batches(folder):
    train = folder.dataset("train", 3, training=True, seed=5, epoch=1, skip_batches=1,
                           repeat=True).take(6)
    return _batches(train) + _batches(folder.dataset("val", 2, training=False))


def _assert_same(expected, actual):
    assert len(actual) == len(expected)
    for (x1, y1), (x2, y2) in zip(expected, actual):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)


def _entries(directory):
    return sorted(p.name for p in pathlib.Path(directory).iterdir())


def test_images_kept_on_disk_give_the_same_batches_bit_for_bit(root, tmp_path):
    cache = tmp_path / "cache"
    on_disk = _folder(root)
    train_mb = on_disk.keep_on_disk("train", 1, cache)
    val_mb = on_disk.keep_on_disk("validation", 1, cache)
    assert 0 < train_mb < 0.1 and 0 < val_mb < train_mb and on_disk.disk_problem is None
    # one file per image, its uint8 pixels resized to shorter side 37 (e.g. 90x50 -> 67x37)
    names = _entries(cache)
    assert len(names) == len(on_disk.train_files) + len(on_disk.val_files) == 12
    assert all(re.fullmatch(r"[0-9a-f]{24}-\d+x\d+\.u8", n) for n in names)
    assert "-67x37.u8" in " ".join(names)
    assert sum((cache / n).stat().st_size for n in names) == round((train_mb + val_mb) * 2**20)
    expected = _all_batches(_folder(root))
    assert len(expected) == 8  # 6 training batches across epochs, 2 validation
    _assert_same(expected, _all_batches(on_disk))
    # the image files are not read: the resized ones are served once the files are gone
    moved = root.parent / "moved"
    root.rename(moved)
    try:
        _assert_same(expected, _all_batches(on_disk))
    finally:
        moved.rename(root)
    # an entry deleted or cut short while a run uses it is read from its file: nothing dropped
    first, second = cache / names[0], cache / names[1]
    first.unlink()
    second.write_bytes(second.read_bytes()[:-3])
    _assert_same(expected, _all_batches(on_disk))
    for name in names:  # even with every entry gone (the cache folder cleared)
        (cache / name).unlink(missing_ok=True)
    _assert_same(expected, _all_batches(on_disk))


def test_a_later_run_reuses_the_entries_and_resizes_only_changed_images(tmp_path):
    root, cache = tmp_path / "photos", tmp_path / "cache"
    for i in range(3):
        for name in "ab":
            _save(root / name / f"{i}.png", _noise(50 + i, (40, 60, 3)))
    first = ImageFolder(root, SIZE, validation_fraction=0.0)
    assert first.keep_on_disk("train", 1, cache) > 0
    before = {n: (cache / n).stat().st_mtime_ns for n in _entries(cache)}
    assert len(before) == 6
    changed = root / "a" / "1.png"
    _save(changed, _noise(99, (60, 44, 3)))  # now portrait: another size, another entry
    os.utime(changed, ns=(10**18, 10**18))
    (root / "b" / "2.png").unlink()
    second = ImageFolder(root, SIZE, validation_fraction=0.0)
    assert second.keep_on_disk("train", 1, cache) > 0
    after = {n: (cache / n).stat().st_mtime_ns for n in _entries(cache)}
    kept = set(before) & set(after)
    assert len(kept) == 4 and all(before[n] == after[n] for n in kept)  # not written again
    (new,) = set(after) - set(before)  # the changed image's; its old entry and the deleted
    assert new.endswith("-50x37.u8")   # image's are removed
    _assert_same(_batches(ImageFolder(root, SIZE, validation_fraction=0.0).dataset(
        "train", 2, training=True, seed=1)), _batches(second.dataset("train", 2, training=True,
                                                                      seed=1)))
    # an entry cut short (a crash of the machine) does not count: the image is resized again
    victim = cache / sorted(kept)[0]
    victim.write_bytes(victim.read_bytes()[:-1])
    assert ImageFolder(root, SIZE, validation_fraction=0.0).keep_on_disk("train", 1, cache) > 0
    h, w = (int(d) for d in victim.name[:-3].rsplit("-", 1)[1].split("x"))
    assert victim.stat().st_size == h * w * 3


def test_keeping_a_split_never_removes_entries_in_use(root, tmp_path):
    cache = tmp_path / "cache"
    folder = _folder(root)
    expected = _all_batches(_folder(root))
    folder.keep_on_disk("validation", 1, cache)
    val = set(_entries(cache))
    folder.keep_on_disk("train", 1, cache)
    train = set(_entries(cache)) - val
    assert val and train and len(val | train) == 12
    # a training image touched since: its entry is stale for a new run, not for this one
    touched = folder.train_files[0]
    os.utime(touched, ns=(10**18, 10**18))
    folder.keep_on_disk("validation", 1, cache)
    assert set(_entries(cache)) == val | train
    _assert_same(expected, _all_batches(folder))


def test_the_default_folder_is_per_image_folder_side_and_tensorflow_version(root, tmp_path,
                                                                            monkeypatch):
    import tensorflow as tf

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user_cache"))
    folder = _folder(root)
    assert folder.keep_on_disk("train", 1) > 0
    (directory,) = (tmp_path / "user_cache" / "slimkit" / "image_folders").iterdir()
    assert re.fullmatch(rf"[0-9a-f]{{16}}-37px-tf{re.escape(tf.__version__)}-f1", directory.name)
    assert directory == default_directory(root, 37)
    assert default_directory(root, 256) != directory != default_directory(tmp_path, 37)


def test_images_that_need_more_disk_than_the_budget_are_not_kept(root, tmp_path):
    cache = tmp_path / "cache"
    folder = _folder(root)
    floor_mb = len(folder.train_files) * 37 * 37 * 3 / 2**20
    assert folder.keep_on_disk("train", floor_mb * 0.99, cache) is None  # refused before decoding
    assert not cache.exists() and folder.disk_problem == "they need more than the budget"
    assert folder.keep_on_disk("train", floor_mb * 1.01, cache) is None  # stopped while writing
    assert _entries(cache) == []  # what it wrote is removed
    _assert_same(_all_batches(_folder(root)), _all_batches(folder))  # still read from the files
    with pytest.raises(ValueError, match="Expected 'train' or 'val'"):
        folder.keep_on_disk("test", 1, cache)
    for bad in (-1, float("nan"), "1", None, True):
        with pytest.raises(ValueError, match=r"Expected a number of MiB >= 0 \(inf: no limit\)"):
            folder.keep_on_disk("train", bad, cache)
    # a folder that cannot be made (a file is in the way)
    (tmp_path / "file").write_text("not a folder")
    assert folder.keep_on_disk("train", 1, tmp_path / "file" / "cache") is None
    assert folder.disk_problem.startswith(f"{tmp_path / 'file' / 'cache'} cannot be written (")
    # an image changed since indexing that no longer decodes: nothing kept
    (root / "a" / "0.jpg").write_bytes(b"no longer a JPEG")
    assert folder.keep_on_disk("train", 1, tmp_path / "cache2") is None
    assert "no longer decodes" in folder.disk_problem and _entries(tmp_path / "cache2") == []


def test_a_failed_call_removes_only_the_entries_it_wrote(root, tmp_path):
    """Another run may write an entry under the same name meanwhile: that one stays."""
    import tensorflow as tf

    from slimkit.data.image_folder import _read_resized

    files = _folder(root).train_files
    cache = DiskCache(root, 37, tmp_path / "cache")
    replaced = {}

    def read_resized(paths):
        for i, path in enumerate(paths):
            if i == 2:  # "another run" rewrites the first entry this call wrote
                (name,) = [n for n in _entries(cache.directory) if not n.startswith(".")][:1]
                entry = cache.directory / name
                data = entry.read_bytes()
                (cache.directory / "other.tmp").write_bytes(data)  # as a run writes: a
                os.replace(cache.directory / "other.tmp", entry)   # temporary, then a rename
                replaced[name] = data
            yield _read_resized(tf.constant(str(path)), 37)

    floor = len(files) * 37 * 37 * 3
    paths, why = cache.keep(files, floor * 1.01, read_resized)  # over the budget at the end
    assert paths is None and why == "they need more than the budget"
    assert _entries(cache.directory) == list(replaced)  # only the other run's entry is left


def test_a_full_disk_or_a_read_only_cache_keeps_nothing_and_loses_nothing(root, tmp_path):
    from fault_injection import PAGE, fill, read_only_bind_mount, tmpfs

    folder = _folder(root)
    expected = _all_batches(_folder(root))
    with tmpfs(tmp_path / "disk", 256 * PAGE) as disk:
        filler = fill(disk, leave=4 * PAGE)  # room for a few images, not for eight
        assert folder.keep_on_disk("train", 1, disk / "cache") is None
        assert "no space left on the device" in folder.disk_problem
        assert _entries(disk / "cache") == []  # no entry, no temporary left behind
        filler.unlink()
    _assert_same(expected, _all_batches(folder))
    cache = tmp_path / "cache"
    assert _folder(root).keep_on_disk("train", 1, cache) > 0
    entries = {n: (cache / n).read_bytes() for n in _entries(cache)}
    with read_only_bind_mount(cache):
        # a changed image cannot be written there: nothing kept, the other entries intact
        changed = next(root.rglob("*.jpg"))
        mtime = changed.stat().st_mtime_ns
        os.utime(changed, ns=(mtime + 10**9, mtime + 10**9))
        again = _folder(root)
        assert again.keep_on_disk("train", 1, cache) is None
        assert "read-only" in again.disk_problem
        assert {n: (cache / n).read_bytes() for n in _entries(cache)} == entries
