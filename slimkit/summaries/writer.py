"""TensorBoard writers that never stop a run: a summary that cannot be written is one warning.

    writers = Writers("runs/x", enabled=is_chief)     # one TensorBoard run per sub-folder
    writers["train"].scalars(step, {"loss": 0.31, "accuracy": 0.9})
    writers["test"].image("confusion_matrix", step, confusion_matrix_image(matrix, names))
    writers.close()

Every write goes through :meth:`SummaryWriter.guard`: TensorFlow's ``OpError`` or an ``OSError``
(disk full, file too large, read-only or deleted folder) is logged once per run folder and cause
as a warning on the ``slimkit.summaries`` logger, in :func:`slimkit.writing.write_error_message`'s
words (the folder, the cause, the fix), and training goes on (STYLE rule 8). A disabled writer (a non-chief worker of a multi-worker run) writes nothing.
"""

import contextlib
import errno
import logging
import os
import re

log = logging.getLogger("slimkit.summaries")


class SummaryWriter:
    """The writer of one TensorBoard run folder (``<logdir>/<name>``), created on first write.

    Args:
        folder: The run folder.
        enabled: False makes every method a no-op (non-chief workers).
    """

    def __init__(self, folder, enabled=True):
        self.folder = str(folder)
        self.enabled = enabled
        self._writer = None
        self._warned = set()

    @property
    def tf_writer(self):
        """The underlying ``tf.summary`` writer (created on first use)."""
        import tensorflow as tf

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.folder)
        return self._writer

    @contextlib.contextmanager
    def guard(self, what):
        """Context: a failure to write ``what`` is one warning, not an exception."""
        import tensorflow as tf

        from slimkit.writing import fault_errno, write_error_message

        try:
            yield
        except (tf.errors.OpError, OSError) as e:
            code = fault_errno(e) or _errno_in(e)
            if code:  # (some TensorFlow messages end with the cause but without the "; ")
                e = OSError(code, os.strerror(code))
            cause = code or _cause(e)
            if cause not in self._warned:  # once per folder and cause, not at every step
                self._warned.add(cause)
                log.warning("%s", write_error_message(
                    e, self.folder, "Training goes on without them.",
                    action=f"write TensorBoard {what} to", instead="use a --logdir elsewhere"))

    @contextlib.contextmanager
    def at_step(self, step, what="summaries"):
        """Context: ``tf.summary`` calls inside go to this run at ``step``, guarded, then flushed.

        Yields False (skip the work) when the writer is disabled or cannot be created.
        """
        writer = None
        if self.enabled:
            with self.guard(what):
                writer = self.tf_writer
        if writer is None:
            yield False
            return
        with self.guard(what):
            with writer.as_default(step=int(step)):
                yield True
            writer.flush()

    def scalars(self, step, values, descriptions=None):
        """Writes ``{tag: value}`` scalars at ``step``."""
        import tensorflow as tf

        with self.at_step(step, "scalars") as on:
            if on:
                for tag, value in values.items():
                    tf.summary.scalar(tag, value, description=(descriptions or {}).get(tag))

    def image(self, tag, step, image, description=None, max_outputs=3):
        """Writes one uint8 image (H, W, C) or a batch (n, H, W, C) under ``tag``."""
        import numpy as np
        import tensorflow as tf

        with self.at_step(step, "images") as on:
            if on:
                image = np.asarray(image)
                batch = image[np.newaxis] if image.ndim == 3 else image
                tf.summary.image(tag, batch, step=int(step), max_outputs=max_outputs,
                                 description=description)

    def histograms(self, step, values, descriptions=None):
        """Writes ``{tag: tensor}`` histograms at ``step`` (see :func:`histogram`)."""
        with self.at_step(step, "histograms") as on:
            if on:
                for tag, value in values.items():
                    histogram(tag, value, description=(descriptions or {}).get(tag))

    def text(self, tag, step, markdown):
        """Writes a Markdown text summary."""
        import tensorflow as tf

        with self.at_step(step, "text") as on:
            if on:
                tf.summary.text(tag, markdown, step=int(step))

    def close(self):
        if self._writer is not None:
            with self.guard("summaries"):
                self._writer.close()


def histogram(tag, data, buckets=30, description=None):
    """``tf.summary.histogram`` (the same 30 buckets, the same event) without its memory.

    TensorBoard's own bins each value through a ``one_hot`` of float64: 240 bytes per value, 770
    MB for Deep MNIST's 3.2M-weight fc1 kernel, which doubled a run's peak memory. Here a value
    costs its float64 copy and a bucket index (``bincount``). Non-finite values are left out.
    Call it inside a ``tf.summary`` writer's ``as_default(step=...)``.

    Returns:
        The ``[buckets, 3]`` tensor written: left edge, right edge, count.
    """
    import tensorflow as tf
    from tensorboard.plugins.histogram import metadata

    data = tf.reshape(tf.cast(tf.convert_to_tensor(data), tf.float64), [-1])
    data = tf.boolean_mask(data, tf.math.is_finite(data))
    n = int(tf.size(data))
    if n == 0:
        table = tf.zeros((buckets, 3), tf.float64)
    else:
        low, high = tf.reduce_min(data), tf.reduce_max(data)
        if float(low) == float(high):  # (as TensorBoard: every edge the value, all in the last)
            edges = tf.fill([buckets], low)
            counts = tf.tensor_scatter_nd_update(tf.zeros([buckets], tf.float64),
                                                 [[buckets - 1]], [float(n)])
            table = tf.stack([edges, edges, counts], axis=1)
        else:
            index = tf.cast(tf.floor((data - low) / ((high - low) / buckets)), tf.int32)
            index = tf.clip_by_value(index, 0, buckets - 1)
            counts = tf.math.bincount(index, minlength=buckets, maxlength=buckets,
                                      dtype=tf.float64)
            edges = tf.linspace(low, high, buckets + 1)
            table = tf.stack([edges[:-1], edges[1:], counts], axis=1)
    tf.summary.write(tag, table, metadata=metadata.create_summary_metadata(
        display_name=None, description=description))
    return table


class Writers:
    """The writers of a logdir's runs, by name: ``writers["train"]``, ``writers["test"]``."""

    def __init__(self, logdir, enabled=True):
        self.logdir = str(logdir)
        self.enabled = enabled
        self._writers = {}

    def __getitem__(self, name):
        if name not in self._writers:
            folder = os.path.join(self.logdir, name) if name not in ("", ".") else self.logdir
            self._writers[name] = SummaryWriter(folder, self.enabled)
        return self._writers[name]

    def close(self):
        for writer in self._writers.values():
            writer.close()


_CAUSES = {os.strerror(code): code for code in (
    errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM,
    errno.ENOENT, errno.ENOTDIR, errno.EISDIR)}


def _errno_in(error):
    """The errno whose text ends TensorFlow's message (``... Not a directory [Op:...]``), or None."""
    text = getattr(error, "message", None) or str(error)
    return next((code for cause, code in _CAUSES.items() if cause in text), None)


def _cause(error):
    """The reason of a write error on one line, without TensorFlow's ``{{function_node ...}}`` and
    ``[Op:...]`` wrapping."""
    text = getattr(error, "message", None) or getattr(error, "strerror", None) or str(error)
    text = re.sub(r"\{\{.*?\}\}|\[Op:.*$", "", " ".join(str(text).split())).strip()
    return text[:200] or type(error).__name__
