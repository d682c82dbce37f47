"""`train(config)`: TF-Slim's training loop on TensorFlow 2 — restore, step, summarize, checkpoint, stop.

    >>> import slimkit
    >>> metrics = slimkit.train(slimkit.TrainConfig.from_sources("mnist-softmax-tutorial"))
    test accuracy: 0.9147
    >>> metrics["test_accuracy"]
    0.9147

A logdir with a checkpoint is resumed: model, optimizer (and so the learning-rate schedule), global
step, data position, dropout seeds and EMA weights, so the resumed run continues exactly where the
first one stopped (``tests/training/test_resume.py`` kills runs with SIGKILL to show it). A run
that has already reached its ``steps`` exits at once, saying so. A run refused at start-up (bad
settings, other data than the logdir's, an unreadable checkpoint) writes nothing: ``config.json``
is saved only once the restore succeeded.

Stopping: ``steps`` reached; ``max_time`` spent (checkpoint, evaluate, return); SIGINT/SIGTERM
(checkpoint, return at once); a non-finite loss (:class:`NonFiniteLossError`, nothing saved: the
last checkpoint stays the newest, the logdir resumable); a checkpoint, ``config.json`` or lock file
that cannot be written (:class:`~slimkit.writing.WriteFaultError`, raised by the writer itself:
partial files removed, the lock released, the intact checkpoint named).
"""

import contextlib
import dataclasses
import json
import math
import os
import shutil
import sys
import time

from slimkit.runs import build_model
from slimkit.training.config import TrainConfig, check_keys


class NonFiniteLossError(RuntimeError):
    """The loss or the gradients became NaN or infinite; the message says where and why."""


