"""Image folders: ``root/<class>/*.jpg`` to a deterministic, resumable tf.data pipeline.

Layout. ``root/<class>/<image>`` with images ending in .jpg, .jpeg, .png, .bmp or .gif (any case);
class names are the sorted folder names, so labels never depend on the file system's listing
order. Either ``root/train/<class>/`` and ``root/val/<class>/`` (or ``validation/``) hold the two
splits, or the validation split is a seeded fraction of each class (stratified: every class keeps
its share, and the choice depends only on ``seed`` and the sorted file names).

Unreadable files are found when the folder is indexed, never mid-epoch. A cheap structural check
first rejects what is plainly not an image (empty, unknown signature, unreadable); then every other
file is decoded once with the very op the pipeline uses (``tf.io.decode_image``, decode only, no
resize), in parallel through tf.data. So a file whose header and trailer are intact but whose
middle is corrupt (a JPEG with a bogus marker in its scan, a PNG with a damaged IDAT chunk) is
caught too. A file that fails to decode is read again in Python to say why: bytes that cannot be
read (permission, an I/O error) are reported with the OS's reason, readable ones as corrupt image
data. Files that fail are left out of the splits and reported in ONE warning that lists them (also
kept in ``ImageFolder.skipped_files``): the file counts behind the feed position (epoch, offset)
are those of the images actually served, so resuming stays exact. A JPEG whose damage libjpeg only
warns about ("Corrupt JPEG data: N extraneous bytes") decodes, to TensorFlow as to Pillow, and is
served.

Cost, measured on 2 cores shared with other jobs (AMD EPYC, TF 2.21) on 400 generated 500x375 JPEGs
(85 KB each): indexing took ~0.7 s with every file decoded (~1.7 ms per file; ~0.05 s with the
structural check alone, ~0.05 s again with cached verdicts). That is ~6 s for flower_photos' 3,670
files and ~35 min for ImageNet's 1.28 M. So for folders of 1,000 files or more the verdicts are
cached in the user cache (``$XDG_CACHE_HOME/slimkit/image_folders/``), keyed by path, size and
modification time: indexing again costs a ``stat`` per file, and only new or changed files are
decoded. Only decoding verdicts are cached: a file that could not be read is tried again next time
(the error may have been transient), and a malformed cache file counts as empty. As a last line of
defence, a file changed after indexing that no longer decodes is dropped by the pipeline (with
TensorFlow's warning) instead of stopping training.

Pipeline (``ImageFolder.dataset``): file order -> parallel ``tf.io.decode_image(channels=3,
expand_animations=False)`` (grayscale, palette, RGBA, 16-bit and CMYK images all come out as 8-bit
RGB; TensorFlow's JPEG decoder converts CMYK itself, verified in the tests) -> resize so the shorter
side is ``image_size / 0.875`` (256 for 224, the AlexNet/Inception evaluation convention) ->
random ``image_size`` crop and horizontal flip for training, central crop for evaluation ->
per-channel normalization with the ImageNet mean and standard deviation -> batch -> prefetch.

Decoded images kept in memory (``ImageFolder.keep_decoded``; ``slimkit train`` does it when they
fit in ``--image-cache-mb``). Reading, decoding and resizing a file is most of the pipeline's work,
and every epoch did it again: ~2.7 ms of a core per 256x320 JPEG, ~15 ms per 1200x1600 one
(2-core Zen 5 EPYC). A split whose resized images fit in a memory budget is decoded once, in
parallel, into uint8 buffers; each epoch then crops from memory, ~0.65 ms of a core per image.
The kept images are the pipeline's own resized ones, so every batch is bit for bit what it would
have been without (and resuming stays exact).

Resized images kept on disk (``ImageFolder.keep_on_disk``; ``slimkit train`` does it for images
that do not fit in memory): see :mod:`slimkit.data.image_disk_cache`.

Determinism. Training order in epoch ``e`` is a stateless shuffle seeded by ``(seed, e)``; the
crop and flip of the element at position ``j`` of epoch ``e`` use stateless random ops seeded by
``(seed, e, j)``. So ``skip_batches`` (resume mid-epoch) skips file names, not decoded images, and
the batches that follow are exactly the original run's.
"""

