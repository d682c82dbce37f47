"""Image folders: ``root/<class>/*.jpg`` to a deterministic, resumable tf.data pipeline.

Layout. ``root/<class>/<image>`` with images ending in .jpg, .jpeg, .png, .bmp or .gif (any case);
class names are the sorted folder names, so labels never depend on the file system's listing
order. Either ``root/train/<class>/`` and ``root/val/<class>/`` (or ``validation/``) hold the two
splits, or the validation split is a seeded fraction of each class (stratified: every class keeps
its share, and the choice depends only on ``seed`` and the sorted file names).

Unreadable files are found when the folder is indexed, not mid-epoch. Reading every image would
cost minutes on a large folder, so each file gets a structural check that reads a few bytes at
both ends: a known signature (JPEG, PNG, GIF, BMP, whatever the extension says) and an intact end
(JPEG's EOI marker, PNG's IEND chunk, GIF's trailer, BMP's declared size). Only files that fail the
end check are decoded with TensorFlow to decide (a JPEG with bytes after its EOI marker is fine; a
cut-off one is not). Files that fail are left out of the splits and reported in ONE warning that
lists them (also kept in ``ImageFolder.skipped_files``). As a last line of defence the pipeline
drops an element whose decoding still fails instead of stopping training.

Pipeline (``ImageFolder.dataset``): file order -> parallel ``tf.io.decode_image(channels=3,
expand_animations=False)`` (grayscale, palette, RGBA, 16-bit and CMYK images all come out as 8-bit
RGB; TensorFlow's JPEG decoder converts CMYK itself, verified in the tests) -> resize so the shorter
side is ``image_size / 0.875`` (256 for 224, the AlexNet/Inception evaluation convention) ->
random ``image_size`` crop and horizontal flip for training, central crop for evaluation ->
per-channel normalization with the ImageNet mean and standard deviation -> batch -> prefetch.

Determinism. Training order in epoch ``e`` is a stateless shuffle seeded by ``(seed, e)``; the
crop and flip of the element at position ``j`` of epoch ``e`` use stateless random ops seeded by
``(seed, e, j)``. So ``skip_batches`` (resume mid-epoch) skips file names, not decoded images, and
the batches that follow are exactly the original run's.
"""

import concurrent.futures
import os
import pathlib
import warnings

import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_CROP_FRACTION = 0.875  # resize to image_size / 0.875, then crop image_size (224 of 256)
_VAL_NAMES = ("val", "validation")


