"""An image folder's resized images kept on disk, for folders too large to keep in memory.

Reading, decoding and resizing a 1200x1600 JPEG costs ~15 ms of a core (2-core Zen 5 EPYC), and
the image-folder pipeline did it for every image every epoch. ``ImageFolder.keep_on_disk`` does it
once: each image's resized uint8 pixels (shorter side ``image_size / 0.875``, exactly what the
pipeline computes) go to a file of their own, and every epoch reads those instead, one read and
no decoding (~2,500 images/s on 2 cores with a warm page cache; ~260 KB per image, so AlexNet's
75 images/s need ~20 MB/s of disk). Batches are bit for bit the same, so resuming stays exact.

Where: ``$XDG_CACHE_HOME/slimkit/image_folders/<folder digest>-<side>px-tf<version>-f<format>/``
(or ``~/.cache``), one folder per image folder, resize side, TensorFlow version (its decoders
decide the pixels) and file format. Files are named ``<key>-<h>x<w>.u8``, the key a digest of
the image's path in its folder, size and modification time: later runs on the same folder reuse
them, and an image changed since gets a new entry. Entries of images that are gone or changed
are removed when a run keeps a split; entries a run itself maps are never removed by it.

Faults: entries are written whole or not at all (a temporary renamed into place). A full disk
or a cache that cannot be written keeps nothing (what the call wrote is removed again) and the
pipeline reads the image files. An entry that disappears or is cut short while a run uses it
(a user clearing the cache, another run tidying) is read from its image file instead, so no
image is ever dropped. Delete the folder above to free the space (when no run is using it).
"""

import hashlib
import os
import pathlib
import time

import numpy as np

from slimkit.writing import write_bytes_atomically

FORMAT = 1  # of the entries (part of the folder's name)
_SUFFIX = ".u8"
_STALE_TEMPORARY_SECONDS = 3600  # a temporary older than this was left by a crash


def default_directory(root, resize_to):
    """The user-cache folder of ``root``'s images resized to shorter side ``resize_to``."""
    import tensorflow as tf

    from slimkit.data.registry import cache_root

    digest = hashlib.sha1(os.path.realpath(root).encode()).hexdigest()[:16]
    return cache_root() / "image_folders" / (
        f"{digest}-{resize_to}px-tf{tf.__version__}-f{FORMAT}")


def directory_megabytes(directory):
    """MiB of the entries in ``directory`` (0 if it does not exist or cannot be read)."""
    try:
        return sum(size for _, size in _entries(directory).values()) / 2**20
    except OSError:
        return 0.0


