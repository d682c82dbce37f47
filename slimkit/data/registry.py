"""The datasets slimkit knows by name, where their files live, and loading them into memory.

A dataset is described by a frozen :class:`DatasetInfo`: its image shape, classes, split sizes,
the files it consists of with pinned checksums, and the mirrors it can be downloaded from. Adding
an MNIST-format dataset is adding one entry to ``_DATASETS``.

Where files are read from (:func:`resolve_data_dir`), first match wins:

1. ``data_dir=`` / ``--data-dir``: the folder that holds the files themselves, like the tutorial's
   ``MNIST_data``. When given, it is always used (missing files are downloaded into it); a file
   there is an error (:func:`check_data_dir`).
2. ``$SLIMKIT_DATA_DIR/<name>/``: a data root with one folder per dataset (``mnist/``,
   ``fashion_mnist/``), e.g. a shared read-only copy. Pointed at ``mnist/`` itself, it is passed
   over with a hint saying to point it at the folder above (:func:`data_root_mistake`).
3. The user cache ``$XDG_CACHE_HOME/slimkit/<name>/`` (default ``~/.cache/slimkit/<name>/``).
4. A system copy installed by the operating system, if any: Debian's ``dataset-fashion-mnist``
   package puts Fashion-MNIST in ``/usr/share/datasets/fashion-mnist``.

A location "holds" a dataset when all of its files are there (gzip or uncompressed). If none does,
the answer is where they would be downloaded: the ``data_dir`` given, else the user cache (never
``$SLIMKIT_DATA_DIR``, which is often a shared, read-only copy).

Files are checksum-verified every time they are loaded (an MD5 of ~12 MB takes ~20 ms), so a
corrupt cached file is reported instead of silently used: see :mod:`slimkit.data.download`.
"""

import dataclasses
import difflib
import os
import pathlib
import warnings

import numpy as np

_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
_FASHION_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)


@dataclasses.dataclass(frozen=True)
class DataFile:
    """One file of a dataset.

    Attributes:
        name: the published file name, e.g. ``"train-images-idx3-ubyte.gz"``.
        md5: MD5 of the published (gzip) file, as its authors list it.
        raw_md5: MD5 of the decompressed IDX bytes. It identifies the content whatever the
            compression, so an uncompressed copy or a re-compressed one (Debian strips the file name
            from the gzip header, which changes the gzip MD5) is recognised as genuine.
        shape: the array shape the file holds, e.g. ``(60000, 28, 28)``.
    """

    name: str
    md5: str
    raw_md5: str
    shape: tuple

    @property
    def raw_name(self):
        """The uncompressed file's name (``train-images-idx3-ubyte``)."""
        return self.name[:-3] if self.name.endswith(".gz") else self.name


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What slimkit knows about a named dataset.

    Attributes:
        name: registry name (``"mnist"``).
        description: one line for listings.
        image_shape: (H, W, C) of one image.
        num_classes: number of classes.
        class_names: readable class names, index = label.
        num_train: examples in the original training file (train + validation splits).
        num_test: examples in the test file.
        files: (train images, train labels, test images, test labels), as :class:`DataFile`.
        mirrors: base URLs the files can be downloaded from, tried in order.
        system_dirs: folders where an operating-system package may have installed the files.
        homepage: where the dataset is described.
    """

    name: str
    description: str
    image_shape: tuple
    num_classes: int
    class_names: tuple
    num_train: int
    num_test: int
    files: tuple
    mirrors: tuple
    system_dirs: tuple = ()
    homepage: str = ""


def _mnist_format_files(md5s, raw_md5s, num_train, num_test, size=28):
    names = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    shapes = ((num_train, size, size), (num_train,), (num_test, size, size), (num_test,))
    return tuple(DataFile(n, m, r, s) for n, m, r, s in zip(names, md5s, raw_md5s, shapes))


_DATASETS = {
    "mnist": DatasetInfo(
        name="mnist",
        description="handwritten digits 0-9 (LeCun, Cortes, Burges)",
        image_shape=(28, 28, 1),
        num_classes=10,
        class_names=tuple(str(i) for i in range(10)),
        num_train=60000,
        num_test=10000,
        files=_mnist_format_files(
            md5s=("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
                  "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"),
            raw_md5s=("6bbc9ace898e44ae57da46a324031adb", "a25bea736e30d166cdddb491f175f624",
                      "2646ac647ad5339dbf082846283269ea", "27ae3e4e09519cfbb04c329615203637"),
            num_train=60000, num_test=10000),
        mirrors=_MNIST_MIRRORS,
        homepage="http://yann.lecun.com/exdb/mnist/",
    ),
    "fashion_mnist": DatasetInfo(
        name="fashion_mnist",
        description="Zalando article images, a drop-in replacement for MNIST (Xiao et al. 2017)",
        image_shape=(28, 28, 1),
        num_classes=10,
        class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                     "Sneaker", "Bag", "Ankle boot"),
        num_train=60000,
        num_test=10000,
        # md5: as published in the Fashion-MNIST README. raw_md5: of the decompressed files,
        # computed from Debian's dataset-fashion-mnist package, whose gzip members hold the same
        # deflate streams as the published files (see slimkit/data/download.py's docstring).
        files=_mnist_format_files(
            md5s=("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
                  "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"),
            raw_md5s=("f4a8712d7a061bf5bd6d2ca38dc4d50a", "9018921c3c673c538a1fc5bad174d6f9",
                      "8181f5470baa50b63fa0f6fddb340f0a", "15d484375f8d13e6eb1aabb0c3f46965"),
            num_train=60000, num_test=10000),
        mirrors=_FASHION_MIRRORS,
        system_dirs=("/usr/share/datasets/fashion-mnist",),
        homepage="https://github.com/zalandoresearch/fashion-mnist",
    ),
}


@dataclasses.dataclass(frozen=True)
class ArraySplit:
    """One split in memory: ``images`` uint8 (N, H, W, C), ``labels`` int64 (N,)."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self):
        return len(self.labels)


