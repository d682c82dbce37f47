"""Checkpoints of a training run: everything needed to continue *exactly* where it stopped.

One ``tf.train.Checkpoint`` holds

- ``model``: the weights (Keras layers are tracked by TensorFlow's checkpointing);
- ``optimizer``: its slots and ``iterations``, which drive the learning-rate schedule;
- ``global_step``: Slim's step counter (int64), also the checkpoint number (``ckpt-1000``);
- ``data_position``: the training feed's ``(epoch, offset)``, so the next batch is the same;
- ``rng``: the state of every Keras ``SeedGenerator`` in the model (dropout masks). Keras 3 lists
  them in ``layer.variables`` but TensorFlow's checkpoint does not reach them through the model
  (verified with TF 2.21 / Keras 3.15), so they are saved explicitly;
- ``ema``: the moving-average shadow weights, when ``ema_decay`` is set.

``tf.train.CheckpointManager`` writes ``ckpt-N.index`` / ``ckpt-N.data-00000-of-00001`` and the
``checkpoint`` state file into the logdir and keeps the last ``keep``. With ``keep_best`` a second
manager keeps the checkpoint of the best validation accuracy in ``<logdir>/best/`` with
``best.json`` (step and accuracy).

A checkpoint that cannot be read (truncated by a full disk, cut short in a copy) is reported as a
``ValueError`` naming it and the previous checkpoint to resume from instead; nothing is deleted.
One that this user may not read is a ``PermissionError`` naming the file
(:func:`read_errors_reported`, shared with warm starts).

A checkpoint that cannot be *written* (no space left, a file-size limit, no permission, a
read-only file system) is a :class:`~slimkit.writing.WriteFaultError` from :meth:`Checkpoints.save`
or :meth:`Checkpoints.save_best`, the one place that handles it: the half-written checkpoint
(``ckpt-N_temp/``, ``ckpt-N.*`` not yet in the ``checkpoint`` state file, the state file's own
temporary) is removed, and the message names it, the cause, the fix and the intact checkpoint the
logdir resumes from (TensorFlow updates the state file only once a checkpoint's files are complete,
so that is the state file's newest). The run must end there: training on without checkpoints would
silently lose work. The temporary folders of a save killed midway (SIGKILL, power loss) are
removed by the next run's :meth:`Checkpoints.restore`.
"""

import contextlib
import glob
import json
import os
import pathlib
import shutil

import tensorflow as tf

from slimkit import writing

BEST_DIR = "best"


def seed_states(model):
    """The state variables of the model's random seed generators (dropout), in layer order.

    Keras 3 keeps them among the model's non-trainable variables; they are the integer ones.
    """
    return [v for v in model.non_trainable_variables if not tf.as_dtype(v.dtype).is_floating]


class RunState(tf.Module):
    """The run's own counters, created under the strategy's scope and saved with the model."""

    def __init__(self, model):
        super().__init__(name="run_state")
        self.global_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
        self.data_position = tf.Variable([0, 0], dtype=tf.int64, trainable=False,
                                         name="data_position")  # (epoch, offset)
        self.rng = tf.Module(name="rng")
        self.rng.states = list(seed_states(model))


def make_checkpoint(model, optimizer, state, ema=None):
    """The ``tf.train.Checkpoint`` of a run (see the module docstring for its content)."""
    objects = dict(model=model, optimizer=optimizer, global_step=state.global_step,
                   data_position=state.data_position, rng=state.rng)
    if ema is not None:
        objects["ema"] = ema
    return tf.train.Checkpoint(**objects)