class ImageFolder:
    """A labelled image folder split into training and validation files.

    Args:
        root: the folder: ``root/<class>/...`` or ``root/train/<class>/...`` + ``root/val/...``.
        image_size: side S of the square images the pipeline produces.
        validation_fraction: share of each class held out for validation when there is no
            ``val/`` folder, in [0, 1).
        seed: seed of the held-out choice.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: fewer than two classes, a class folder without images, a bad argument.

    Example:
        >>> folder = ImageFolder("flower_photos", image_size=224, validation_fraction=0.1)
        >>> folder.class_names[:2], folder.num_classes
        (['daisy', 'dandelion'], 5)
        >>> ds = folder.dataset("train", batch_size=32, training=True, seed=0, epoch=0)
    """

    def __init__(self, root, image_size=224, validation_fraction=0.1, seed=0):
        self.root = pathlib.Path(root).expanduser()
        if not self.root.is_dir():
            raise FileNotFoundError(f"Image folder {self.root} does not exist (or is not a "
                                    "folder). Expected root/<class>/<image files>.")
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size <= 0:
            raise ValueError(f"Invalid value for argument `image_size`. Expected a strictly "
                             f"positive integer. Received image_size={image_size!r}.")
        if not 0 <= validation_fraction < 1:
            raise ValueError(f"Invalid value for argument `validation_fraction`. Expected a number "
                             f"in [0, 1). Received validation_fraction={validation_fraction!r}.")
        self.image_size = image_size
        self.seed = seed

        train_root, val_root = self.root, None
        if (self.root / "train").is_dir():  # train/ + val/ (or validation/) layout
            train_root = self.root / "train"
            val_root = next((self.root / n for n in _VAL_NAMES if (self.root / n).is_dir()), None)
        self.class_names = _class_names(train_root)
        train = _index(train_root, self.class_names)
        if val_root is not None:
            unknown = sorted(set(_subfolders(val_root)) - set(self.class_names))
            if unknown:
                raise ValueError(f"Validation folder {val_root} has classes {unknown} that "
                                 f"{train_root} does not. Expected the same class folders in both.")
            val = _index(val_root, [c for c in self.class_names if (val_root / c).is_dir()],
                         label_of={c: i for i, c in enumerate(self.class_names)})
        else:
            train, val = _split(train, validation_fraction, seed)

        bad = _unreadable(train + val)
        if bad:
            listing = ", ".join(f"{os.path.relpath(p, self.root)} ({why})" for p, why in bad)
            warnings.warn(f"Skipping {len(bad)} unreadable image file(s) in {self.root}: "
                          f"{listing}.", stacklevel=2)
        skipped = {p for p, _ in bad}
        self.skipped_files = [p for p, _ in bad]
        train = [(p, y) for p, y in train if p not in skipped]
        val = [(p, y) for p, y in val if p not in skipped]
        self.train_files = [p for p, _ in train]
        self.train_labels = np.array([y for _, y in train], np.int32)
        self.val_files = [p for p, _ in val]
        self.val_labels = np.array([y for _, y in val], np.int32)

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def image_shape(self):
        """(S, S, 3) of the images the pipeline produces."""
        return (self.image_size, self.image_size, 3)

    def dataset(self, split, batch_size, training, seed=0, epoch=0, skip_batches=0, repeat=False):
        """A ``tf.data.Dataset`` of ``(images float32 (B, S, S, 3), labels int32 (B,))``.

        Args:
            split: ``"train"`` or ``"val"`` (``"validation"``).
            batch_size: images per batch.
            training: shuffle per epoch, random crop and flip, drop a last partial batch; False:
                file order, central crop, keep every image.
            seed: seed of the shuffles and augmentation.
            epoch: the epoch to start from (selects the shuffle and augmentation).
            skip_batches: batches of ``epoch`` to skip, to resume mid-epoch.
            repeat: continue with epoch + 1, epoch + 2, ... forever (each reshuffled); batches
                then run across epoch boundaries.

        Raises:
            ValueError: unknown split, empty split, bad batch size.
        """
        import tensorflow as tf

        files, labels = self._split_arrays(split)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"Invalid value for argument `batch_size`. Expected a strictly "
                             f"positive integer. Received batch_size={batch_size!r}.")
        files_t = tf.constant(files)
        labels_t = tf.constant(labels)
        n = len(files)
        base_seed = tf.constant([seed, 0], tf.int64)

        def one_epoch(e):
            positions = tf.range(n, dtype=tf.int64)
            order = positions
            if training:
                order = tf.random.experimental.stateless_shuffle(
                    positions, seed=tf.stack([tf.constant(seed, tf.int64), e]))
            epochs = tf.fill([n], e)
            return tf.data.Dataset.from_tensor_slices((order, epochs, positions))

        epochs = tf.data.Dataset.range(epoch, epoch + 1 if not repeat else np.iinfo(np.int64).max)
        ds = epochs.flat_map(one_epoch)
        if skip_batches:
            ds = ds.skip(skip_batches * batch_size)  # skips indices: nothing is decoded

        size = self.image_size
        resize_to = int(round(size / _CROP_FRACTION))
        mean = tf.constant(IMAGENET_MEAN, tf.float32) * 255.0
        std = tf.constant(IMAGENET_STD, tf.float32) * 255.0

        def load(index, e, position):
            image = tf.io.decode_image(tf.io.read_file(files_t[index]), channels=3,
                                       expand_animations=False)  # (h, w, 3) uint8
            image = _resize_shorter_side(image, resize_to)
            if training:
                element_seed = tf.random.experimental.stateless_fold_in(
                    tf.random.experimental.stateless_fold_in(base_seed, e), position)
                crop_seed, flip_seed = tf.unstack(
                    tf.random.experimental.stateless_split(element_seed, 2))
                image = tf.image.stateless_random_crop(image, [size, size, 3], seed=crop_seed)
                image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
            else:
                image = _central_crop(image, size)
            image = (tf.cast(image, tf.float32) - mean) / std  # (S, S, 3)
            image = tf.ensure_shape(image, [size, size, 3])
            return image, labels_t[index]

        ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        ds = ds.ignore_errors(log_warning=True)  # last line of defence; bad files were dropped
        ds = ds.batch(batch_size, drop_remainder=training, num_parallel_calls=tf.data.AUTOTUNE,
                      deterministic=True)
        return ds.prefetch(tf.data.AUTOTUNE)

    def _split_arrays(self, split):
        if split == "train":
            files, labels = self.train_files, self.train_labels
        elif split in _VAL_NAMES:
            files, labels = self.val_files, self.val_labels
        else:
            raise ValueError(f"Invalid value for argument `split`. Expected 'train' or 'val'. "
                             f"Received split={split!r}.")
        if not files:
            raise ValueError(f"The {split} split of {self.root} has no images. Add images or "
                             f"choose a validation_fraction that holds some out.")
        return np.array([str(p) for p in files]), labels