import concurrent.futures
import hashlib
import json
import numbers
import os
import pathlib
import warnings

import numpy as np

from slimkit.data.image_disk_cache import read_entry
from slimkit.writing import write_text_atomically

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_CROP_FRACTION = 0.875  # resize to image_size / 0.875, then crop image_size (224 of 256)
_VAL_NAMES = ("val", "validation")
_CACHE_MIN_FILES = 1000  # smaller folders decode in under a second: no verdict cache
_CHUNK_BYTES = 64 * 2**20  # keep_decoded's unit of memory


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

        bad = _unreadable(train + val, self.root)
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
        self._kept = {}  # split -> (chunks, where, shapes): see keep_decoded
        self._on_disk = {}  # split -> (entry paths, shapes): see keep_on_disk
        self.disk_problem = None  # why the last keep_on_disk kept nothing

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def image_shape(self):
        """(S, S, 3) of the images the pipeline produces."""
        return (self.image_size, self.image_size, 3)

    def keep_decoded(self, split, max_megabytes):
        """Decodes the images of ``split`` once and keeps them in memory, if they fit.

        Each file is read, decoded and resized (shorter side ``image_size / 0.875``) as the
        pipeline does, in parallel, into uint8 buffers of ~64 MiB; ``dataset(split, ...)`` then
        crops from them instead of decoding every file again each epoch. Batches are unchanged,
        bit for bit.

        Args:
            split: ``"train"`` or ``"val"`` (``"validation"``).
            max_megabytes: the budget (MiB). Nothing is kept if the split needs more: a first
                bound (every image at least ``(image_size / 0.875)**2 * 3`` bytes) skips folders
                far too large without decoding anything; otherwise decoding stops when the
                running total passes the budget.

        Returns:
            The MiB kept, or None if nothing was: the images need more than the budget, or a
            file changed since indexing no longer decodes (the pipeline then reads the files as
            usual, and leaves that one out).

        Raises:
            ValueError: unknown split, empty split, a budget that is not a number >= 0.

        Example:
            >>> folder = ImageFolder("flower_photos", image_size=224)
            >>> folder.keep_decoded("train", 1024)   # the MiB kept, or None if they need more
        """
        import tensorflow as tf

        files, _ = self._split_arrays(split)
        key = "train" if split == "train" else "val"
        _check_megabytes(max_megabytes)
        budget = max_megabytes * 2**20
        if len(files) * self.resize_to ** 2 * 3 > budget:
            return None
        with tf.device("/CPU:0"):  # (on a machine with a GPU, not in its memory)
            kept = self._decode_all(_resized_images(files, self.resize_to), budget)
        if kept is None:
            return None
        self._kept[key] = kept
        return sum(int(c.shape[0]) for c in kept[0]) / 2**20

    def keep_on_disk(self, split, max_megabytes, directory=None, before_writing=None):
        """Resizes the images of ``split`` once and keeps them on disk, if they fit.

        For folders too large for ``keep_decoded`` (:mod:`slimkit.data.image_disk_cache`): each
        file is read, decoded and resized as the pipeline does, in parallel, and its uint8 pixels
        go to a file of their own; ``dataset(split, ...)`` then reads those (one read, no
        decoding) instead of decoding every file each epoch. Batches are unchanged, bit for bit.
        The entries stay for later runs, which resize only new or changed images; entries of
        images gone or changed are removed.

        Args:
            split: ``"train"`` or ``"val"`` (``"validation"``).
            max_megabytes: the budget (MiB) for the split's entries, those of earlier runs
                included. Nothing is kept if they need more: a first bound (every image at least
                ``(image_size / 0.875)**2 * 3`` bytes) refuses without decoding anything;
                otherwise writing stops when the running total passes it.
            directory: where the entries go (default: the user cache,
                ``image_disk_cache.default_directory``).
            before_writing: ``before_writing(n)`` is called before ``n`` images are resized
                (when some are missing and may fit), e.g. to say why the run waits.

        Returns:
            The MiB the split's entries take, or None if they are not kept; then
            ``disk_problem`` says why (over the budget, a file changed since indexing, the
            directory not writable: what this call wrote is removed again), and the pipeline
            reads the image files as usual.

        Raises:
            ValueError: unknown split, empty split, a budget that is not a number >= 0.

        Example:
            >>> folder = ImageFolder("holiday_photos", image_size=224)
            >>> folder.keep_on_disk("train", 20_000)  # the MiB on disk, or None
        """
        import tensorflow as tf

        from slimkit.data.image_disk_cache import DiskCache

        files, _ = self._split_arrays(split)
        _check_megabytes(max_megabytes)
        cache = DiskCache(self.root, self.resize_to, directory)
        paths, shapes = cache.keep(files, max_megabytes * 2**20,
                                   lambda paths: _resized_images(paths, self.resize_to),
                                   before_writing)
        if paths is None:
            self.disk_problem = shapes
            return None
        in_use = [paths, *(entries for entries, _ in self._on_disk.values())]
        cache.tidy(self.train_files + self.val_files, np.concatenate(in_use))
        self._on_disk["train" if split == "train" else "val"] = (
            paths, tf.constant(shapes, tf.int64))
        self.disk_problem = None
        return sum(h * w * c for h, w, c in shapes) / 2**20

    @property
    def resize_to(self):
        """The shorter side images are resized to before cropping (``image_size / 0.875``)."""
        return int(round(self.image_size / _CROP_FRACTION))

    @staticmethod
    def _decode_all(images, budget):
        """``(chunks, where, shapes)`` of ``keep_decoded`` from the resized ``images``, or None
        (over budget, undecodable)."""
        import tensorflow as tf
        # Flat uint8 chunks of ~64 MiB, each holding whole images: concatenating the images as
        # they come keeps the memory at the images' size plus one chunk (one buffer for all would
        # need twice the images' size while it is assembled).
        chunks, pending, pending_size, total = [], [], 0, 0
        where, shapes = [], []  # per image: (chunk, start within it), (h, w, 3)
        try:
            for image in images:
                size = image.shape.num_elements()
                total += size
                if total > budget:
                    return None
                where.append((len(chunks), pending_size))
                shapes.append(image.shape.as_list())
                pending.append(tf.reshape(image, [-1]))
                pending_size += size
                if pending_size >= _CHUNK_BYTES:
                    chunks.append(tf.concat(pending, axis=0))
                    pending, pending_size = [], 0
        except tf.errors.OpError:  # changed since indexing and no longer decodes
            return None
        if pending:
            chunks.append(tf.concat(pending, axis=0))
        return chunks, tf.constant(where, tf.int64), tf.constant(shapes, tf.int64)

    def dataset(self, split, batch_size, training, seed=0, epoch=0, skip_batches=0, repeat=False):
        """A ``tf.data.Dataset`` of ``(images float32 (B, S, S, 3), labels int32 (B,))``.

        Args:
            split: ``"train"`` or ``"val"`` (``"validation"``); from memory if ``keep_decoded``
                kept it, else from disk if ``keep_on_disk`` did.
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

        size, resize_to = self.image_size, self.resize_to
        kept = self._kept.get("train" if split == "train" else "val")
        on_disk = self._on_disk.get("train" if split == "train" else "val")
        if on_disk is not None:
            disk_paths, disk_shapes = tf.constant(on_disk[0]), on_disk[1]

        def resized(index):  # uint8 (h, w, 3), shorter side resize_to
            if kept is None and on_disk is not None:  # (the file if its entry went away)
                return read_entry(disk_paths[index], disk_shapes[index],
                                  lambda: _read_resized(files_t[index], resize_to))
            if kept is None:
                return _read_resized(files_t[index], resize_to)
            chunks, where, shapes = kept
            chunk, start = where[index][0], where[index][1]
            end = start + tf.reduce_prod(shapes[index])

            def branch(pixels):
                return lambda: pixels[start:end]
            flat = tf.switch_case(tf.cast(chunk, tf.int32), [branch(c) for c in chunks])
            return tf.reshape(flat, shapes[index])

        def load(index, e, position):
            image = resized(index)
            if not training:
                return _normalize(_central_crop(image, size), size), labels_t[index]
            element_seed = tf.random.experimental.stateless_fold_in(
                tf.random.experimental.stateless_fold_in(base_seed, e), position)
            crop_seed, flip_seed = tf.unstack(
                tf.random.experimental.stateless_split(element_seed, 2))
            image = tf.image.stateless_random_crop(image, [size, size, 3], seed=crop_seed)
            image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
            return _normalize(image, size), labels_t[index]

        ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        # last line of defence: undecodable files were left out when indexing (module docstring)
        ds = ds.ignore_errors(log_warning=True)
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


def _check_megabytes(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0:  # NaN
        raise ValueError(f"Invalid value for argument `max_megabytes`. Expected a number of "
                         f"MiB >= 0 (inf: no limit). Received max_megabytes={value!r}.")


def evaluation_image(image, image_size):
    """The evaluation preprocessing of one decoded image: what validation and ``predict`` feed.

    Resize so the shorter side is ``image_size / 0.875``, crop the central ``image_size`` square,
    normalize each channel with the ImageNet mean and standard deviation.

    Args:
        image: uint8 (h, w, 3), e.g. from :func:`decode_image`.
        image_size: The side S of the model's input.

    Returns:
        float32 (S, S, 3).

    Example:
        >>> evaluation_image(np.zeros((300, 400, 3), np.uint8), 224).shape
        TensorShape([224, 224, 3])
    """
    image = _resize_shorter_side(image, int(round(image_size / _CROP_FRACTION)))
    return _normalize(_central_crop(image, image_size), image_size)


def decode_image(contents):
    """The pipeline's decoding of an image file's bytes: uint8 (h, w, 3), whatever the format.

    ``tf.io.decode_image`` with 3 channels and no animation: grey, palette, RGBA, 16-bit and CMYK
    images all come out as 8-bit RGB; a GIF gives its first frame. The indexing check uses the
    same op, so that both agree on every file.
    """
    import tensorflow as tf

    return tf.io.decode_image(contents, channels=3, expand_animations=False)  # (h, w, 3) uint8


def _read_resized(path, resize_to):
    """The file at ``path``, decoded, with its shorter side resized to ``resize_to`` (uint8)."""
    import tensorflow as tf

    return _resize_shorter_side(decode_image(tf.io.read_file(path)), resize_to)


def _resized_images(paths, resize_to):
    """An iterator of the files at ``paths`` read, decoded and resized (``_read_resized``), in
    order, decoded in parallel on the CPU (on a machine with a GPU, not in its memory)."""
    import tensorflow as tf

    with tf.device("/CPU:0"):
        return iter(tf.data.Dataset.from_tensor_slices(np.array(paths, str)).map(
            lambda path: _read_resized(path, resize_to), num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True))


def _normalize(image, size):
    import tensorflow as tf

    mean = tf.constant(IMAGENET_MEAN, tf.float32) * 255.0
    std = tf.constant(IMAGENET_STD, tf.float32) * 255.0
    image = (tf.cast(image, tf.float32) - mean) / std  # (S, S, 3)
    return tf.ensure_shape(image, [size, size, 3])


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


_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")


_CORRUPT = "truncated or corrupt image data"


def _unreadable(pairs, root):
    """Sorted (path, reason) of every file the pipeline could not decode (module docstring)."""
    paths = [path for path, _ in pairs]
    # I/O-bound (one small read per file): threads hide the latency on large folders
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        reasons = list(pool.map(_structure_problem, paths, chunksize=256))
    bad = [(path, reason) for path, reason in zip(paths, reasons) if reason]
    images = [path for path, reason in zip(paths, reasons) if not reason]
    cache = _VerdictCache(root, images) if len(paths) >= _CACHE_MIN_FILES else None
    todo = cache.unknown() if cache else images
    problems = _decode_problems(todo)
    if cache:
        cache.save(todo, problems)
        problems.update((path, _CORRUPT) for path in cache.failed())
    bad.extend(problems.items())
    return sorted(bad)


def _decode_problems(paths):
    """``{path: reason}`` of the paths whose decoding fails.

    tf.data's ``ignore_errors`` says which files failed, not why, so each failed file is read
    again here: one whose bytes cannot be read (permission denied, an I/O error of a network file
    system: perhaps transient) gets the OS's reason; one whose bytes are all readable holds corrupt
    image data. Only the second is a verdict on the file itself (see :class:`_VerdictCache`).
    """
    return {path: _read_problem(path) or _CORRUPT for path in _undecodable(paths)}


def _read_problem(path):
    """None if every byte of ``path`` can be read, else why not."""
    try:
        with open(path, "rb") as f:
            while f.read(1 << 20):
                pass
    except OSError as e:
        return f"cannot be read: {e.strerror or e}"
    return None


def _undecodable(paths):
    """The paths whose decoding fails (or gives no pixels), decoded in parallel by tf.data."""
    if not paths:
        return []
    import tensorflow as tf

    def pixels(index, path):
        return index, tf.reduce_prod(tf.shape(decode_image(tf.io.read_file(path)))[:2])

    ds = tf.data.Dataset.from_tensor_slices((np.arange(len(paths)), [str(p) for p in paths]))
    ds = ds.map(pixels, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    decoded = {int(i) for i, n in ds.ignore_errors().as_numpy_iterator() if n > 0}
    return [path for i, path in enumerate(paths) if i not in decoded]


class _VerdictCache:
    """Decode verdicts of a folder's files, keyed by path, size and mtime, in the user cache.

    Only an optimization: when the cache cannot be read or written, or is malformed in any way,
    every file is decoded. Only decoding verdicts are kept (decodes, or holds corrupt image data);
    a file that could not be read is not: the next indexing tries it again.
    """

    def __init__(self, root, paths):
        from slimkit.data.registry import cache_root

        self.root = os.path.realpath(root)
        digest = hashlib.sha1(self.root.encode()).hexdigest()[:16]
        self.file = cache_root() / "image_folders" / f"{digest}.json"
        self.keys = {}  # path -> [size, mtime_ns] now; a file that cannot be stat'ed has none
        for path in map(str, paths):
            try:
                st = os.stat(path)
                self.keys[path] = [st.st_size, st.st_mtime_ns]
            except OSError:
                pass
        self.known = self._load()  # path -> [size, mtime_ns, failed]
        self.fresh = {p: v[2] for p, v in self.known.items() if v[:2] == self.keys.get(p)}
        self.paths = paths

    def _load(self):
        """The cached verdicts, or {} if the file is missing, unreadable or malformed."""
        try:
            with open(self.file, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            return {}
        files = data.get("files") if isinstance(data, dict) else None
        if not isinstance(files, dict) or not all(map(_is_verdict, files.values())):
            return {}
        return files

    def unknown(self):
        """The files without a verdict for their current size and mtime."""
        return [p for p in self.paths if str(p) not in self.fresh]

    def failed(self):
        """The files whose fresh cached verdict is: cannot be decoded."""
        return {p for p in self.paths if self.fresh.get(str(p))}

    def save(self, decoded_paths, problems):
        """Stores the verdicts of ``decoded_paths``, given ``{path: reason}`` of those that failed.

        A file that failed for another reason than corrupt image data (it could not be read) gets
        no verdict.
        """
        verdicts = {str(p): self.keys[str(p)] + [problems.get(p) == _CORRUPT]
                    for p in decoded_paths
                    if str(p) in self.keys and problems.get(p) in (None, _CORRUPT)}
        files = {p: self.known[p] for p in self.fresh}  # files gone from the folder are dropped
        files.update(verdicts)
        if not verdicts and len(files) == len(self.known):
            return
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            # Atomic (a concurrent reader never sees half a file), no temporary left on a full disk.
            write_text_atomically(self.file, json.dumps({"root": self.root, "files": files}))
        except OSError:
            pass  # an optimization only: the next indexing decodes again


def _is_verdict(value):
    """Whether a cache entry is ``[size, mtime_ns, failed]`` with two ints and a bool."""
    return (isinstance(value, list) and len(value) == 3 and
            all(type(x) is int for x in value[:2]) and type(value[2]) is bool)


def _structure_problem(path):
    """None if the file starts like an image (it is then decoded), else why it is not one."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        return f"cannot be read: {e.strerror or e}"
    if not head:
        return "empty file"
    if not any(head.startswith(magic) for magic in _SIGNATURES):
        return "not a JPEG, PNG, GIF or BMP image"
    return None