class Checkpoints:
    """Saving and restoring a run's checkpoints in its logdir.

    Args:
        checkpoint: From :func:`make_checkpoint`.
        state: The :class:`RunState` (its ``global_step`` numbers the checkpoints).
        directory: Where to write: the logdir (chief) or a worker's scratch directory.
        keep: How many recent checkpoints to keep.
        keep_best: Also keep the best checkpoint by validation accuracy in ``directory/best``.

    Example:
        >>> checkpoints = Checkpoints(make_checkpoint(model, optimizer, state), state, "runs/x")
        >>> checkpoints.restore()            # None on a fresh logdir
        >>> checkpoints.save()
        'runs/x/ckpt-0'
    """

    def __init__(self, checkpoint, state, directory, keep=5, keep_best=False):
        self.checkpoint = checkpoint
        self.state = state
        self.directory = str(directory)
        self.manager = tf.train.CheckpointManager(checkpoint, self.directory, max_to_keep=keep,
                                                  checkpoint_name="ckpt")
        self.best_manager = None
        if keep_best:
            self.best_manager = tf.train.CheckpointManager(
                checkpoint, os.path.join(self.directory, BEST_DIR), max_to_keep=1,
                checkpoint_name="ckpt")

    @property
    def latest(self):
        """Path prefix of the newest checkpoint, or None."""
        return self.manager.latest_checkpoint

    def restore(self):
        """Restores the newest checkpoint, if any; returns its path or None.

        Objects absent from an older checkpoint (e.g. EMA weights when ``ema_decay`` was just
        turned on) keep their fresh values; :func:`has_object` tells which. The temporary folders
        and files of a save that was killed midway are removed first (the process that owns the
        logdir calls this, under its lock).
        """
        for directory in (self.directory, os.path.join(self.directory, BEST_DIR)):
            _remove_temporaries(directory)
        path = self.manager.latest_checkpoint
        if path is None:
            return None
        restore_checkpoint(self.checkpoint, path, self.manager.checkpoints)
        return path

    def save(self, step=None):
        """Writes a checkpoint numbered by the global step; returns its path.

        Raises:
            slimkit.writing.WriteFaultError: If it cannot be written (see the module docstring):
                its partial files are removed; the message names it, the cause, the fix and the
                checkpoint the logdir resumes from. End the run: this object's bookkeeping may no
                longer match the disk.
        """
        step = int(self.state.global_step.numpy()) if step is None else step
        if self.manager.latest_checkpoint and self.manager.latest_checkpoint.endswith(f"-{step}"):
            return self.manager.latest_checkpoint  # this step is already saved
        with self._write_faults_reported(self.directory, step):
            return self.manager.save(checkpoint_number=step)

    def best_accuracy(self):
        """The best validation accuracy saved so far (from ``best/best.json``), or None."""
        path = pathlib.Path(self.directory, BEST_DIR, "best.json")
        if not path.is_file():
            return None
        return json.loads(path.read_text())["accuracy"]

    def save_best(self, accuracy, step, agree=None):
        """Saves into ``best/`` if ``accuracy`` beats the best so far; returns True if it did.

        Args:
            accuracy: The validation accuracy of the current weights.
            step: The global step (the checkpoint's number).
            agree: Turns this process's decision (a bool) into the one to act on. A multi-worker
                run passes the chief's decision to every worker (``distribute.chief_decides``): a
                non-chief's own ``best.json`` is in a scratch directory that a restarted process
                does not have, and a save may be a collective operation, so all save or none does.
        """
        if self.best_manager is None:
            return False
        best = self.best_accuracy()
        better = best is None or accuracy > best
        if not (agree(better) if agree is not None else better):
            return False
        directory = os.path.join(self.directory, BEST_DIR)
        path = os.path.join(directory, f"ckpt-{step}")  # what best_manager.save names it
        text = json.dumps({"accuracy": accuracy, "step": step, "checkpoint": path}) + "\n"
        with self._write_faults_reported(directory, step):
            os.makedirs(directory, exist_ok=True)
        # best.json is written first and renamed onto the old one last, so that a full disk leaves
        # best/ and best.json as they were (best_manager's save deletes the previous best).
        with writing.replaced_atomically(os.path.join(directory, "best.json"), text,
                                         self._stopped(step, "with best/ unchanged"),
                                         instead=_INSTEAD):
            with self._write_faults_reported(directory, step):
                self.best_manager.save(checkpoint_number=step)
        return True

    @contextlib.contextmanager
    def _write_faults_reported(self, directory, step):
        """Context: a failed write of ``<directory>/ckpt-<step>`` as one WriteFaultError (see
        :meth:`save`); any other error is re-raised, the partial files removed all the same."""
        try:
            yield
        except (tf.errors.OpError, OSError) as e:
            prefix = os.path.join(directory, f"ckpt-{step}")
            complete, removed, left = _remove_unfinished(prefix)
            if complete:
                what = "after writing this checkpoint (the fault came once its files were complete)"
            elif left:
                what = (f"without this checkpoint (its partial files could not be removed: remove "
                        f"{', '.join(left)} once you can)")
            elif removed:
                what = "without this checkpoint (its partial files were removed)"
            else:
                what = "without this checkpoint (nothing of it was written)"
            fault = writing.write_fault(e, prefix, self._stopped(step, what),
                                        action="write the checkpoint", instead=_INSTEAD)
            if fault is None:
                raise
            raise fault from None

    def _stopped(self, step, what):
        """The end of a write fault's message: the run stopped, and what the logdir resumes from."""
        return f"Training stopped at step {step} {what}; {resume_sentence(self.directory)}"


