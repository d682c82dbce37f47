"""Evaluate a trained model: once, or every new checkpoint of a running training job.

    >>> metrics = slimkit.evaluate("runs/deep-mnist-fast")          # the logdir's newest checkpoint
    >>> metrics["accuracy"], metrics["split"], metrics["global_step"]
    (0.9931, 'test', 2149)

The model is rebuilt from the run's ``config.json`` (model, dataset, number of classes, precision)
and restored from the checkpoint; if the run kept moving-average weights (``ema_decay``), those are
evaluated, as TF-Slim's ``eval_image_classifier.py`` does with ``--moving_average_decay``.
``watch`` is Slim's ``evaluation_loop``: it evaluates each new checkpoint as training writes it
and adds the results to TensorBoard (``<logdir>/eval_<split>``).
"""

import os
import pathlib
import time

from slimkit.metrics import evaluate_model


def evaluate(logdir_or_checkpoint, split=None, data_dir=None, batch_size=500, use_ema=True):
    """Evaluates a training run's checkpoint on a split of its dataset.

    Args:
        logdir_or_checkpoint: A logdir (its newest checkpoint is used) or a checkpoint prefix such
            as ``runs/lenet/ckpt-2000``; its directory (or the one above, for ``best/``) must
            hold the run's ``config.json``.
        split: ``"test"`` or ``"validation"``; default: the split training ends with (``test``,
            or ``validation`` for an image folder, which has no test split).
        data_dir: Where the dataset is, if not where the run read it from.
        batch_size: Evaluation batch size.
        use_ema: Evaluate the moving-average weights when the checkpoint has them.

    Returns:
        A dict with ``accuracy``, ``loss``, ``num_examples``, ``split``, ``global_step``,
        ``checkpoint`` and ``ema`` (whether EMA weights were used).

    Raises:
        FileNotFoundError: If there is no checkpoint or no ``config.json``.
        ValueError: For an unknown split.

    Example:
        >>> evaluate("runs/mnist-softmax-tutorial")["accuracy"] > 0.9
        True
    """
    checkpoint, config = _checkpoint_and_config(logdir_or_checkpoint, data_dir)
    model, data, ema = _build_for_eval(config)
    return _evaluate_checkpoint(model, data, ema, checkpoint, split, batch_size, use_ema)


def watch(logdir, split=None, data_dir=None, batch_size=500, use_ema=True, timeout=None,
          interval=10.0):
    """Yields the metrics of each new checkpoint of ``logdir`` as it appears (Slim's eval loop).

    Results are also written as TensorBoard scalars to ``<logdir>/eval_<split>``.

    Args:
        logdir: The training run's logdir.
        timeout: Stop after this many seconds without a new checkpoint (None: wait forever).
        interval: Seconds between looks for a new checkpoint.

    Example:
        >>> for metrics in watch("runs/lenet", timeout=600):
        ...     print(metrics["global_step"], metrics["accuracy"])
    """
    import tensorflow as tf

    _, config = _checkpoint_and_config(logdir, data_dir, need_checkpoint=False)
    model, data, ema = _build_for_eval(config)
    split = _split_name(split, data)
    writer = tf.summary.create_file_writer(os.path.join(str(logdir), f"eval_{split}"))
    if timeout is not None:
        interval = min(interval, timeout)
    for checkpoint in tf.train.checkpoints_iterator(str(logdir), min_interval_secs=interval,
                                                    timeout=timeout):
        metrics = _evaluate_checkpoint(model, data, ema, checkpoint, split, batch_size, use_ema)
        with writer.as_default(step=metrics["global_step"]):
            tf.summary.scalar("accuracy", metrics["accuracy"])
            tf.summary.scalar("loss", metrics["loss"])
        writer.flush()
        yield metrics


def _split_name(split, data):
    if split is None:
        return data.eval_splits[-1] if data.eval_splits else "test"
    return {"val": "validation"}.get(split, split)


def _checkpoint_and_config(path, data_dir, need_checkpoint=True):
    from slimkit.training.checkpoints import BEST_DIR, latest_checkpoint
    from slimkit.training.config import TrainConfig
    from slimkit.training.saved_config import load_saved_config

    path = pathlib.Path(path)
    checkpoint = latest_checkpoint(path)
    if checkpoint is None and need_checkpoint:
        raise FileNotFoundError(f"No checkpoint found at {path}. Expected a logdir written by "
                                "`slimkit train` (holding a `checkpoint` file) or a checkpoint "
                                "prefix such as runs/lenet/ckpt-2000.")
    folder = path if path.is_dir() else path.parent
    if folder.name == BEST_DIR and not (folder / "config.json").is_file():
        folder = folder.parent
    saved = load_saved_config(folder)
    if saved is None:
        raise FileNotFoundError(f"No config.json in {folder}: it is needed to rebuild the model. "
                                "Expected the logdir of a `slimkit train` run.")
    if data_dir is not None:
        saved["data_dir"] = str(data_dir)
    return checkpoint, TrainConfig(**saved)


def _build_for_eval(config):
    from slimkit.models.registry import get_model_spec
    from slimkit.training.data import load_training_data
    from slimkit.training.ema import ExponentialMovingAverage
    from slimkit.training.loop import build_model
    from slimkit.training.runtime import choose_precision, precision_policy

    precision, _ = choose_precision(config.precision, config.model)
    data = load_training_data(config, get_model_spec(config.model).input_shape, train_feed=False)
    with precision_policy(precision):  # as in training; the caller's policy is left alone
        model = build_model(config, data)
    ema = ExponentialMovingAverage(model, config.ema_decay) if config.ema_decay else None
    return model, data, ema


def _evaluate_checkpoint(model, data, ema, checkpoint, split, batch_size, use_ema):
    import contextlib

    import tensorflow as tf

    from slimkit.training.checkpoints import has_object

    split = _split_name(split, data)
    if split not in data.eval_splits:
        raise ValueError(f"Invalid value for argument `split`. Expected one of "
                         f"{', '.join(data.eval_splits)} for this dataset. Received split={split!r}.")
    objects = {"model": model}
    with_ema = bool(use_ema and ema is not None and has_object(checkpoint, "ema"))
    if with_ema:
        objects["ema"] = ema
    global_step = tf.Variable(0, dtype=tf.int64)
    tf.train.Checkpoint(global_step=global_step, **objects).restore(checkpoint).expect_partial()
    swap = ema.swapped_in() if with_ema else contextlib.nullcontext()
    start = time.monotonic()
    with swap:
        metrics = evaluate_model(model, data.eval_batches(split, batch_size))
    metrics.update(split=split, global_step=int(global_step.numpy()), checkpoint=checkpoint,
                   ema=with_ema, seconds=round(time.monotonic() - start, 2))
    return metrics