def train(config, train_step_fn=None, log_stream=None):
    """Trains ``config.model`` on ``config.dataset``, writing checkpoints and summaries to its logdir.

    Args:
        config: A :class:`~slimkit.training.config.TrainConfig` (or a dict of its fields).
        train_step_fn: Replaces :func:`slimkit.training.step.make_train_step`, with the same
            signature ``train_step_fn(model, loss_fn, optimizer, strategy, options) -> step``,
            where ``step(images, labels)`` runs ``k`` steps on ``(k, B, ...)`` batches and returns
            a dict of tensors ``loss_sum``, ``accuracy_sum`` (sums over the steps run) and
            ``steps`` (how many ran, < k only on a non-finite loss, which must not be applied),
            and increments ``options.global_step`` once per step. Wrap the default one to add to
            it, e.g. ``lambda *a: my_wrapper(make_train_step(*a))``.
        log_stream: Where progress and the final line go (default: stdout).

    Returns:
        A dict of final metrics: ``test_accuracy`` and ``test_loss`` (``validation_*`` for an
        image folder), ``global_step``, ``train_loss``, ``train_accuracy``,
        ``examples_per_sec``, ``precision``, ``checkpoint``, ``logdir``, ``seconds``,
        ``train_seconds`` (the loop alone: steps, summaries, checkpoints) and ``stopped``
        (``"steps"``, ``"max_time"``, ``"SIGINT"``/``"SIGTERM"`` or ``"already_done"``).

    Raises:
        ValueError: For a bad setting, a logdir that holds another model's or dataset's run (or a
            run on other classes, image shape or training examples), a checkpoint that cannot be
            read, or workers of a multi-worker run that loaded different data (every worker
            raises a refusal together).
        PermissionError: If a checkpoint file may not be read by this user.
        slimkit.writing.WriteFaultError: If a checkpoint, ``config.json`` or the lock file cannot
            be written (no space left, a file-size limit, no permission, a read-only file
            system); the message names the file, the cause, the fix and the checkpoint the logdir
            resumes from.
        NonFiniteLossError: If the loss or the gradients stop being finite.
        slimkit.training.distribute.WorkerLostError: If a worker of a multi-worker run dies; the
            message names the logdir's intact checkpoint and says to restart all workers.
        slimkit.training.lock.LogdirLockedError: If another process trains into the logdir.
    """
    started = time.monotonic()
    if not isinstance(config, TrainConfig):
        check_keys(dict(config), "the configuration passed to train()")
        config = TrainConfig(**dict(config))
    if not config.model:
        raise ValueError("No model to train. Expected a model name (see `slimkit models`) or a "
                         "preset that names one (--preset). Received model=None.")
    _check_names(config)  # a typo is reported before anything is created in the logdir
    from slimkit.training.checks import check_training_settings

    check_training_settings(config)
    runtime = _setup_runtime(config, log_stream or sys.stdout)  # before TensorFlow starts
    from slimkit.models.registry import get_model_spec
    from slimkit.training.checks import check_loaded_data, refuse_together
    from slimkit.training.data import load_training_data
    from slimkit.training.distribute import lost_workers_reported
    from slimkit.training.lock import LogdirLock, no_empty_dirs_left
    from slimkit.training.progress import Progress
    from slimkit.training.runtime import op_determinism, precision_policy
    from slimkit.training.saved_config import check_compatible, check_same_form, save_config

    logdir, chief, strategy = config.resolved_logdir(), runtime["chief"], runtime["strategy"]
    lock = LogdirLock(logdir) if chief else contextlib.nullcontext()
    # A refused run removes the directories it created; only the chief owns the (shared) logdir.
    created = no_empty_dirs_left(logdir) if chief else contextlib.nullcontext()
    lost_workers = lost_workers_reported(strategy, logdir)  # multi-worker: a dead peer
    with created, op_determinism(config.deterministic), precision_policy(runtime["precision"]), \
            lock, lost_workers:
        # Refusals happen on every worker together (checks.refuse_together), before the model.
        loaded = {}  # a worker that cannot load its data (missing, corrupt files) refuses too
        refuse_together(strategy, lambda: check_compatible(config, logdir),  # model, dataset
                        lambda: check_same_form(config, logdir),  # the model's arguments
                        lambda: loaded.update(data=load_training_data(
                            config, get_model_spec(config.model).input_shape)))
        data = loaded["data"]
        check_loaded_data(config, data, logdir, strategy)  # same on all workers, and the logdir's
        run = _Run(config, runtime, data, train_step_fn)
        try:
            progress = Progress(0, run.total_steps, config.batch_size, config.log_every_n_steps,
                                stream=log_stream or sys.stdout, enabled=chief)
            progress.message(f"precision: {runtime['precision']} ({runtime['precision_reason']}); "
                             f"{type(strategy).__name__}, {strategy.num_replicas_in_sync} "
                             f"replica(s); {runtime['threads'][0] or 'default'} intra-op threads")
            # --- restore: own checkpoint first; else warm-start from --checkpoint-path (Slim)
            step = _restore(run, config, progress)
            if step >= run.total_steps:
                progress.message(f"{logdir} is already at step {step} of {run.total_steps} "
                                 f"({run.checkpoints.latest}): nothing to train. Evaluate it with "
                                 f"`slimkit eval {logdir}`, or pass a larger --steps to train on.")
                return {"global_step": step, "stopped": "already_done", "logdir": logdir,
                        "checkpoint": run.restored_from, "precision": runtime["precision"]}
            data.prepare(progress.message)  # e.g. decoding the images once (only a run that trains)
            if chief:  # restored (or warm-started): this run's settings are now the logdir's,
                # with the precision `auto` chose (eval and export build the model in it)
                save_config(dataclasses.replace(config, precision=runtime["precision"]), logdir,
                            run.data, {"precision_reason": runtime["precision_reason"]})
            run.summaries.start(step, progress)
            # --- step, summarize, checkpoint, stop
            loop_started = time.monotonic()
            step, stopped, last = _train_steps(run, step, progress, started)
            loop_seconds = time.monotonic() - loop_started
            path = _save(run, progress)  # the final checkpoint
            if config.keep_best and stopped in ("steps", "max_time") and run.evaluated != step:
                _periodic_eval(run, step, progress)  # the final weights may be the best
            progress.close()
            metrics = {"global_step": step, "train_loss": last["loss"],
                       "train_accuracy": last["accuracy"],
                       "examples_per_sec": round(progress.examples_per_sec(), 1),
                       "precision": runtime["precision"], "checkpoint": run.in_logdir(path),
                       "logdir": logdir, "stopped": stopped,
                       "train_seconds": round(loop_seconds, 2)}
            if stopped in ("SIGINT", "SIGTERM"):
                progress.message(f"stopped by {stopped} at step {step}; saved {path}. Run the "
                                 "same command again to resume.")
            else:
                if run.data.eval_splits:
                    metrics.update(_final_evaluation(run, step, progress))
                run.summaries.end(step, last)  # the last heavy summaries, the projector
        finally:
            run.close()  # also on a refusal: a non-chief's scratch directory goes
    metrics["seconds"] = round(time.monotonic() - started, 1)
    return metrics


