"""The MNIST tutorials' data API, ``read_data_sets``, revived without TensorFlow 1.

The classic "MNIST for ML beginners" and "Deep MNIST for experts" tutorials start with::

    mnist = input_data.read_data_sets("MNIST_data", one_hot=True)
    batch_xs, batch_ys = mnist.train.next_batch(100)

This module keeps that API and its semantics: ``train`` / ``validation`` / ``test`` of 55,000 /
5,000 / 10,000 examples, images flattened to (N, 784) float32 in [0, 1], labels one-hot or integer,
and ``next_batch`` that reshuffles every epoch and never drops or repeats an example within one: a
batch that runs past the end of an epoch takes the rest of the old epoch followed by the start of
the newly shuffled one, and ``epochs_completed`` counts up at that moment, as in the original.

What changed, and why:

- Files come from :mod:`slimkit.data.registry` (checked IDX parser, pinned checksums, mirrors), so a
  corrupt download is an error instead of garbage digits.
- Each :class:`DataSet` owns a ``numpy.random.Generator`` (``seed=``) instead of reseeding NumPy's
  global state, and ``images`` / ``labels`` stay in file order; the shuffle lives in a permutation.
- ``fake_data`` is gone; ``dataset="fashion_mnist"`` reads Fashion-MNIST through the same API.

For training at speed use :class:`slimkit.data.feed.ArrayFeed`; this API is for the tutorials.
"""

import collections

import numpy as np

from slimkit.data.registry import check_validation_size, get_dataset_info, load_arrays

Datasets = collections.namedtuple("Datasets", ["train", "validation", "test"])


class DataSet:
    """One split with the tutorial's ``next_batch``.

    Args:
        images: uint8 (N, H, W, C) or (N, H, W) images.
        labels: (N,) integer labels, or (N, num_classes) one-hot labels.
        dtype: ``"float32"`` (scaled to [0, 1], the default) or ``"uint8"`` (raw pixel values).
        reshape: flatten each image to a vector: (N, H * W * C), as the tutorials expect.
        seed: seed of this split's shuffles; None draws fresh entropy (the tutorial's default).

    Example:
        >>> ds = DataSet(images, labels, seed=0)
        >>> batch_xs, batch_ys = ds.next_batch(100)
        >>> batch_xs.shape
        (100, 784)
    """

    def __init__(self, images, labels, dtype="float32", reshape=True, seed=None):
        images, labels = np.asarray(images), np.asarray(labels)
        if len(images) != len(labels):
            raise ValueError(f"Invalid value for argument `labels`. Expected {len(images)} labels, "
                             f"one per image. Received {len(labels)}.")
        if dtype not in ("float32", "uint8", np.float32, np.uint8):
            raise ValueError(f"Invalid value for argument `dtype`. Expected 'float32' or 'uint8'. "
                             f"Received dtype={dtype!r}.")
        if reshape:
            images = images.reshape(len(images), -1)  # (N, 784)
        if np.dtype(dtype) == np.float32:
            images = images.astype(np.float32) * np.float32(1 / 255)
        self._images = images
        self._labels = labels
        self._rng = np.random.default_rng(seed)
        self._order = np.arange(len(images))
        self._epochs_completed = 0
        self._index_in_epoch = 0

    @property
    def images(self):
        """All images, in file order."""
        return self._images

    @property
    def labels(self):
        """All labels, in file order."""
        return self._labels

    @property
    def num_examples(self):
        return len(self._images)

    @property
    def epochs_completed(self):
        """How many epochs ``next_batch`` has started past (counts up when a batch crosses one)."""
        return self._epochs_completed

    def next_batch(self, batch_size, shuffle=True):
        """The next ``batch_size`` examples of this epoch, as ``(images, labels)``.

        With ``shuffle=True`` each epoch visits the examples in a fresh random order. A batch that
        runs past the end of an epoch is the rest of that epoch followed by the first examples of
        the next, so within an epoch every example is served exactly once.

        Raises:
            ValueError: if ``batch_size`` is not in ``[1, num_examples]``.
        """
        n = self.num_examples
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or not 1 <= batch_size <= n:
            raise ValueError(f"Invalid value for argument `batch_size`. Expected an integer "
                             f"between 1 and {n} (the number of examples). Received "
                             f"batch_size={batch_size!r}.")
        start = self._index_in_epoch
        if self._epochs_completed == 0 and start == 0 and shuffle:
            self._order = self._rng.permutation(n)  # shuffle for the first epoch
        if start + batch_size <= n:
            self._index_in_epoch = start + batch_size
            return self._take(self._order[start:start + batch_size])
        # the batch crosses into the next epoch: rest of this one + start of a reshuffled one
        self._epochs_completed += 1
        rest = self._order[start:]
        self._order = self._rng.permutation(n) if shuffle else np.arange(n)
        self._index_in_epoch = batch_size - len(rest)
        return self._take(np.concatenate([rest, self._order[:self._index_in_epoch]]))

    def _take(self, index):
        return self._images[index], self._labels[index]