@dataclasses.dataclass(frozen=True)
class Splits:
    """The tutorial's three splits, as :class:`ArraySplit`."""

    train: ArraySplit
    validation: ArraySplit
    test: ArraySplit


def list_datasets():
    """Names of the datasets slimkit can load, sorted.

    Example:
        >>> list_datasets()
        ['fashion_mnist', 'mnist']
    """
    return sorted(_DATASETS)


def get_dataset_info(name):
    """The :class:`DatasetInfo` of a named dataset.

    Args:
        name: a name from :func:`list_datasets`; ``-`` and ``_`` are interchangeable and case is
            ignored (``Fashion-MNIST`` works).

    Raises:
        ValueError: for an unknown name, listing the known ones and close matches.

    Example:
        >>> get_dataset_info("mnist").image_shape
        (28, 28, 1)
    """
    if not isinstance(name, str):
        raise ValueError(f"Invalid dataset name. Expected a string such as 'mnist'. "
                         f"Received name={name!r}.")
    key = name.strip().lower().replace("-", "_")
    if key in _DATASETS:
        return _DATASETS[key]
    close = difflib.get_close_matches(key, _DATASETS, n=2, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"Unknown dataset {name!r}. Expected one of: {', '.join(list_datasets())}."
                     f"{hint}")