def _train_steps(run, step, progress, started):
    """The loop: step -> summarize -> checkpoint (+ evaluate) -> stop, until a stop condition.

    Returns:
        ``(global step, why it stopped, {"loss", "accuracy"} of the last call)``.
    """
    from slimkit.training.distribute import any_worker, distribute_batch
    from slimkit.training.triggers import Clock, StopSignals, steps_this_call

    config, strategy = run.config, run.strategy
    progress.start_step = step
    clock = Clock(config)
    stopped, last = "steps", {"loss": math.nan, "accuracy": math.nan}
    with StopSignals() as signals:
        while step < run.total_steps:
            # --- step: k batches per call, one host sync per call
            n = steps_this_call(step, config, run.total_steps)
            images, labels = run.data.feed.next_batches(n)
            args = distribute_batch(strategy, images, labels)
            run.summaries.before_call(step)  # (a profiler trace may start)
            result = run.step_fn(*args)
            done = int(result["steps"])
            step += done
            if done < n:  # step `step + 1` was not finite and not applied
                raise _nonfinite_error(run, images[done], labels[done], step + 1)
            last = {"loss": float(result["loss_sum"]) / n,
                    "accuracy": float(result["accuracy_sum"]) / n}
            lr = run.learning_rate_now()
            progress.update(step, last["loss"], last["accuracy"], lr)

            # --- summarize (scalars; histograms, images and an evaluation at heavy points)
            run.summaries.after_call(step, clock, images, args, result)
            # --- checkpoint (and evaluate on the validation split, keep the best)
            save_now = clock.due("checkpoint", step)
            eval_now = clock.due("eval", step, checkpoint_now=save_now)
            out_of_time = bool(config.max_time and time.monotonic() - started >= config.max_time)
            # Multi-worker: act on any worker's clock or signal, all at the same step, or the others
            # wait for a stopped one in the next all-reduce (distribute.any_worker; free on 1 machine).
            save_now, eval_now, signalled, out_of_time = any_worker(
                strategy, save_now, eval_now, signals.received, out_of_time)
            if save_now or (eval_now and config.keep_best):
                _save(run, progress)
            if eval_now:
                _periodic_eval(run, step, progress)
            # --- stop
            if signalled:
                return step, signals.received or "SIGTERM", last  # (or a peer worker's signal)
            if out_of_time:
                progress.message(f"time budget of {config.max_time:g} s spent at step {step}")
                return step, "max_time", last
    return step, stopped, last


def _final_evaluation(run, step, progress):
    """Accuracy on the test split (an image folder's: validation), EMA weights if kept."""
    split = run.data.eval_splits[-1]
    final = run.evaluate(split, step)  # (validation at this step: _periodic_eval's, no 2nd pass)
    run.summaries.evaluation(split, step, final)
    label = "val" if split == "validation" else split
    if run.chief:
        progress.message(f"{label} accuracy: {final['accuracy']:.4f}")
    return {f"{split}_accuracy": final["accuracy"], f"{split}_loss": final["loss"]}


# ---------------------------------------------------------------------------- set-up
def _setup_runtime(config, stream):
    """Process-level set-up, in the order TensorFlow needs: threads, strategy, precision, seeds."""
    from slimkit.training import runtime as rt
    from slimkit.training.checks import check_startup_delay
    from slimkit.training.distribute import (check_global_batch, chief_decides, is_chief,
                                             lost_workers_reported, make_strategy, num_workers,
                                             same_on_all_workers)

    threads = rt.configure_threads(config.intra_op_threads, config.inter_op_threads)
    strategy = make_strategy(config.strategy)
    chief, workers = is_chief(strategy), num_workers(strategy)

    def measuring():
        if chief:
            stream.write(f"precision auto: timing a {config.model} step in bfloat16 and in float32 "
                         "on this CPU (once per machine and recipe)...\n")
            stream.flush()

    # The precision before the seeds: where it is measured (precision_probe), the probe's models
    # draw random numbers, and the run's weights must not depend on whether it was cached.
    precision, reason = rt.choose_precision(config.precision, config.model, config,
                                            replicas=strategy.num_replicas_in_sync,
                                            on_measure=measuring)
    rt.configure_determinism(config.seed)
    with lost_workers_reported(strategy, config.resolved_logdir()):
        if workers > 1 and config.precision == "auto":  # the same on every worker: collective
            # Measured choices: two workers' timings may fall on either side of the threshold,
            # so a measuring worker takes the chief's choice (a worker whose hardware decides
            # keeps its own; if that differs, the check below refuses the run).
            chiefs = "bf16" if chief_decides(strategy, precision == "bf16") else "fp32"
            if chiefs != precision and rt.fast_bf16_hardware()[0] is None:
                precision, reason = chiefs, f"{reason}; the chief's choice decides: {chiefs}"
        # the data may move, and how much memory (or disk) holds images is each machine's own
        settings = {**config.to_dict(), "data_dir": None, "image_cache_mb": None,
                    "image_disk_cache_mb": None, "precision": precision}
        same = same_on_all_workers(strategy, json.dumps(settings, sort_keys=True, default=str))
    if not same:
        raise ValueError("The workers of this multi-worker run have different settings (or "
                         "precision `auto` chose differently on different hardware). Expected the "
                         "same command line and config on every worker (only TF_CONFIG's task index, "
                         "--data-dir, --image-cache-mb and --image-disk-cache-mb may differ); on "
                         "mixed hardware set --precision.")
    # Checks that need the strategy come after the agreement above, so that every worker of a
    # multi-worker run refuses the same settings together (instead of one waiting for the other).
    check_global_batch(strategy, config.batch_size)  # before data and model are built
    check_startup_delay(config, workers)  # a no-op on one worker, as in TF-Slim
    return {"strategy": strategy, "chief": chief, "threads": threads,
            "precision": precision, "precision_reason": reason}