_INSTEAD = "use a --logdir elsewhere"  # the way round a write fault in the logdir


def resume_sentence(logdir):
    """What ``logdir`` resumes from, for the message of a write fault: one sentence.

    Example:
        >>> resume_sentence("runs/new")
        'the logdir holds no checkpoint yet, so the same command starts it afresh.'
    """
    path = tf.train.latest_checkpoint(str(logdir))  # the state file's newest, if its files exist
    if path is None:
        return "the logdir holds no checkpoint yet, so the same command starts it afresh."
    return (f"the logdir resumes from its intact checkpoint {path} (step {_number(path)}) when the "
            "same command runs again.")


def _remove_unfinished(prefix):
    """Removes what a failed save of checkpoint ``prefix`` left.

    Returns:
        ``(complete, removed, left)``: whether the state file names ``prefix`` as its newest
        checkpoint (TensorFlow writes that only once the checkpoint's files are complete, so the
        fault came later, e.g. deleting the oldest checkpoint: its files are kept); whether
        anything was removed; the paths that could not be removed.
    """
    directory = os.path.dirname(prefix)
    state = tf.train.get_checkpoint_state(directory) if os.path.isdir(directory) else None
    complete = state is not None and \
        os.path.abspath(state.model_checkpoint_path) == os.path.abspath(prefix)
    pattern = glob.escape(prefix)
    files = [] if complete else glob.glob(pattern + ".index") + glob.glob(pattern + ".data-*")
    removed, left = _remove(files)
    temporaries_removed, temporaries_left = _remove_temporaries(directory)
    return complete, removed or temporaries_removed, left + temporaries_left


def _remove_temporaries(directory):
    """Removes the temporaries of unfinished saves in ``directory``.

    They are TensorFlow's: the ``ckpt-N_temp/`` folder a checkpoint's files are written into before
    they are merged into ``ckpt-N.*``, and the ``checkpoint.tmp<random>`` file the state file is
    written to before it is renamed. Only the logdir's owner (under its lock) may call this.

    Returns:
        ``(whether anything was removed, the paths that could not be removed)``.
    """
    folder = glob.escape(directory)
    return _remove(glob.glob(os.path.join(folder, "ckpt-*_temp")) +
                   glob.glob(os.path.join(folder, "checkpoint.tmp*")))


def _remove(paths):
    """Removes files and folders; returns ``(whether any was removed, those that remain)``."""
    for path in paths:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.remove(path)
    left = [path for path in paths if os.path.lexists(path)]
    return len(left) < len(paths), left


def restore_checkpoint(checkpoint, path, kept=()):
    """``checkpoint.restore(path)``, with a corrupt file reported as one clear ``ValueError``.

    Args:
        checkpoint: A ``tf.train.Checkpoint``.
        path: The checkpoint prefix, e.g. ``runs/x/ckpt-1000``.
        kept: The logdir's checkpoints, oldest first (to name the one before ``path``).

    Raises:
        ValueError: If the files of ``path`` are unreadable (TensorFlow raises ``IndexError`` for
            a truncated data file and ``OpError`` for a damaged index); the message names the file,
            and says how to resume from the previous checkpoint without deleting anything.
        PermissionError: If one of its files may not be read by this user (naming it).
    """
    with read_errors_reported(path, lambda reason: _corrupt_message(path, reason, kept)):
        checkpoint.restore(path).expect_partial()


