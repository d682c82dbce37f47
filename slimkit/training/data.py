"""The data of a run: a resumable training feed and evaluation batches, for either kind of dataset.

- MNIST-format datasets (``mnist``, ``fashion_mnist``) live in memory: training batches come from
  :class:`slimkit.data.feed.ArrayFeed`, evaluation batches are slices of the uint8 arrays.
- ``dataset="folder"`` reads an image folder (``--data-dir``) through
  :class:`slimkit.data.image_folder.ImageFolder`'s ``tf.data`` pipeline. Its feed
  (:class:`FolderFeed`) tracks the same ``(epoch, offset)`` position as ``ArrayFeed``, so a
  checkpoint holds where the data stream stood and a resumed run gets the same next batches.

    data = load_training_data(config)
    images, labels = data.feed.next_batches(10)     # (10, B, H, W, C) float32, (10, B) int32
    for images, labels in data.eval_batches("test", 500):
        ...
"""

import dataclasses
import os
import shutil
import typing

import numpy as np

FOLDER = "folder"


@dataclasses.dataclass
class TrainingData:
    """What the loop needs to know about the data.

    Attributes:
        feed: ``next_batches(k)``, ``position`` and ``seek(epoch, offset)``.
        num_train: Training examples per epoch.
        num_classes: Number of classes.
        image_shape: (H, W, C) of the model's input.
        class_names: Names of the classes, index = label.
        eval_batches: ``eval_batches(split, batch_size)`` yields ``(images float32, labels int32)``
            batches of a split: ``"test"``, ``"validation"``, or ``"train"`` (the training
            examples in file order, preprocessed for evaluation: no augmentation).
        eval_splits: Splits that exist; the last one is the final evaluation's.
        prepare: ``prepare(say)``, called once the run is sure to train (after the checks, the
            restore and the "nothing to train" exit): slow preparation such as keeping an image
            folder's decoded images in memory; ``say(line)`` prints what it does (before slow
            work too, so the user sees why the run waits).
    """

    feed: typing.Any
    num_train: int
    num_classes: int
    image_shape: tuple
    class_names: tuple
    eval_batches: typing.Callable
    eval_splits: tuple
    prepare: typing.Callable = lambda say: None

    @property
    def final_split(self):
        """The split a run's final evaluation is on (``test``; an image folder's ``validation``)."""
        return self.eval_splits[-1] if self.eval_splits else "test"


def load_training_data(config, image_shape=None, train_feed=True):
    """Loads the dataset ``config.dataset`` and builds its training feed.

    Args:
        config: A :class:`~slimkit.training.config.TrainConfig`.
        image_shape: (H, W, C) the model expects (image folders are resized to it).
        train_feed: False skips building the training feed (evaluation only).

    Raises:
        ValueError: For an unknown dataset, a ``validation_size`` that leaves no training
            examples, or ``folder`` without ``data_dir``.
        FileNotFoundError: If the files are missing and cannot be downloaded.
    """
    if config.dataset == FOLDER:
        return _folder_data(config, image_shape, train_feed)
    from slimkit.data.feed import ArrayFeed
    from slimkit.data.registry import check_validation_size, get_dataset_info, load_arrays

    info = get_dataset_info(config.dataset)
    check_validation_size(config.validation_size, info, min_train=1)  # before reading 50 MB
    splits = load_arrays(info.name, config.data_dir, validation_size=config.validation_size)
    feed = None
    if train_feed:
        feed = ArrayFeed(splits.train.images, splits.train.labels, config.batch_size,
                         seed=config.seed, shuffle=config.shuffle, augment=config.augment)
    arrays = {"train": splits.train, "test": splits.test, "validation": splits.validation}

    def eval_batches(split, batch_size):
        data = arrays[split]
        for start in range(0, len(data.labels), batch_size):
            images = data.images[start:start + batch_size]  # uint8 (b, H, W, C)
            yield (images.astype(np.float32) * np.float32(1 / 255),
                   data.labels[start:start + batch_size].astype(np.int32))

    splits_present = tuple(s for s in ("validation", "test") if len(arrays[s].labels))
    return TrainingData(feed, len(splits.train.labels), info.num_classes, info.image_shape,
                        tuple(info.class_names), eval_batches, splits_present)