def _check_names(config):
    from slimkit.models.registry import get_model_spec
    from slimkit.training.data import FOLDER

    get_model_spec(config.model)
    if config.dataset != FOLDER:
        from slimkit.data.registry import get_dataset_info
        get_dataset_info(config.dataset)


class _Run:
    """Everything built for a run: data, model, optimizer, step function, checkpoints."""

    def __init__(self, config, runtime, data, train_step_fn):
        from slimkit.training import checkpoints as ckpt_lib
        from slimkit.training.distribute import worker_logdir
        from slimkit.training.ema import ExponentialMovingAverage
        from slimkit.training.optimizers import make_optimizer
        from slimkit.training.schedules import make_schedule
        from slimkit.training.step import StepOptions, make_loss_fn, make_train_step

        self.config = config
        self.chief = runtime["chief"]
        self.precision = runtime["precision"]
        self._evaluations = {}  # (split, step, limit) -> metrics
        self.strategy = strategy = runtime["strategy"]
        self.data = data  # a slimkit.training.data.TrainingData
        self.total_steps = config.total_steps(self.data.num_train)
        steps_per_epoch = self.data.num_train / config.batch_size
        self.schedule = make_schedule(config, self.total_steps, steps_per_epoch)
        with strategy.scope():
            self.model = build_model(config, self.data)
            self.variables = self.model.trainable_variables
            if config.trainable_scopes:
                from slimkit.training.finetune import select_trainable
                self.variables = select_trainable(self.model, config.trainable_scopes)
            self.optimizer = make_optimizer(config, self.schedule)
            self.optimizer.build(self.variables)
            self.ema = (ExponentialMovingAverage(self.model, config.ema_decay)
                        if config.ema_decay else None)
            self.state = ckpt_lib.RunState(self.model)
        self.loss_fn = make_loss_fn(self.data.num_classes, config.label_smoothing)
        options = StepOptions(global_step=self.state.global_step, trainable_variables=self.variables,
                              clip_gradient_norm=config.clip_gradient_norm, ema=self.ema,
                              jit_compile=config.jit_compile)
        self.step_fn = (train_step_fn or make_train_step)(self.model, self.loss_fn, self.optimizer,
                                                          strategy, options)
        self.out_dir = worker_logdir(config.resolved_logdir(), strategy)
        self.restored_from = None  # the logdir checkpoint this run resumed from (see _restore)
        self.evaluated = None  # the step of the last validation evaluation
        self.checkpoints = ckpt_lib.Checkpoints(
            ckpt_lib.make_checkpoint(self.model, self.optimizer, self.state, self.ema),
            self.state, self.out_dir, keep=config.keep, keep_best=config.keep_best)
        from slimkit.summaries.training import TrainingSummaries

        self.summaries = TrainingSummaries(self, config.summaries)  # TensorBoard (chief only)

    def in_logdir(self, path):
        """The logdir's checkpoint for ``path``, one of this process's saves (None stays None).

        A non-chief worker saves into a scratch directory that it deletes at the end; the chief
        saves the same step under the same name (``ckpt-<global step>``) in the logdir.
        """
        if self.chief or path is None:
            return path
        return os.path.join(self.config.resolved_logdir(), os.path.basename(path))

    def close(self):
        self.summaries.close()
        if not self.chief:  # a non-chief worker's scratch checkpoints (distribute.worker_logdir)
            shutil.rmtree(self.out_dir, ignore_errors=True)

    def learning_rate_now(self):
        from slimkit.training.schedules import learning_rate_at

        return learning_rate_at(self.schedule, self.optimizer.iterations)

    def averaged_weights(self):
        """Context: the EMA weights swapped in, if the run keeps them."""
        return self.ema.swapped_in() if self.ema is not None else contextlib.nullcontext()

    def evaluate(self, split, step, limit=None):
        """Metrics of ``split`` (its first ``limit`` examples) with the EMA weights if kept; once
        per step: the weights have not changed since."""
        from slimkit.metrics import evaluate_model
        from slimkit.summaries.evaluation import GALLERY_SIZE
        from slimkit.summaries.training import first_examples

        key = (split, step, limit)
        if key not in self._evaluations:
            batches = self.data.eval_batches(split, self.config.eval_batch_size)
            with self.averaged_weights():
                self._evaluations = {key: evaluate_model(  # (only the latest is kept)
                    self.model, first_examples(batches, limit) if limit else batches,
                    self.data.num_classes, keep_misclassified=GALLERY_SIZE)}
        return self._evaluations[key]


