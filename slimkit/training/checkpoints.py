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
"""

import json
import os
import pathlib

import tensorflow as tf

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
        turned on) keep their fresh values; :func:`has_object` tells which.
        """
        path = self.manager.latest_checkpoint
        if path is None:
            return None
        restore_checkpoint(self.checkpoint, path, self.manager.checkpoints)
        return path

    def save(self, step=None):
        """Writes a checkpoint numbered by the global step; returns its path."""
        step = int(self.state.global_step.numpy()) if step is None else step
        if self.manager.latest_checkpoint and self.manager.latest_checkpoint.endswith(f"-{step}"):
            return self.manager.latest_checkpoint  # this step is already saved
        return self.manager.save(checkpoint_number=step)

    def best_accuracy(self):
        """The best validation accuracy saved so far (from ``best/best.json``), or None."""
        path = pathlib.Path(self.directory, BEST_DIR, "best.json")
        if not path.is_file():
            return None
        return json.loads(path.read_text())["accuracy"]

    def save_best(self, accuracy, step):
        """Saves into ``best/`` if ``accuracy`` beats the best so far; returns True if it did."""
        if self.best_manager is None:
            return False
        best = self.best_accuracy()
        if best is not None and accuracy <= best:
            return False
        path = self.best_manager.save(checkpoint_number=step)
        info = pathlib.Path(self.directory, BEST_DIR, "best.json")
        tmp = info.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({"accuracy": accuracy, "step": step, "checkpoint": path}) + "\n")
        os.replace(tmp, info)
        return True


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
    """
    try:
        checkpoint.restore(path).expect_partial()
    except (tf.errors.OpError, IndexError) as e:
        raise ValueError(_corrupt_message(path, e, kept)) from None


def _corrupt_message(path, error, kept):
    reason = " ".join((getattr(error, "message", None) or str(error) or type(error).__name__).split())
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