def dense_to_one_hot(labels, num_classes):
    """Integer labels (N,) to float32 one-hot rows (N, num_classes)."""
    one_hot = np.zeros((len(labels), num_classes), np.float32)
    one_hot[np.arange(len(labels)), labels] = 1.0
    return one_hot


def read_data_sets(train_dir=None, one_hot=False, dtype="float32", reshape=True,
                   validation_size=5000, seed=None, dataset="mnist", download=True, *,
                   data_dir=None):
    """The tutorials' ``input_data.read_data_sets``: MNIST as ``Datasets(train, validation, test)``.

    Args:
        train_dir: the folder holding (or to receive) the four IDX files, like the tutorial's
            ``"MNIST_data"``; None uses ``$SLIMKIT_DATA_DIR/mnist`` or the user cache.
        one_hot: labels as float32 one-hot rows (N, 10) instead of int64 class ids (N,).
        dtype: ``"float32"`` (pixels scaled to [0, 1]) or ``"uint8"``.
        reshape: images as (N, 784) vectors (True) or (N, 28, 28, 1).
        validation_size: examples held out from the end of the training file, 0 to 60,000.
        seed: seed of the shuffles (each split gets its own stream); None = fresh entropy.
        dataset: ``"mnist"`` or ``"fashion_mnist"``.
        download: fetch missing files from the mirrors (checksummed).
        data_dir: keyword-only alias of ``train_dir`` (the name the rest of slimkit uses); give
            one of the two.

    Returns:
        ``Datasets(train, validation, test)`` of :class:`DataSet`.

    Raises:
        ValueError: ``validation_size`` out of range, a corrupt file, an unknown dataset, or both
            ``train_dir`` and ``data_dir`` given.
        FileNotFoundError: the files are missing and cannot be downloaded; says where to put them.

    Example:
        >>> mnist = read_data_sets("MNIST_data", one_hot=True)
        >>> mnist.train.num_examples, mnist.validation.num_examples, mnist.test.num_examples
        (55000, 5000, 10000)
        >>> batch_xs, batch_ys = mnist.train.next_batch(100)  # (100, 784), (100, 10)
        >>> mnist = read_data_sets(data_dir="MNIST_data", one_hot=True, validation_size=5000)
    """
    if train_dir is not None and data_dir is not None:
        raise ValueError(f"read_data_sets() got both `train_dir` and `data_dir` (train_dir="
                         f"{train_dir!r}, data_dir={data_dir!r}). Expected one of them: they name "
                         f"the same folder (`data_dir` is an alias of the tutorial's `train_dir`).")
    train_dir = data_dir if train_dir is None else train_dir
    info = get_dataset_info(dataset)
    check_validation_size(validation_size, info)
    splits = load_arrays(info.name, train_dir, validation_size=validation_size, download=download)
    seeds = np.random.SeedSequence(seed).spawn(3)  # independent shuffles per split

    def make(split, split_seed):
        labels = dense_to_one_hot(split.labels, info.num_classes) if one_hot else split.labels
        return DataSet(split.images, labels, dtype=dtype, reshape=reshape, seed=split_seed)

    parts = (splits.train, splits.validation, splits.test)
    return Datasets(*(make(part, part_seed) for part, part_seed in zip(parts, seeds)))