class DiskCache:
    """The entries of one image folder's resized images in ``directory``.

    Args:
        root: the image folder (entry keys are paths relative to it).
        resize_to: the shorter side of the resized images.
        directory: where the entries are (default: :func:`default_directory`).
    """

    def __init__(self, root, resize_to, directory=None):
        self.root = pathlib.Path(root)
        self.resize_to = resize_to
        self.directory = pathlib.Path(directory) if directory is not None else \
            default_directory(root, resize_to)

    def plan(self, files):
        """``(stems, present, missing)`` for ``files``: each file's entry key (None if it cannot
        be stat'ed), the complete entries there now ``{stem: (name, bytes)}`` and the files
        without one. Raises OSError if the directory exists but cannot be read."""
        stems = {p: self._stem(p) for p in files}
        present = _entries(self.directory) if self.directory.is_dir() else {}
        missing = [p for p in files if stems[p] not in present]
        return stems, present, missing

    def keep(self, files, budget_bytes, read_resized, before_writing=None):
        """Writes the missing entries of ``files`` (``read_resized(paths)`` yields their resized
        uint8 images in order) if the entries of ``files`` then take at most ``budget_bytes``;
        ``before_writing(n)`` is called first if ``n`` are missing and may fit.

        Returns:
            ``(paths of the entries, their (h, w, 3) shapes)`` in the order of ``files``, or
            ``(None, why)``: over the budget, a file gone or no longer decoding, the directory
            not writable (what this call wrote is removed again).
        """
        import tensorflow as tf

        try:
            stems, present, missing = self.plan(files)
        except OSError as e:
            return None, f"{self.directory} cannot be read ({e.strerror or e})"
        gone = [p for p in files if stems[p] is None]
        if gone:
            return None, f"{gone[0]} is gone since the folder was indexed"
        total = sum(present[stems[p]][1] for p in files if stems[p] in present)
        if total + len(missing) * self.resize_to ** 2 * 3 > budget_bytes:
            return None, "they need more than the budget"
        written = []  # (path, inode) of the entries this call wrote
        try:
            if missing:
                if before_writing is not None:
                    before_writing(len(missing))
                self.directory.mkdir(parents=True, exist_ok=True)
            for path, image in zip(missing, read_resized(missing)):
                total += image.shape.num_elements()
                if total > budget_bytes:
                    raise _OverBudget
                name = f"{stems[path]}-{image.shape[0]}x{image.shape[1]}{_SUFFIX}"
                write_bytes_atomically(self.directory / name, image.numpy().tobytes())
                written.append((self.directory / name, os.stat(self.directory / name).st_ino))
                present[stems[path]] = (name, image.shape.num_elements())
        except (_OverBudget, OSError, tf.errors.OpError) as e:
            for entry, inode in written:  # (not an entry another run wrote since under the name)
                try:
                    if os.stat(entry).st_ino == inode:
                        os.remove(entry)
                except OSError:
                    pass
            if isinstance(e, _OverBudget):
                return None, "they need more than the budget"
            if isinstance(e, OSError):
                return None, f"{self.directory} cannot be written ({e})"
            return None, "an image changed since the folder was indexed and no longer decodes"
        names = [present[stems[p]][0] for p in files]
        shapes = [[int(d) for d in n[:-len(_SUFFIX)].rsplit("-", 1)[1].split("x")] + [3]
                  for n in names]
        return np.array([str(self.directory / n) for n in names]), shapes

    def tidy(self, all_files, in_use):
        """Removes the entries of images no longer among ``all_files`` (or changed since), but
        never those ``in_use`` (entry paths), and temporaries left by a crash. Tidying only:
        errors are ignored."""
        current = {self._stem(p) for p in all_files} | {
            os.path.basename(p).rsplit("-", 1)[0] for p in in_use}
        now = time.time()
        try:
            listing = list(os.scandir(self.directory))
        except OSError:
            return
        for entry in listing:
            try:
                if entry.name.endswith(_SUFFIX):
                    stale = entry.name.rsplit("-", 1)[0] not in current
                else:
                    stale = entry.name.endswith(".tmp") and \
                        now - entry.stat().st_mtime > _STALE_TEMPORARY_SECONDS
                if stale:
                    os.remove(entry.path)
            except OSError:
                pass

    def _stem(self, path):
        """The key of ``path``'s entry: a digest of its path in the folder, size and
        modification time (None if it cannot be stat'ed)."""
        try:
            st = os.stat(path)
        except OSError:
            return None
        key = f"{os.path.relpath(path, self.root)}\0{st.st_size}\0{st.st_mtime_ns}"
        return hashlib.sha1(key.encode("utf-8", "surrogateescape")).hexdigest()[:24]


def read_entry(entry, shape, fallback):
    """Graph code: the image of ``entry`` (a path, uint8 ``shape``), or ``fallback()`` (the image
    decoded from its file) if the entry is missing or not whole."""
    import tensorflow as tf

    exists = tf.size(tf.io.matching_files(entry)) > 0
    contents = tf.cond(exists, lambda: tf.io.read_file(entry), lambda: tf.constant(""))
    whole = tf.equal(tf.cast(tf.strings.length(contents), tf.int64), tf.reduce_prod(shape))
    return tf.cond(whole, lambda: tf.reshape(tf.io.decode_raw(contents, tf.uint8), shape),
                   fallback)


class _OverBudget(Exception):
    pass


def _entries(directory):
    """``{stem: (name, bytes)}`` of the whole entries in ``directory`` (one whose size is not its
    shape's, e.g. cut short by a crash of the machine, does not count)."""
    found = {}
    for entry in os.scandir(directory):
        name = entry.name
        if not name.endswith(_SUFFIX) or "-" not in name:
            continue
        stem, shape = name[:-len(_SUFFIX)].rsplit("-", 1)
        try:
            h, w = (int(d) for d in shape.split("x"))
            size = entry.stat().st_size
        except (ValueError, OSError):
            continue
        if size == h * w * 3:
            found[stem] = (name, size)
    return found