# ---------------------------------------------------------------------------- stages
def _restore(run, config, progress):
    """Restores the logdir's checkpoint, or warm-starts; sets the feed's position. Returns step."""
    from slimkit.training import checkpoints as ckpt_lib

    if run.chief:
        path = run.checkpoints.restore()
    else:  # multi-worker: a non-chief saves to a scratch dir but resumes from the chief's logdir
        logdir = config.resolved_logdir()
        path = ckpt_lib.latest_checkpoint(logdir)
        if path is not None:  # (the logdir's list: a corrupt newest names the previous one)
            ckpt_lib.restore_checkpoint(run.checkpoints.checkpoint, path,
                                        ckpt_lib.logdir_checkpoints(logdir))
    if path is not None:
        run.restored_from = path
        if run.ema is not None and not ckpt_lib.has_object(path, "ema"):
            run.ema.reset()  # EMA newly turned on: start the average at the restored weights
        step = int(run.state.global_step.numpy())
        epoch, offset = (int(x) for x in run.state.data_position.numpy())
        run.data.feed.seek(epoch, offset % run.data.feed.num_examples)
        progress.message(f"resuming from {path} (step {step} of {run.total_steps})")
        return step
    if config.checkpoint_path:
        from slimkit.training.finetune import restore_for_finetuning

        report = restore_for_finetuning(run.model, config.checkpoint_path,
                                        config.checkpoint_exclude_scopes)
        progress.message(f"warm start from {config.checkpoint_path}: {report}")
        if run.ema is not None:
            run.ema.reset()
    return 0


def _save(run, progress):
    """Writes a checkpoint at the current step (with the feed's position); returns its path."""
    run.state.data_position.assign(list(run.data.feed.position))
    latest = run.checkpoints.latest
    path = run.checkpoints.save()
    if path != latest:
        progress.message(f"saved {path}")
    return path


def _periodic_eval(run, step, progress):
    """Validation accuracy (EMA weights if kept), to TensorBoard; keeps the best checkpoint.

    Returns:
        The metrics, or None without a validation split.
    """
    from slimkit.training.distribute import chief_decides

    if "validation" not in run.data.eval_splits:
        return None
    metrics = run.evaluate("validation", step)
    run.evaluated = step
    run.summaries.evaluation("validation", step, metrics)
    # Multi-worker: the chief's best.json decides for all (a non-chief's is in a scratch dir).
    best = run.checkpoints.save_best(metrics["accuracy"], step,
                                     agree=lambda better: chief_decides(run.strategy, better))
    progress.message(f"step {step}: validation accuracy {metrics['accuracy']:.4f}"
                     + (" (best so far, kept in best/)" if best else ""))
    return metrics


def _nonfinite_error(run, images, labels, step):
    """The NonFiniteLossError for a step whose loss or gradient was not finite."""
    from slimkit.training.nonfinite import diagnose_nonfinite

    try:
        finding = diagnose_nonfinite(run.model, run.loss_fn, images, labels)
    except Exception as e:  # the diagnosis must not hide the error itself
        finding = f"(diagnosis failed: {type(e).__name__}: {e})"
    latest = run.in_logdir(run.checkpoints.latest) or run.restored_from
    resume = (f"the last good checkpoint is {latest}, from which the logdir resumes" if latest
              else "no checkpoint was written before it, so a new run starts afresh")
    return NonFiniteLossError(
        f"Non-finite loss or gradient at step {step}: {finding}. Training stopped without saving; "
        f"{resume}. Lower the learning rate (now {run.learning_rate_now():g}) or set "
        "--clip-gradient-norm, and run again.")