def _folder_data(config, image_shape, train_feed):
    from slimkit.data.image_folder import ImageFolder

    if not config.data_dir:
        raise ValueError("dataset='folder' needs --data-dir: the image folder, with one sub-folder "
                         "of images per class (or train/ and val/ folders holding those).")
    if config.augment is not None:
        raise ValueError(f"Invalid value for `augment` with an image folder: its pipeline already "
                         f"crops and flips at random. Expected augment=None. Received "
                         f"augment={config.augment!r}.")
    size = config.image_size or (image_shape[0] if image_shape else 224)
    folder = ImageFolder(config.data_dir, image_size=size, seed=config.seed)
    feed = FolderFeed(folder, config.batch_size, config.seed) if train_feed else None

    def prepare(say):  # (training only: one evaluation pass gains nothing from keeping images)
        keep_images(folder, say, config.image_cache_mb, config.image_disk_cache_mb)

    def eval_batches(split, batch_size):
        # an image folder has one held-out split; "train" is its training files
        for images, labels in folder.dataset("train" if split == "train" else "val", batch_size,
                                             training=False):
            yield images, labels

    splits_present = ("validation",) if folder.val_files else ()
    return TrainingData(feed, len(folder.train_files), folder.num_classes, folder.image_shape,
                        tuple(folder.class_names), eval_batches, splits_present, prepare)


DEFAULT_IMAGE_CACHE_MB = 1024.0


def image_cache_budget(configured, meminfo="/proc/meminfo"):
    """``(MiB, why)``: how much memory an image folder's decoded images may take.

    ``configured`` (``--image-cache-mb``) if set; else 1024 MiB, or a quarter of the memory
    available now (``MemAvailable`` of ``meminfo``, else a quarter of the physical memory) if that
    is less, so that a small machine keeps its memory for the model.

    Example:
        >>> image_cache_budget(300.0)
        (300.0, '--image-cache-mb')
    """
    if configured is not None:
        return float(configured), "--image-cache-mb"
    available = None
    try:
        with open(meminfo) as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) / 1024  # kB -> MiB
    except (OSError, ValueError, IndexError):
        pass
    if available is None:
        try:
            available = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**20
        except (ValueError, OSError, AttributeError):
            return DEFAULT_IMAGE_CACHE_MB, "the default"
    if available / 4 < DEFAULT_IMAGE_CACHE_MB:
        return round(available / 4, 1), "a quarter of the available memory"
    return DEFAULT_IMAGE_CACHE_MB, "the default"


