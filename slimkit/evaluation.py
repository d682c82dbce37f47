"""Evaluate a trained model: once, or every new checkpoint of a running training job.

    >>> metrics = slimkit.evaluate("runs/deep-mnist-fast")          # the logdir's newest checkpoint
    >>> metrics["accuracy"], metrics["top5_accuracy"], metrics["split"], metrics["global_step"]
    (0.9931, 0.9999, 'test', 704)
    >>> metrics["per_class_accuracy"][7], metrics["confusion_matrix"][7][2]   # 7s taken for 2s
    (0.9903, 4)

The run is loaded by :func:`slimkit.runs.load_run` (model rebuilt from ``config.json`` in the
run's precision, checkpoint restored, moving-average weights where the run kept them, as TF-Slim's
``eval_image_classifier.py --moving_average_decay`` does) and evaluated by
:func:`slimkit.metrics.evaluate_model`, the function the training loop reports its accuracy
with: what ``eval`` computes for a checkpoint is what training reported for it.

Results go to TensorBoard as the run ``<logdir>/eval_<split>`` at the checkpoint's global step:
the scalars ``accuracy``, ``loss`` and ``top5_accuracy`` and the image ``confusion_matrix``; a
summary that cannot be written is a warning, not an error. ``watch`` is Slim's
``evaluation_loop``: it evaluates each new checkpoint as training writes it.
"""

import os
import time

from slimkit.metrics import evaluate_model


def evaluate(logdir_or_checkpoint, split=None, data_dir=None, batch_size=500, use_ema=True,
             summaries=True):
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
        summaries: Write the results to TensorBoard (``<logdir>/eval_<split>``).

    Returns:
        A dict: ``accuracy``, ``loss`` (mean cross entropy), ``top5_accuracy`` (more than 5
        classes), ``per_class_accuracy`` and ``confusion_matrix`` (``[true][predicted]`` counts),
        by class id, ``class_names``, ``num_examples``, ``split``, ``global_step``,
        ``checkpoint``, ``model``, ``ema`` (whether EMA weights were used), ``precision`` and
        ``seconds``.

    Raises:
        FileNotFoundError: If there is no checkpoint or no ``config.json``.
        ValueError: For an unknown split, or a checkpoint that cannot be loaded (see
            :func:`slimkit.runs.load_run`).

    Example:
        >>> evaluate("runs/mnist-softmax-tutorial")["accuracy"] > 0.9
        True
    """
    from slimkit.runs import load_run

    _check_batch_size(batch_size)
    run = load_run(logdir_or_checkpoint, data_dir=data_dir, use_ema=use_ema)
    writers = _writers(run) if summaries else None
    try:
        return evaluate_run(run, split, batch_size, writers)
    finally:
        if writers is not None:
            writers.close()


def watch(logdir, split=None, data_dir=None, batch_size=500, use_ema=True, timeout=None,
          interval=10.0):
    """Yields the metrics of each new checkpoint of ``logdir`` as it appears (Slim's eval loop).

    Results are also written to TensorBoard, ``<logdir>/eval_<split>``.

    Args:
        logdir: The training run's logdir.
        timeout: Stop after this many seconds without a new checkpoint (None: wait forever).
        interval: Seconds between looks for a new checkpoint.

    Example:
        >>> for metrics in watch("runs/lenet", timeout=600):
        ...     print(metrics["global_step"], metrics["accuracy"])
    """
    import tensorflow as tf

    from slimkit.runs import load_run

    _check_batch_size(batch_size)
    run = load_run(logdir, data_dir=data_dir, at_init=True, use_ema=use_ema)  # built once
    writers = _writers(run)
    if timeout is not None:
        interval = min(interval, timeout)
    try:
        for checkpoint in tf.train.checkpoints_iterator(str(logdir), min_interval_secs=interval,
                                                        timeout=timeout):
            run.restore(checkpoint)
            yield evaluate_run(run, split, batch_size, writers)
    finally:
        writers.close()


def evaluate_run(run, split=None, batch_size=500, writers=None):
    """Evaluates a loaded :class:`~slimkit.runs.Run` (see :func:`evaluate` for the result).

    Args:
        run: From :func:`slimkit.runs.load_run`.
        split: As for :func:`evaluate`.
        batch_size: Evaluation batch size.
        writers: A :class:`slimkit.summaries.writer.Writers` of the logdir, or None (no
            TensorBoard).
    """
    data = run.data()
    split = split_name(split, data)
    if split not in data.eval_splits:
        raise ValueError(f"Invalid value for argument `split`. Expected one of "
                         f"{', '.join(data.eval_splits)} for this dataset. Received split={split!r}.")
    from slimkit.summaries.evaluation import GALLERY_SIZE, write_evaluation

    start = time.monotonic()
    metrics = evaluate_model(run.model, data.eval_batches(split, batch_size), run.num_classes,
                             keep_misclassified=GALLERY_SIZE if writers is not None else 0)
    metrics.update(split=split, global_step=run.global_step, checkpoint=run.checkpoint,
                   model=run.config.model, ema=run.ema, precision=run.precision,
                   class_names=list(run.class_names), seconds=round(time.monotonic() - start, 2))
    if writers is not None:  # as training writes its evaluations (gallery included)
        write_evaluation(writers[f"eval_{split}"], run.global_step, metrics, run.class_names,
                         about=f"the {split} split, {metrics['checkpoint']}")
    metrics.pop("misclassified", None)  # (images: not for --json)
    return metrics


def split_name(split, data):
    """The split to evaluate: ``split`` (``val`` means ``validation``), else the final one's."""
    if split is None:
        return data.final_split
    return {"val": "validation"}.get(split, split)


def _check_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"Invalid value for `batch_size`. Expected a strictly positive integer. "
                         f"Received batch_size={batch_size!r}.")


def _writers(run):
    from slimkit.summaries.writer import Writers

    return Writers(os.fspath(run.logdir))
