"""Checks of a training run's settings that a :class:`~slimkit.training.config.TrainConfig` alone
cannot make: combinations that only matter for training (evaluating an old logdir must still
work), and those that depend on the data or on the number of workers.

``train()`` calls them as early as each can run, so that a refused run writes nothing::

    check_training_settings(config)          # before the logdir is touched
    check_startup_delay(config, workers)     # once the strategy is known
    check_loaded_data(config, data, logdir, strategy)  # once the data is loaded, before the model

Every worker of a multi-worker run must refuse together: a worker that goes on while another
stopped waits for it in the next collective op, then reports a lost worker instead of the reason.
Checks that read this worker's own files therefore agree on their outcome (:func:`refuse_together`).
"""

import json


def check_training_settings(config):
    """Refuses settings that would be silently ignored by training.

    Raises:
        ValueError: For ``keep_best`` or ``eval_every_n_steps`` without a validation split
            (MNIST-format data with ``validation_size=0``), or ``checkpoint_exclude_scopes`` without ``checkpoint_path``.
    """
    from slimkit.training.data import FOLDER

    if config.eval_every_n_steps and config.validation_size == 0 and config.dataset != FOLDER:
        raise ValueError("Invalid value for `eval_every_n_steps` with validation_size=0: the "
                         "periodic evaluation runs on the validation split, and this run holds out "
                         "no validation examples. Expected validation_size > 0 (e.g. 5000), or "
                         "eval_every_n_steps unset. Received eval_every_n_steps="
                         f"{config.eval_every_n_steps}, validation_size=0.")
    if config.keep_best and config.validation_size == 0 and config.dataset != FOLDER:
        raise ValueError("Invalid value for `keep_best` with validation_size=0: the best checkpoint "
                         "is chosen by validation accuracy, and this run holds out no validation "
                         "examples. Expected validation_size > 0 (e.g. 5000), or keep_best off. "
                         "Received keep_best=True, validation_size=0.")
    if config.checkpoint_exclude_scopes and not config.checkpoint_path:
        raise ValueError("Invalid value for `checkpoint_exclude_scopes` without `checkpoint_path`: "
                         "it names the scopes NOT restored from --checkpoint-path, and there is "
                         "none to restore from. Expected --checkpoint-path with it, or no "
                         "checkpoint_exclude_scopes. Received checkpoint_exclude_scopes="
                         f"{config.checkpoint_exclude_scopes!r}, checkpoint_path=None.")


def check_startup_delay(config, workers):
    """Refuses TF-Slim's ``startup_delay_steps`` for synchronous training on several workers.

    In TF-Slim the delay only holds back non-chief workers of *asynchronous* training; here every
    worker takes part in every (synchronous) step. On one worker it is a no-op, as in TF-Slim.

    Args:
        config: The run's TrainConfig.
        workers: How many worker processes take part (``distribute.num_workers(strategy)``).
    """
    if config.startup_delay_steps and workers > 1:
        raise ValueError("Invalid value for `startup_delay_steps` with synchronous multi-worker "
                         "training: every worker takes part in every step, so none can start "
                         "later (TF-Slim requires 0 with a sync optimizer too). Expected 0. "
                         f"Received startup_delay_steps={config.startup_delay_steps}.")


def refuse_together(strategy, *checks):
    """Runs ``checks`` (callables that raise ``ValueError`` or ``OSError``, e.g. data files that
    are missing) and agrees on the outcome with all workers.

    The worker whose check failed raises its own error; every other worker raises a ValueError
    saying that another one refused. One small all-reduce (none on a single machine).
    """
    from slimkit.training.distribute import any_worker

    error = None
    for check in checks:
        try:
            check()
        except (ValueError, OSError) as e:
            error = e
            break
    (refused,) = any_worker(strategy, error is not None)
    if error is not None:
        raise error
    if refused:
        raise ValueError("Another worker of this multi-worker run refused to start (its error says "
                         "why), so this one stops too; nothing was written. Expected every worker to "
                         "see the same logdir and data (a shared file system, or the same copy on "
                         "each machine). Fix what that worker reports, then restart all workers.")


def check_loaded_data(config, data, logdir, strategy):
    """The checks of the loaded data, refused on every worker of a multi-worker run together.

    First the workers agree that they loaded the same data (classes, image shape, number of
    training examples, evaluation splits; ``--data-dir`` itself may differ): on other data they
    would build other models or feed other examples in lock-step. Then the logdir's data
    (:func:`~slimkit.training.saved_config.check_same_data`) and the validation split
    (:func:`check_validation_split`), with the outcome agreed (:func:`refuse_together`).

    Args:
        config: The run's TrainConfig.
        data: Its ``slimkit.training.data.TrainingData``.
        logdir: The run's logdir.
        strategy: The run's ``tf.distribute`` strategy.

    Raises:
        ValueError: On every worker, if the workers' data differ or any worker refuses.
    """
    from slimkit.training.distribute import same_on_all_workers
    from slimkit.training.saved_config import check_same_data, data_identity

    identity = {**data_identity(config, data), "eval_splits": list(data.eval_splits)}
    if not same_on_all_workers(strategy, json.dumps(identity, sort_keys=True)):
        raise ValueError(_data_differ_message(config, identity, strategy))
    refuse_together(strategy, lambda: check_same_data(config, data, logdir),
                    lambda: check_validation_split(config, data))


def _data_differ_message(config, identity, strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    me = f"{resolver.task_type} {resolver.task_id}" if resolver is not None else "this worker"
    names = identity["class_names"]
    shown = ", ".join(names[:5]) + (f", ... ({len(names)} in all)" if len(names) > 5 else "")
    where = f" at {config.data_dir}" if config.data_dir else ""
    return (f"The workers' data differ: {me} loaded {identity['dataset']}{where} with "
            f"{identity['num_classes']} classes ({shown}), images of "
            f"{'x'.join(str(d) for d in identity['image_shape'])}, {identity['num_train']} "
            f"training examples and evaluation splits ({', '.join(identity['eval_splits']) or 'none'}), and "
            "another worker loaded other data. Expected the same files on every worker (only "
            "--data-dir may differ): copy the same dataset to every machine, then restart all "
            "workers.")


def check_validation_split(config, data):
    """Refuses ``keep_best``/``eval_every_n_steps`` when the loaded data has no validation split (e.g. an image folder
    too small to hold out any image).

    Args:
        config: The run's TrainConfig.
        data: Its ``slimkit.training.data.TrainingData``.
    """
    setting = ("keep_best" if config.keep_best else
               "eval_every_n_steps" if config.eval_every_n_steps else None)
    if setting and "validation" not in data.eval_splits:
        raise ValueError(f"Invalid value for `{setting}`: the data of this run ({config.dataset}"
                         + (f" at {config.data_dir}" if config.data_dir else "") + ") has no "
                         "validation split to evaluate on. Expected a validation split (an image "
                         "folder: a val/ folder beside train/, or enough images per class to hold "
                         f"10% out), or {setting} off. Received {setting}="
                         f"{getattr(config, setting)}.")
