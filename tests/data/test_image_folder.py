"""ImageFolder on generated files: colour modes, bad files, splits, deterministic pipeline."""

import json
import os
import pathlib
import re
import warnings

import numpy as np
import pytest
from PIL import Image

from slimkit.data.image_folder import IMAGENET_MEAN, IMAGENET_STD, ImageFolder

SIZE = 32  # pipeline output; images are made 37 px (= 32 / 0.875) so resizing is a no-op


def _save(path, array, mode="RGB", **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).convert(mode).save(path, **kwargs)
    return path


def _noise(seed, shape=(40, 48, 3)):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """cat: RGB JPEG, CMYK JPEG, GIF; dog: grayscale PNG/JPG, BMP; emu: RGBA PNG; two bad files."""
    root = tmp_path_factory.mktemp("images")
    for i in range(4):
        _save(root / "cat" / f"rgb{i}.jpg", _noise(i))
        _save(root / "dog" / f"gray{i}.png", _noise(10 + i), "L")
        _save(root / "emu" / f"rgba{i}.PNG", _noise(20 + i), "RGBA")
    _save(root / "cat" / "cmyk.jpeg", _noise(4), "CMYK")
    _save(root / "cat" / "anim.gif", _noise(5))
    _save(root / "dog" / "gray4.JPG", _noise(14), "L")
    _save(root / "dog" / "win.bmp", _noise(15))
    (root / "dog" / "notes.txt").write_text("not an image: ignored by extension")
    (root / "dog" / "corrupt.jpg").write_bytes(b"this is not a JPEG")
    png = (root / "emu" / "rgba0.PNG").read_bytes()
    (root / "emu" / "cut.png").write_bytes(png[: len(png) // 2])
    return root


@pytest.fixture(scope="module")
def folder(root):
    with pytest.warns(UserWarning) as record:
        folder = ImageFolder(root, image_size=SIZE, validation_fraction=0.25, seed=0)
    assert len(record) == 1
    return folder, str(record[0].message)


def test_one_warning_lists_the_unreadable_files(folder, root):
    folder, message = folder
    assert message == (f"Skipping 2 unreadable image file(s) in {root}: dog/corrupt.jpg (not a "
                       f"JPEG, PNG, GIF or BMP image), emu/cut.png (truncated or corrupt image "
                       f"data).")
    assert sorted(p.name for p in folder.skipped_files) == ["corrupt.jpg", "cut.png"]


def test_classes_labels_and_stratified_split(folder):
    folder, _ = folder
    assert folder.class_names == ["cat", "dog", "emu"] and folder.num_classes == 3
    assert folder.image_shape == (SIZE, SIZE, 3)
    files = folder.train_files + folder.val_files
    labels = np.concatenate([folder.train_labels, folder.val_labels])
    assert len(files) == len(set(files)) == 16  # 18 images - 2 unreadable; the .txt is ignored
    for path, label in zip(files, labels):
        assert path.parent.name == folder.class_names[label]
    assert folder.train_labels.dtype == np.int32
    # 25% of each class (6, 6 and 5 files before the bad ones were dropped), at least one kept
    assert np.bincount(folder.val_labels).tolist() == [2, 2, 1]


def test_split_is_seeded(root):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = ImageFolder(root, SIZE, 0.5, seed=1)
        b = ImageFolder(root, SIZE, 0.5, seed=1)
        c = ImageFolder(root, SIZE, 0.5, seed=2)
    assert a.val_files == b.val_files and a.val_files != c.val_files


def _batches(ds):
    return [(x.numpy(), y.numpy()) for x, y in ds]


def test_eval_pipeline_keeps_file_order_and_every_image(folder):
    folder, _ = folder
    batches = _batches(folder.dataset("val", batch_size=2, training=False))
    assert [x.shape for x, _ in batches] == [(2, SIZE, SIZE, 3)] * 2 + [(1, SIZE, SIZE, 3)]
    assert batches[0][0].dtype == np.float32 and batches[0][1].dtype == np.int32
    np.testing.assert_array_equal(np.concatenate([y for _, y in batches]), folder.val_labels)


def test_training_order_and_augmentation_are_deterministic_and_resumable(folder):
    folder, _ = folder
    run = _batches(folder.dataset("train", 3, training=True, seed=7, epoch=2))
    again = _batches(folder.dataset("train", 3, training=True, seed=7, epoch=2))
    resumed = _batches(folder.dataset("train", 3, training=True, seed=7, epoch=2,
                                      skip_batches=2))
    other_epoch = _batches(folder.dataset("train", 3, training=True, seed=7, epoch=3))
    assert len(run) == 3  # 11 training images, batch 3: the last partial batch is dropped
    for (x1, y1), (x2, y2) in zip(run, again):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(run[2][0], resumed[0][0])
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(run, other_epoch))


def test_repeat_runs_across_epochs_with_every_image_once_per_epoch(root):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        folder = ImageFolder(root, SIZE, validation_fraction=0.0)
    n = len(folder.train_files)  # 16
    ds = folder.dataset("train", 8, training=True, seed=0, repeat=True).take(4)
    labels = np.concatenate([y for _, y in _batches(ds)])
    for epoch in range(2):
        counts = np.bincount(labels[epoch * n:(epoch + 1) * n], minlength=3)
        np.testing.assert_array_equal(counts, np.bincount(folder.train_labels))
    assert not np.array_equal(labels[:n], labels[n:])


def test_colour_modes_become_rgb_and_are_normalized(tmp_path):
    colour = np.zeros((37, 37, 3), np.uint8)
    colour[:, :18] = (200, 30, 40)
    colour[:, 18:] = (20, 180, 90)
    _save(tmp_path / "a" / "1_rgb.png", colour)
    _save(tmp_path / "a" / "2_cmyk.jpg", colour, "CMYK", quality=95)
    _save(tmp_path / "a" / "3_rgba.png", colour, "RGBA")
    _save(tmp_path / "b" / "4_gray.png", np.full((37, 37, 3), 128, np.uint8), "L")
    folder = ImageFolder(tmp_path, SIZE, validation_fraction=0.0)
    (images, labels), = _batches(folder.dataset("train", 4, training=False))
    pixels = images * (np.array(IMAGENET_STD) * 255) + np.array(IMAGENET_MEAN) * 255
    np.testing.assert_allclose(pixels[0], colour[2:34, 2:34], atol=1e-3)  # central crop of 37
    np.testing.assert_allclose(pixels[2], colour[2:34, 2:34], atol=1e-3)  # alpha dropped
    assert np.abs(pixels[1] - colour[2:34, 2:34]).mean() < 4  # CMYK JPEG, lossy
    np.testing.assert_allclose(images[3, 0, 0], (128 - np.array(IMAGENET_MEAN) * 255) /
                               (np.array(IMAGENET_STD) * 255), rtol=1e-5)
    assert labels.tolist() == [0, 0, 0, 1]


def test_train_and_validation_subfolders(tmp_path):
    for split in ("train", "validation"):
        for name in ("b_class", "a_class"):
            _save(tmp_path / split / name / "x.png", _noise(0))
    folder = ImageFolder(tmp_path, SIZE, validation_fraction=0.5)
    assert folder.class_names == ["a_class", "b_class"]
    assert [p.parts[-3] for p in folder.val_files] == ["validation"] * 2
    assert len(folder.train_files) == 2 and folder.val_labels.tolist() == [0, 1]
    _save(tmp_path / "validation" / "c_class" / "x.png", _noise(0))
    with pytest.raises(ValueError, match=re.escape(
            f"Validation folder {tmp_path / 'validation'} has classes ['c_class'] that "
            f"{tmp_path / 'train'} does not.")):
        ImageFolder(tmp_path, SIZE)


def test_fewer_than_two_classes(tmp_path):
    _save(tmp_path / "only" / "x.png", _noise(0))
    with pytest.raises(ValueError, match=re.escape(
            f"Image folder {tmp_path} has 1 class folder(s) ['only']. Expected at least two")):
        ImageFolder(tmp_path)


def test_empty_class_folder(tmp_path):
    _save(tmp_path / "full" / "x.png", _noise(0))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    with pytest.raises(ValueError, match=re.escape(
            f"Class folder {tmp_path / 'empty'} has no images. Expected files ending in .jpg, "
            f".jpeg, .png, .bmp, .gif (any case)")):
        ImageFolder(tmp_path)


def test_missing_root_and_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageFolder(tmp_path / "nope")
    with pytest.raises(ValueError, match=re.escape("Received validation_fraction=1.")):
        ImageFolder(tmp_path, validation_fraction=1)
    with pytest.raises(ValueError, match=re.escape("Received image_size=0.")):
        ImageFolder(tmp_path, image_size=0)


def test_bad_split_name(folder):
    folder, _ = folder
    with pytest.raises(ValueError, match=re.escape(
            "Invalid value for argument `split`. Expected 'train' or 'val'. Received "
            "split='test'.")):
        folder.dataset("test", 2, training=False)


def test_paths_are_pathlib(folder):
    folder, _ = folder
    assert all(isinstance(p, pathlib.Path) for p in folder.train_files)


def _mid_corrupt_jpeg(path, seed):
    """A JPEG with intact SOI, tables and EOI, and a bogus marker in the middle of its scan."""
    data = _save(path, _noise(seed)).read_bytes()
    middle = (data.index(b"\xff\xda") + len(data)) // 2  # between start of scan and EOI
    path.write_bytes(data[:middle] + b"\xff\xc4\x00\x03\x00" + data[middle + 5:])
    return path


def _mid_corrupt_png(path, seed):
    """A PNG with intact signature, IHDR and IEND, and 50 garbled bytes inside its IDAT chunk."""
    data = _save(path, _noise(seed)).read_bytes()
    middle = (data.index(b"IDAT") + data.index(b"IEND")) // 2
    path.write_bytes(data[:middle] + bytes(b ^ 0x55 for b in data[middle:middle + 50]) +
                     data[middle + 50:])
    return path


@pytest.fixture()
def mid_corrupt_root(tmp_path):
    """a: 7 good JPEGs + 1 mid-corrupt; b: 7 good PNGs + 1 mid-corrupt."""
    root = tmp_path / "photos"
    for i in range(7):
        _save(root / "a" / f"{i}.jpg", _noise(i))
        _save(root / "b" / f"{i}.png", _noise(10 + i))
    bad = [_mid_corrupt_jpeg(root / "a" / "mid.jpg", 20),
           _mid_corrupt_png(root / "b" / "mid.png", 21)]
    for path in bad:  # the cheap checks of header and trailer cannot see the damage
        data = path.read_bytes()
        assert data.endswith(b"\xff\xd9") or data[-8:-4] == b"IEND"
    return root


def test_mid_corrupt_files_are_in_the_one_warning_and_never_served(mid_corrupt_root, capfd):
    root = mid_corrupt_root
    with pytest.warns(UserWarning) as record:
        folder = ImageFolder(root, SIZE, validation_fraction=0.0)
    assert [str(w.message) for w in record] == [
        f"Skipping 2 unreadable image file(s) in {root}: a/mid.jpg (truncated or corrupt image "
        f"data), b/mid.png (truncated or corrupt image data)."]
    assert sorted(p.name for p in folder.skipped_files) == ["mid.jpg", "mid.png"]
    assert len(folder.train_files) == 14 and "mid" not in {p.stem for p in folder.train_files}
    capfd.readouterr()
    # every indexed file is served: evaluation order is file order, nothing dropped
    served = np.concatenate([y for _, y in _batches(folder.dataset("train", 4, training=False))])
    np.testing.assert_array_equal(served, folder.train_labels)
    # two training epochs of 14 with batch 7: 4 full batches, each epoch every image once
    ds = folder.dataset("train", 7, training=True, seed=0, repeat=True).take(4)
    labels = np.concatenate([y for _, y in _batches(ds)])
    assert len(labels) == 28
    for epoch in range(2):
        assert np.bincount(labels[epoch * 14:(epoch + 1) * 14]).tolist() == [7, 7]
    assert "Ignoring" not in capfd.readouterr().err  # no element was dropped by ignore_errors


def test_verdicts_are_cached_by_path_size_and_mtime(mid_corrupt_root, tmp_path, monkeypatch):
    from slimkit.data import image_folder

    monkeypatch.setattr(image_folder, "_CACHE_MIN_FILES", 0)  # cache even a small folder
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = mid_corrupt_root

    def skipped():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return sorted(p.name for p in ImageFolder(root, SIZE, 0.0).skipped_files)

    assert skipped() == ["mid.jpg", "mid.png"]
    cache_files = list((tmp_path / "cache" / "slimkit" / "image_folders").iterdir())
    assert len(cache_files) == 1
    assert skipped() == ["mid.jpg", "mid.png"]  # the failed verdicts come from the cache
    # same size and mtime: the cached verdict stands (the file is not decoded again) ...
    good = root / "a" / "0.jpg"
    stat = good.stat()
    _mid_corrupt_jpeg(good, 0)
    assert good.stat().st_size == stat.st_size
    os.utime(good, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert skipped() == ["mid.jpg", "mid.png"]
    # ... a new mtime is a new key: decoded again, and now found corrupt
    os.utime(good, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert skipped() == ["0.jpg", "mid.jpg", "mid.png"]


@pytest.fixture()
def cached(monkeypatch, tmp_path):
    """Verdicts cached even for a small folder, in a fresh user cache."""
    from slimkit.data import image_folder

    monkeypatch.setattr(image_folder, "_CACHE_MIN_FILES", 0)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return image_folder


@pytest.mark.parametrize("content", [
    '{"files": []}', '{"files": {"x": "y"}}', '{"files": null}', '[1, 2]', '"files"', '{}',
    '{"files": {"x": [1, 2]}}', "not json", b"\xff\xfe not UTF-8",
    # a verdict that is not a bool, for a good file with its true size and mtime
    '{"files": {"GOOD": [SIZE, MTIME, "no"]}}'])
def test_a_malformed_verdict_cache_counts_as_empty(mid_corrupt_root, cached, content):
    root = mid_corrupt_root
    good = root / "a" / "0.jpg"
    stat = good.stat()
    cache_file = cached._VerdictCache(root, []).file
    cache_file.parent.mkdir(parents=True)
    if isinstance(content, str):
        content = (content.replace("GOOD", str(good)).replace("SIZE", str(stat.st_size))
                   .replace("MTIME", str(stat.st_mtime_ns))).encode()
    cache_file.write_bytes(content)
    with pytest.warns(UserWarning, match="a/mid.jpg") as record:
        folder = ImageFolder(root, SIZE, 0.0)
    assert len(record) == 1
    assert sorted(p.name for p in folder.skipped_files) == ["mid.jpg", "mid.png"]
    files = json.loads(cache_file.read_text())["files"]  # rewritten with every file's verdict
    assert len(files) == 16 and files[str(good)] == [stat.st_size, stat.st_mtime_ns, False]


def test_a_file_that_cannot_be_read_is_reported_with_its_reason_and_never_cached(tmp_path, cached):
    """Only a decoding verdict is cached: a read error (permission, NFS) may be transient."""
    root = tmp_path / "photos"
    good = _save(root / "a" / "good.png", _noise(0))
    corrupt = _mid_corrupt_png(root / "a" / "corrupt.png", 1)
    unreadable = root / "a" / "unreadable.jpg"
    unreadable.mkdir()  # stat works, reading fails, even as root (a chmod 000 file would not)
    paths = [good, corrupt, unreadable]
    problems = cached._decode_problems(paths)
    assert problems == {corrupt: "truncated or corrupt image data",
                        unreadable: "cannot be read: Is a directory"}
    cached._VerdictCache(root, paths).save(paths, problems)
    again = cached._VerdictCache(root, paths)
    assert again.unknown() == [unreadable]  # decoded (and read) again next time
    assert again.failed() == {corrupt}


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory):
    """Images of different sizes and aspect ratios (portrait, landscape, square, larger)."""
    root = tmp_path_factory.mktemp("shapes")
    shapes = [(40, 48), (60, 37), (37, 37), (90, 50), (45, 80), (38, 41)]
    for i, shape in enumerate(shapes * 2):
        _save(root / ("ab"[i % 2]) / f"{i}.jpg", _noise(30 + i, shape + (3,)))
    return root


def _all_batches(folder):
    train = folder.dataset("train", 3, training=True, seed=5, epoch=1, skip_batches=1,
                           repeat=True).take(6)
    return _batches(train) + _batches(folder.dataset("val", 2, training=False))


@pytest.mark.parametrize("chunk_bytes", [64 * 2**20, 10_000])  # one buffer; ~2 images each
def test_images_kept_in_memory_give_the_same_batches_bit_for_bit(shapes_root, chunk_bytes,
                                                                  monkeypatch):
    from slimkit.data import image_folder

    monkeypatch.setattr(image_folder, "_CHUNK_BYTES", chunk_bytes)
    read = ImageFolder(shapes_root, SIZE, validation_fraction=0.34)
    kept = ImageFolder(shapes_root, SIZE, validation_fraction=0.34)
    train_mb = kept.keep_decoded("train", 1)
    val_mb = kept.keep_decoded("validation", 1)
    # each image resized to shorter side 37 (uint8 RGB): e.g. 60x37 -> 60x37, 90x50 -> 67x37
    assert 0 < train_mb < 0.1 and 0 < val_mb < train_mb
    expected, actual = _all_batches(read), _all_batches(kept)
    assert len(actual) == len(expected) == 8  # 6 training batches across epochs, 2 validation
    for (x1, y1), (x2, y2) in zip(expected, actual):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    # the files are not read again: the kept images are served even once the files are gone
    moved = shapes_root.parent / (shapes_root.name + "_moved")
    shapes_root.rename(moved)
    try:
        again = _all_batches(kept)
    finally:
        moved.rename(shapes_root)
    for (x1, _), (x2, _) in zip(expected, again):
        np.testing.assert_array_equal(x1, x2)


def test_images_that_need_more_than_the_budget_are_not_kept(shapes_root):
    folder = ImageFolder(shapes_root, SIZE, validation_fraction=0.34)
    floor_mb = len(folder.train_files) * 37 * 37 * 3 / 2**20  # every image at least 37x37
    assert folder.keep_decoded("train", floor_mb * 0.99) is None  # refused before decoding
    assert folder.keep_decoded("train", floor_mb * 1.01) is None  # stopped while decoding
    assert folder.keep_decoded("train", 0) is None
    expected = _all_batches(ImageFolder(shapes_root, SIZE, validation_fraction=0.34))
    for (x1, _), (x2, _) in zip(expected, _all_batches(folder)):  # still read from the files
        np.testing.assert_array_equal(x1, x2)
    with pytest.raises(ValueError, match="Expected 'train' or 'val'"):
        folder.keep_decoded("test", 1)
    for bad in (-1, float("nan"), "1", None, True):
        with pytest.raises(ValueError, match=r"Expected a number of MiB >= 0 \(inf: no limit\)"):
            folder.keep_decoded("train", bad)
    assert folder.keep_decoded("train", float("inf")) == folder.keep_decoded("train", 1) > 0


def test_a_file_that_no_longer_decodes_leaves_the_images_unkept(tmp_path):
    for i in range(3):
        for name in "ab":
            _save(tmp_path / name / f"{i}.png", _noise(40 + i))
    folder = ImageFolder(tmp_path, SIZE, validation_fraction=0.0)
    (tmp_path / "a" / "1.png").write_bytes(b"changed after indexing: no longer a PNG")
    assert folder.keep_decoded("train", 1) is None
    labels = np.concatenate([y for _, y in _batches(folder.dataset("train", 1, training=False))])
    assert labels.tolist() == [0, 0, 1, 1, 1]  # the pipeline leaves the broken file out
