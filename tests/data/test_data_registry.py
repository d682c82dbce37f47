"""Dataset registry: names, where files are looked for (in order), load_arrays' split and errors."""

import os
import pathlib
import re

import numpy as np
import pytest

from slimkit.data import registry
from slimkit.data.download import DownloadError
from slimkit.data.registry import get_dataset_info, list_datasets, load_arrays, resolve_data_dir

FASHION_SYSTEM_DIR = pathlib.Path("/usr/share/datasets/fashion-mnist")


def _link_dataset(source, folder):
    """A folder that holds the dataset as symlinks to the shared files (never copies)."""
    folder.mkdir(parents=True)
    for f in get_dataset_info("mnist").files:
        (folder / f.name).symlink_to(source / f.name)
    return folder


@pytest.fixture()
def isolated(monkeypatch, tmp_path):
    """Empty SLIMKIT_DATA_DIR root and cache."""
    monkeypatch.setenv("SLIMKIT_DATA_DIR", str(tmp_path / "root"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


def test_names_and_info():
    assert {"mnist", "fashion_mnist"} <= set(list_datasets())
    info = get_dataset_info("Fashion-MNIST")
    assert info.name == "fashion_mnist" and info.image_shape == (28, 28, 1)
    assert info.num_classes == len(info.class_names) == 10
    assert (info.num_train, info.num_test) == (60000, 10000)
    assert [f.name for f in info.files] == ["train-images-idx3-ubyte.gz",
                                            "train-labels-idx1-ubyte.gz",
                                            "t10k-images-idx3-ubyte.gz",
                                            "t10k-labels-idx1-ubyte.gz"]


def test_unknown_name_lists_known_and_close_matches():
    with pytest.raises(ValueError, match=re.escape(
            "Unknown dataset 'minst'. Expected one of: fashion_mnist, mnist. Did you mean "
            "'mnist'?")):
        get_dataset_info("minst")


def test_resolution_order(isolated, mnist_dir, monkeypatch):
    root, cache = isolated / "root", isolated / "cache" / "slimkit"
    # nothing anywhere: the download target is the cache (the data root may be read-only)
    assert resolve_data_dir("mnist") == cache / "mnist"
    _link_dataset(mnist_dir, cache / "mnist")
    assert resolve_data_dir("mnist") == cache / "mnist"
    _link_dataset(mnist_dir, root / "mnist")
    assert resolve_data_dir("mnist") == root / "mnist"
    # an explicit folder always wins, even an empty one (files get downloaded into it)
    assert resolve_data_dir("mnist", isolated / "mine") == isolated / "mine"
    monkeypatch.delenv("SLIMKIT_DATA_DIR")
    assert resolve_data_dir("mnist") == cache / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(isolated / "home"))
    assert resolve_data_dir("mnist") == isolated / "home" / ".cache" / "slimkit" / "mnist"


def test_load_arrays_split_and_dtypes(mnist_dir):
    splits = load_arrays("mnist", mnist_dir, validation_size=5000, download=False)
    assert splits.train.images.shape == (55000, 28, 28, 1)
    assert splits.validation.images.shape == (5000, 28, 28, 1)
    assert splits.test.images.shape == (10000, 28, 28, 1)
    for split in (splits.train, splits.validation, splits.test):
        assert split.images.dtype == np.uint8 and split.labels.dtype == np.int64
    counts = np.bincount(np.concatenate([splits.train.labels, splits.validation.labels]))
    assert tuple(counts) == (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)
    assert tuple(np.bincount(splits.test.labels)) == (980, 1135, 1032, 1010, 982, 892, 958, 1028,
                                                      974, 1009)


def test_load_arrays_uses_environment_root(mnist_dir, monkeypatch):
    monkeypatch.setenv("SLIMKIT_DATA_DIR", str(mnist_dir.parent))
    assert len(load_arrays("mnist", validation_size=100, download=False).validation) == 100


def test_missing_files_without_download_say_where_to_put_them(isolated):
    folder = isolated / "cache" / "slimkit" / "mnist"
    with pytest.raises(DownloadError, match=re.escape(
            f"Dataset mnist is incomplete in {folder}: they are missing and downloading is off. "
            f"Put these files in {folder}: train-images-idx3-ubyte.gz (MD5 "
            f"f68b3c2dcbeaaa9fbdd348bbdeb94873), train-labels-idx1-ubyte.gz")):
        load_arrays("mnist", download=False)
    assert not folder.exists()


@pytest.mark.skipif(not registry.holds_dataset(FASHION_SYSTEM_DIR, "fashion_mnist"),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_from_debian_system_copy(isolated):
    """Debian re-compressed the files (gzip MD5s differ): accepted by their content MD5s."""
    assert resolve_data_dir("fashion_mnist") == FASHION_SYSTEM_DIR
    splits = load_arrays("fashion_mnist", validation_size=0, download=False)
    assert tuple(np.bincount(splits.train.labels)) == (6000,) * 10
    assert tuple(np.bincount(splits.test.labels)) == (1000,) * 10
    assert splits.train.images.shape == (60000, 28, 28, 1)


def test_uncompressed_copies_are_found_and_verified(tmp_path, mnist_dir):
    import gzip

    folder = tmp_path / "raw"
    folder.mkdir()
    for f in get_dataset_info("mnist").files:
        if "labels" in f.name:  # small ones: decompress (the images stay symlinked .gz)
            (folder / f.raw_name).write_bytes(gzip.decompress((mnist_dir / f.name).read_bytes()))
        else:
            os.symlink(mnist_dir / f.name, folder / f.name)
    assert resolve_data_dir("mnist", folder) == folder
    splits = load_arrays("mnist", folder, download=False)
    assert splits.test.labels[:5].tolist() == [7, 2, 1, 0, 4]


def test_data_root_pointing_at_the_dataset_folder_warns_when_loading(isolated, mnist_dir,
                                                                      monkeypatch):
    folder = _link_dataset(mnist_dir, isolated / "data" / "mnist")
    monkeypatch.setenv("SLIMKIT_DATA_DIR", str(folder))
    cache = isolated / "cache" / "slimkit" / "mnist"
    with pytest.warns(UserWarning, match="^" + re.escape(
            f"SLIMKIT_DATA_DIR={folder} holds the files directly; it should be the folder above "
            f"it: SLIMKIT_DATA_DIR={folder.parent} (a data root with one folder per dataset: "
            f"{folder.parent}/mnist/), or pass --data-dir {folder}. Reading mnist from {cache} "
            f"(cache) instead.") + "$"):
        with pytest.raises(DownloadError):
            load_arrays("mnist", download=False)


def test_data_dir_that_is_a_file(tmp_path):
    blocker = tmp_path / "train-images-idx3-ubyte.gz"
    blocker.write_bytes(b"")
    with pytest.raises(NotADirectoryError, match="^" + re.escape(
            f"Invalid data folder {blocker}: it is a file. Expected a folder that holds a "
            f"dataset's files")):
        load_arrays("mnist", blocker, download=False)


@pytest.mark.parametrize("min_train, size, top, left", [
    (0, 60001, 60000, ""),  # read_data_sets: the whole training file may be held out
    (1, 60000, 59999, ", and at least one must be left to train on"),  # a training run
])
def test_validation_size_check_is_one_message_with_the_allowed_range(min_train, size, top, left):
    info = get_dataset_info("mnist")
    registry.check_validation_size(top, info, min_train=min_train)  # the largest allowed
    with pytest.raises(ValueError, match="^" + re.escape(
            f"Invalid value for `validation_size`. Expected an integer from 0 to {top}: mnist has "
            f"60000 training examples, validation_size of them are held out{left}. Received "
            f"validation_size={size}.") + "$"):
        registry.check_validation_size(size, info, min_train=min_train)
