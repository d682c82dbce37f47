"""Training: configuration, the compiled step, the loop, checkpoints, distribution.

- ``config``: :class:`TrainConfig` (typed, layered: defaults < preset < file < flags), ``presets``.
- ``optimizers``, ``schedules``: optimizers and learning-rate schedules by name.
- ``step``: :func:`make_train_step`, k compiled steps per call.
- ``loop``: :func:`train`, TF-Slim's loop (restore, step, summarize, checkpoint, stop).
- ``checkpoints``, ``ema``, ``data``, ``progress``, ``runtime``, ``triggers``: the loop's parts.
- ``checks``, ``saved_config``: settings refused before a run writes anything; the logdir's
  ``config.json`` (settings and data identity) and the checks a resumed run must pass.
- ``distribute``, ``lock``, ``nonfinite``, ``finetune``: distribution and robustness helpers.

Submodules are imported on use (``slimkit.train`` imports TensorFlow; this package does not).
"""