@contextlib.contextmanager
def read_errors_reported(path, corrupt_message):
    """Context: an error reading the checkpoint or ``.weights.h5`` file ``path`` as one clear error.

    TensorFlow raises ``OpError`` for a damaged index and ``IndexError`` for a truncated data file;
    h5py raises ``OSError`` for a file that is not HDF5. A missing file stays a FileNotFoundError.

    Args:
        path: The checkpoint prefix, a logdir, or a weights file.
        corrupt_message: ``corrupt_message(reason) -> str``, the ValueError's message for a file
            that is corrupt or incomplete (``reason``: the underlying error, on one line).

    Raises:
        PermissionError: If a file exists but this user may not read it (naming it): that is no
            corruption, and the fix is the file's permissions.
        ValueError: With ``corrupt_message(reason)`` for any other error reading the files.
    """
    try:
        yield
    except FileNotFoundError:
        raise
    except (tf.errors.OpError, IndexError, OSError) as e:
        denied = [f for f in _files_of(path) if os.path.exists(f) and not _may_read(f)]
        if denied or isinstance(e, (PermissionError, tf.errors.PermissionDeniedError)):
            name = denied[0] if denied else os.fspath(path)
            # (One argument: `slimkit` prints the message as it is, on one line.)
            raise PermissionError(f"Cannot read {name}: permission denied. Expected a checkpoint "
                                  "or weights file this user can read. Give read permission "
                                  f"(e.g. `chmod a+r {name}`) or run as a user who may read "
                                  "it.") from None
        reason = " ".join((getattr(e, "message", None) or str(e) or type(e).__name__).split())
        raise ValueError(corrupt_message(reason)) from None


def _files_of(path):
    """The files that reading ``path`` (a prefix, a logdir, a weights file) may open."""
    path = os.fspath(path)
    if os.path.isfile(path):
        return [path]
    prefix = path
    if os.path.isdir(path):
        state = os.path.join(path, "checkpoint")
        if os.path.exists(state) and not _may_read(state):
            return [state]
        prefix = tf.train.latest_checkpoint(path) or os.path.join(path, "?")
    return [prefix + ".index", *sorted(tf.io.gfile.glob(prefix + ".data-*"))]


def _may_read(path):
    # As open() does: by the effective user (a set-uid process differs from its real user).
    return os.access(path, os.R_OK, effective_ids=os.access in os.supports_effective_ids)


def logdir_checkpoints(logdir):
    """The checkpoints listed in ``<logdir>/checkpoint``, oldest first (``[]`` if none)."""
    state = tf.train.get_checkpoint_state(str(logdir))
    return list(state.all_model_checkpoint_paths) if state is not None else []


def _corrupt_message(path, reason, kept):
    directory, name = os.path.split(path)
    earlier = [p for p in kept if p != path and tf.io.gfile.exists(p + ".index")]
    earlier = [p for p in earlier if _number(p) < _number(path)]
    state = os.path.join(directory, "checkpoint")
    if earlier:
        previous = earlier[-1]
        fix = (f"To resume from the previous checkpoint, {previous}, edit {state} so that it reads "
               f"model_checkpoint_path: \"{os.path.basename(previous)}\" and move {name}.* out of "
               "the logdir; or train into another --logdir.")
    else:
        fix = (f"There is no earlier checkpoint in {directory}: train into another --logdir (or "
               f"move its ckpt-* files and {state} away to start it afresh).")
    return (f"Cannot restore checkpoint {path}: its files are corrupt or incomplete ({reason}). "
            f"Nothing in the logdir was changed or deleted. {fix}")


def _number(path):
    tail = str(path).rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def has_object(checkpoint_path, name):
    """True if the checkpoint at ``checkpoint_path`` holds variables under ``name/``."""
    return any(key.startswith(f"{name}/") for key, _ in tf.train.list_variables(checkpoint_path))


def latest_checkpoint(logdir_or_checkpoint):
    """The checkpoint path of a logdir (its newest) or of a given prefix; None if there is none.

    Example:
        >>> latest_checkpoint("runs/lenet")
        'runs/lenet/ckpt-20000'
    """
    path = str(logdir_or_checkpoint)
    if os.path.isdir(path):
        return tf.train.latest_checkpoint(path)
    if tf.io.gfile.exists(path + ".index"):
        return path
    return None