def image_disk_budget(configured, directory):
    """``(MiB, why)``: how much disk an image folder's resized images may take.

    ``configured`` (``--image-disk-cache-mb``) if set; else half of what the cache ``directory``
    could hold: the free space of its file system (or of its nearest existing parent's) plus what
    its entries take already (so a later run does not refuse the entries an earlier one wrote).

    Example:
        >>> image_disk_budget(5000.0, "/tmp")
        (5000.0, '--image-disk-cache-mb')
    """
    from slimkit.data.image_disk_cache import directory_megabytes

    if configured is not None:
        return float(configured), "--image-disk-cache-mb"
    path = os.path.abspath(directory)
    while not os.path.isdir(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    try:
        free = shutil.disk_usage(path).free / 2**20
    except OSError as e:
        return 0.0, f"the free space of {path} cannot be read ({e.strerror or e})"
    budget = round((free + directory_megabytes(directory)) / 2, 1)
    if budget <= 0:
        return 0.0, f"there is no free space on the file system of {path}"
    return budget, "half the free space there"


def keep_images(folder, say, memory_mb=None, disk_mb=None):
    """Keeps an image folder's images decoded in memory if they fit (``--image-cache-mb``), else
    resized on disk (``--image-disk-cache-mb``); ``say(line)`` tells what is done, before slow
    work and after."""
    from slimkit.data.image_disk_cache import default_directory

    memory, memory_why = image_cache_budget(memory_mb)
    train = folder.keep_decoded("train", memory) if memory > 0 else None
    directory = default_directory(folder.root, folder.resize_to)
    disk, disk_why = image_disk_budget(disk_mb, directory)
    n = f"{len(folder.train_files):,} training images"
    if train is not None:
        val = folder.keep_decoded("val", memory - train) if folder.val_files else None
        say(n + (f" and {len(folder.val_files):,} validation images" if val is not None else "")
            + f" kept decoded in memory ({train + (val or 0):,.1f} MiB): read and decoded once")
        if folder.val_files and val is None and disk > 0:
            val = folder.keep_on_disk("val", disk, directory)
            if val is not None:
                say(f"the {len(folder.val_files):,} validation images kept resized on disk in "
                    f"{directory} ({val:,.1f} MiB)")
        return
    not_in_memory = (f"they need more than {_budget(memory, memory_why, '--image-cache-mb')} of "
                     f"memory, or one no longer decodes" if memory > 0 else
                     "--image-cache-mb 0 keeps nothing in memory")
    if disk <= 0:
        say(f"the {n} are read and decoded every epoch: {not_in_memory}, and "
            + ("--image-disk-cache-mb 0 keeps nothing on disk" if disk_mb is not None
               else f"nothing is kept on disk: {disk_why}"))
        return
    budget = _budget(disk, disk_why, "--image-disk-cache-mb")
    resized = [0]

    def before_writing(missing):
        resized[0] = missing
        say(f"the {n} are not kept in memory ({not_in_memory}): resizing {missing:,} of them "
            f"once onto disk in {directory}, up to {budget}; they stay there for later runs")

    train = folder.keep_on_disk("train", disk, directory, before_writing)
    if train is None:
        say(f"the {n} are read and decoded every epoch: {not_in_memory}, and they are not kept "
            f"on disk in {directory}: {folder.disk_problem} ({budget})")
        return
    val = folder.keep_on_disk("val", disk - train, directory) if folder.val_files else None
    reused = len(folder.train_files) - resized[0]
    say(n + (f" and {len(folder.val_files):,} validation images" if val is not None else "")
        + f" kept resized on disk ({train + (val or 0):,.1f} MiB"
        + (f"; {reused:,} training images resized by an earlier run" if reused else "")
        + "): read without decoding")


def _budget(mb, why, flag):
    return f"{flag} {mb:g} MiB" if why == flag else f"{mb:,.1f} MiB ({why}; {flag} sets it)"


class FolderFeed:
    """``ArrayFeed``'s interface over an image folder's ``tf.data`` pipeline.

    The stream is ImageFolder's (epochs reshuffled with ``(seed, epoch)``, augmentation seeded by
    the element's position), with batches running across epoch boundaries; ``position`` counts
    examples, so ``seek`` resumes at any example (at a position that is not a whole number of
    batches into its epoch, it skips single examples and re-batches).
    """

    def __init__(self, folder, batch_size, seed):
        self.folder, self.batch_size, self.seed = folder, batch_size, seed
        self.num_examples = len(folder.train_files)
        self._epoch, self._offset = 0, 0
        self._iterator = None

    @property
    def position(self):
        return self._epoch, self._offset

    def seek(self, epoch, offset=0):
        self._epoch, self._offset = int(epoch), int(offset)
        self._iterator = None

    def next_batches(self, k=1):
        import tensorflow as tf

        if self._iterator is None:
            self._iterator = iter(self._dataset())
        images, labels = zip(*(next(self._iterator) for _ in range(k)))
        offset = self._offset + k * self.batch_size
        self._epoch += offset // self.num_examples
        self._offset = offset % self.num_examples
        return tf.stack(images), tf.stack(labels)  # (k, B, S, S, 3), (k, B)

    def _dataset(self):
        b = self.batch_size
        if self._offset % b == 0:
            return self.folder.dataset("train", b, training=True, seed=self.seed,
                                       epoch=self._epoch, skip_batches=self._offset // b,
                                       repeat=True)
        singles = self.folder.dataset("train", 1, training=True, seed=self.seed, epoch=self._epoch,
                                      skip_batches=self._offset, repeat=True)
        return singles.unbatch().batch(b, drop_remainder=True)