def cache_root():
    """The user cache root: ``$XDG_CACHE_HOME/slimkit`` or ``~/.cache/slimkit``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "slimkit"


def candidate_dirs(name, data_dir=None):
    """Every folder :func:`resolve_data_dir` considers, in order, as ``(source, path)`` pairs.

    ``source`` is ``"--data-dir"``, ``"SLIMKIT_DATA_DIR"``, ``"cache"`` or ``"system"``.
    """
    info = get_dataset_info(name)
    if data_dir is not None:
        return [("--data-dir", check_data_dir(data_dir))]
    found = []
    root = os.environ.get("SLIMKIT_DATA_DIR")
    if root:
        found.append(("SLIMKIT_DATA_DIR", pathlib.Path(root).expanduser() / info.name))
    found.append(("cache", cache_root() / info.name))
    found.extend(("system", pathlib.Path(d)) for d in info.system_dirs)
    return found


def check_data_dir(data_dir):
    """``data_dir`` as a ``pathlib.Path``, checked to be a folder or a path where one can be made.

    Raises:
        NotADirectoryError: ``data_dir``, or the nearest existing path above it, is a file. The
            message names it and says what was expected.
    """
    path = pathlib.Path(data_dir).expanduser()
    # the nearest part of the path that exists must be a folder (the rest is made on download)
    existing = next((p for p in (path, *path.parents) if os.path.exists(p)), None)
    if existing is None or existing.is_dir():
        return path
    kind = "a file" if existing.is_file() else "not a folder"
    where = f"it is {kind}" if existing == path else f"{existing} is {kind}"
    raise NotADirectoryError(
        f"Invalid data folder {path}: {where}. Expected a folder that holds a dataset's files "
        f"(like the tutorial's MNIST_data), or one that can be created to download them into; "
        f"pass --data-dir / data_dir= such a folder.")


def data_root_mistake():
    """A hint when ``$SLIMKIT_DATA_DIR`` holds dataset files itself instead of one folder each.

    ``SLIMKIT_DATA_DIR`` is a data root (``<root>/mnist/``, ``<root>/fashion_mnist/``); pointing it
    at ``mnist/`` itself is a common mistake, which makes slimkit look in ``mnist/mnist/``.

    Returns:
        The hint (one sentence saying what to set instead), or None when there is no such mistake.
    """
    root = os.environ.get("SLIMKIT_DATA_DIR")
    if not root:
        return None
    root = pathlib.Path(root).expanduser()
    if not any(holds_dataset(root, n) for n in _DATASETS):
        return None
    if root.name in _DATASETS:
        return (f"SLIMKIT_DATA_DIR={root} holds the files directly; it should be the folder "
                f"above it: SLIMKIT_DATA_DIR={root.parent} (a data root with one folder per "
                f"dataset: {root.parent}/{root.name}/), or pass --data-dir {root}.")
    return (f"SLIMKIT_DATA_DIR={root} holds dataset files directly; it should be a data root "
            f"with one folder per dataset: move them into {root}/mnist/ (or fashion_mnist/), or "
            f"pass --data-dir {root}.")


def find_file(folder, data_file):
    """The path of ``data_file`` in ``folder`` (gzip or uncompressed copy), or None."""
    for file_name in (data_file.name, data_file.raw_name):
        path = pathlib.Path(folder) / file_name
        if path.is_file():
            return path
    return None


def holds_dataset(folder, name):
    """Whether ``folder`` has every file of dataset ``name`` (presence only, not checksums)."""
    return all(find_file(folder, f) is not None for f in get_dataset_info(name).files)


def resolve_data_dir(name, data_dir=None):
    """The folder that holds (or will hold, once downloaded) the files of dataset ``name``.

    Args:
        name: dataset name, e.g. ``"mnist"``.
        data_dir: the folder holding the files themselves (like the tutorial's ``MNIST_data``). When
            given it is returned as is; otherwise the module docstring's order applies.

    Returns:
        A ``pathlib.Path`` (which may not exist yet when the files are still to be downloaded).

    Example:
        >>> resolve_data_dir("mnist", "/tmp/MNIST_data")
        PosixPath('/tmp/MNIST_data')
    """
    return locate(name, data_dir)[0]


def locate(name, data_dir=None):
    """``(folder, source)``: :func:`resolve_data_dir`'s answer and the rule that chose it.

    ``source`` is one of :func:`candidate_dirs`' labels; for a dataset found nowhere it is the
    download target's (``"--data-dir"`` or ``"cache"``).
    """
    candidates = candidate_dirs(name, data_dir)
    for source, path in candidates:
        if holds_dataset(path, name):
            return path, source
    return next((path, source) for source, path in candidates
                if source in ("--data-dir", "cache"))


def load_arrays(name, data_dir=None, validation_size=5000, download=True):
    """Loads an MNIST-format dataset into memory as uint8 images and int64 labels.

    The split is the tutorial's: train = the first ``num_train - validation_size`` examples of the
    original training file, validation = the last ``validation_size``, test = the test file.

    Args:
        name: dataset name (see :func:`list_datasets`).
        data_dir: folder holding the files, or None to use :func:`resolve_data_dir`'s order.
        validation_size: examples held out from the end of the training file, 0 to num_train.
        download: fetch missing files from the dataset's mirrors. With False, a missing file is a
            ``FileNotFoundError`` that says which files to put where.

    Returns:
        :class:`Splits` whose images are uint8 (N, H, W, C) and labels int64 (N,).

    Raises:
        ValueError: unknown name, bad ``validation_size``, or a corrupt/wrong file.
        NotADirectoryError: ``data_dir`` is a file.
        FileNotFoundError: files missing and ``download=False`` (or every mirror failed).

    Example:
        >>> splits = load_arrays("mnist")
        >>> splits.train.images.shape, splits.validation.labels.shape
        ((55000, 28, 28, 1), (5000,))
    """
    from slimkit.data import download as _download
    from slimkit.data.idx import read_idx

    info = get_dataset_info(name)
    check_validation_size(validation_size, info)
    folder, source = locate(info.name, data_dir)
    hint = data_root_mistake() if data_dir is None and source != "SLIMKIT_DATA_DIR" else None
    if hint:  # else the files the user pointed at are silently ignored (and downloaded again)
        warnings.warn(f"{hint} Reading {info.name} from {folder} ({source}) instead.",
                      stacklevel=2)
    if download:
        _download.ensure_files(info.name, folder)
    else:
        _download.verify_files(info.name, folder)

    h, w, c = info.image_shape
    arrays = []
    for data_file in info.files:
        array = read_idx(find_file(folder, data_file), shape=data_file.shape)
        if array.ndim == 3:
            array = array.reshape(-1, h, w, c)  # (N, 28, 28, 1)
        else:
            array = array.astype(np.int64)
        arrays.append(array)
    train_images, train_labels, test_images, test_labels = arrays
    cut = info.num_train - validation_size
    return Splits(train=ArraySplit(train_images[:cut], train_labels[:cut]),
                  validation=ArraySplit(train_images[cut:], train_labels[cut:]),
                  test=ArraySplit(test_images, test_labels))


def check_validation_size(validation_size, info, min_train=0):
    """Raises the ValueError for a validation size outside [0, num_train - min_train].

    Args:
        validation_size: examples to hold out from the end of the training file.
        info: the dataset's :class:`DatasetInfo` (its name and training-file size are in the
            message).
        min_train: examples that must be left to train on (``read_data_sets`` allows 0, a
            training run needs 1).
    """
    top = info.num_train - min_train
    if (isinstance(validation_size, bool) or not isinstance(validation_size, (int, np.integer))
            or not 0 <= validation_size <= top):
        left = {0: "", 1: ", and at least one must be left to train on"}.get(
            min_train, f", and at least {min_train} must be left to train on")
        raise ValueError(f"Invalid value for `validation_size`. Expected an integer from 0 to "
                         f"{top}: {info.name} has {info.num_train} training examples, "
                         f"validation_size of them are held out{left}. "
                         f"Received validation_size={validation_size!r}.")
