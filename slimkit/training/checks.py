"""Checks of a training run's settings that a :class:`~slimkit.training.config.TrainConfig` alone
cannot make: combinations that only matter for training (evaluating an old logdir must still
work), and those that depend on the data or on the number of workers.

``train()`` calls them as early as each can run, so that a refused run writes nothing::

    check_training_settings(config)          # before the logdir is touched
    check_startup_delay(config, workers)     # once the strategy is known
    check_validation_split(config, data)     # once the data is loaded, before restoring
"""


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