def _resize_shorter_side(image, target):
    import tensorflow as tf

    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = tf.cast(target, tf.float32) / tf.reduce_min(shape)
    new_size = tf.maximum(tf.cast(tf.round(shape * scale), tf.int32), target)
    image = tf.image.resize(image, new_size, method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


def _central_crop(image, size):
    import tensorflow as tf

    shape = tf.shape(image)
    top, left = (shape[0] - size) // 2, (shape[1] - size) // 2
    return image[top:top + size, left:left + size, :]


def _subfolders(folder):
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


def _class_names(folder):
    names = _subfolders(folder)
    if len(names) < 2:
        raise ValueError(f"Image folder {folder} has {len(names)} class folder(s) "
                         f"{names}. Expected at least two: {folder}/<class>/<image files>, one "
                         f"folder per class.")
    return names


def _index(folder, class_names, label_of=None):
    """Sorted (path, label) pairs; an empty class folder is an error naming it."""
    label_of = label_of or {c: i for i, c in enumerate(class_names)}
    pairs = []
    for name in class_names:
        class_dir = folder / name
        files = sorted(e.path for e in os.scandir(class_dir) if e.is_file()
                       and not e.name.startswith(".") and e.name.lower().endswith(IMAGE_EXTENSIONS))
        if not files:
            raise ValueError(f"Class folder {class_dir} has no images. Expected files ending in "
                             f"{', '.join(IMAGE_EXTENSIONS)} (any case); add images or remove "
                             f"the folder.")
        pairs.extend((pathlib.Path(p), label_of[name]) for p in files)
    return pairs


def _split(pairs, fraction, seed):
    """Stratified, seeded hold-out: each class's sorted files, permuted by (seed, class)."""
    labels = np.array([y for _, y in pairs])
    val_index = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        k = min(int(round(fraction * len(members))), len(members) - 1)
        chosen = np.random.default_rng([seed, int(label)]).permutation(members)[:k]
        val_index.extend(sorted(chosen))
    held = set(val_index)
    return ([pairs[i] for i in range(len(pairs)) if i not in held],
            [pairs[i] for i in sorted(val_index)])


_SIGNATURES = ((b"\xff\xd8\xff", "jpeg"), (b"\x89PNG\r\n\x1a\n", "png"), (b"GIF87a", "gif"),
               (b"GIF89a", "gif"), (b"BM", "bmp"))


def _unreadable(pairs):
    """(path, reason) of every file that cannot be decoded; cheap checks, decode only suspects."""
    bad, suspects = [], []
    paths = [path for path, _ in pairs]
    # I/O-bound (two small reads per file): threads hide the latency on large folders
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        reasons = list(pool.map(_structure_problem, paths, chunksize=256))
    for path, reason in zip(paths, reasons):
        if reason == "suspect":
            suspects.append(path)
        elif reason:
            bad.append((path, reason))
    if suspects:
        import tensorflow as tf

        for path in suspects:
            try:
                tf.io.decode_image(tf.io.read_file(str(path)), channels=3, expand_animations=False)
            except (tf.errors.InvalidArgumentError, tf.errors.OpError):
                bad.append((path, "truncated or corrupt image data"))
    return sorted(bad)


def _structure_problem(path):
    """None if the file looks whole, a reason if it is not an image, "suspect" if its end is odd."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(32)
            f.seek(max(0, size - 64))
            tail = f.read()
    except OSError as e:
        return f"cannot be read: {e.strerror or e}"
    if size == 0:
        return "empty file"
    kind = next((k for magic, k in _SIGNATURES if head.startswith(magic)), None)
    if kind is None:
        return "not a JPEG, PNG, GIF or BMP image"
    if kind == "jpeg":
        whole = b"\xff\xd9" in tail
    elif kind == "png":
        whole = b"IEND" in tail
    elif kind == "gif":
        whole = tail.endswith(b";")
    else:  # BMP declares its size in bytes 2..5
        whole = len(head) >= 6 and int.from_bytes(head[2:6], "little") <= size
    return None if whole else "suspect"
