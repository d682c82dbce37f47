"""Distribution strategies by name, and the helpers the training loop needs to use them.

    strategy = make_strategy("auto")          # before building anything with TensorFlow
    with strategy.scope():
        model = get_model("lenet")           # variables are mirrored on every replica
    images, labels = feed.next_batches(k)    # (k, B, H, W, C): the *global* batch
    per_replica = distribute_batch(strategy, images, labels)
    strategy.run(step, args=per_replica)     # each replica sees (k, B / replicas, H, W, C)

Strategies (``--strategy``):

- ``one-device``: everything on the first GPU, else the CPU.
- ``mirrored``: synchronous data parallelism over the local devices (``tf.distribute.MirroredStrategy``):
  all GPUs, or, on a CPU-only machine, the logical CPUs made by :func:`configure_logical_cpus`
  (or the environment variable ``SLIMKIT_LOGICAL_CPUS=N``). One replica per device.
- ``multi-worker``: synchronous data parallelism over several machines
  (``tf.distribute.MultiWorkerMirroredStrategy``), configured by the ``TF_CONFIG`` environment
  variable of each worker process.
- ``auto``: ``multi-worker`` if ``TF_CONFIG`` lists more than one task, else ``mirrored`` if there
  is more than one GPU, else ``one-device``.

Process-level setup comes first: logical devices and collective ops can only be configured before
TensorFlow initializes its runtime, so call :func:`make_strategy` (and
:func:`configure_logical_cpus`) before creating any tensor, model or dataset.

Multi-worker training is a lock-step protocol; three rules keep the workers in step:

- Only the chief writes to the logdir (:func:`is_chief`), yet every worker *runs* each save:
  TensorFlow's documented pattern, because reading some distributed variables (sync-on-read ones)
  for a save is a collective operation. Non-chief workers save into a throw-away directory,
  :func:`worker_logdir`. (With Keras 3's mirrored variables the save is local today, but the
  pattern keeps it correct for any variable.)
- Every worker *restores* from the chief's logdir (its newest checkpoint), so the logdir must be
  on a file system all workers can read, or copied to each machine before a restart.
- Decisions taken on a worker's own clock or signals (checkpoint every N seconds, the time
  budget, SIGTERM) are agreed on with :func:`any_worker` before acting, or one worker stops
  while the others wait for it in the next step's all-reduce. Decisions taken from the logdir's
  files (is this the best checkpoint yet?) are the chief's (:func:`chief_decides`).
"""

import contextlib
import hashlib
import json
import os
import tempfile

import numpy as np
import tensorflow as tf

STRATEGIES = ("auto", "one-device", "mirrored", "multi-worker")

_TF_CONFIG_EXAMPLE = ('{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                      '"task": {"type": "worker", "index": 0}}')


def configure_logical_cpus(n):
    """Splits the first physical CPU into ``n`` logical devices, so ``mirrored`` has ``n`` replicas.

    This is how data parallelism is tried (and tested) on a machine without GPUs. It must run
    before TensorFlow initializes its devices; calling it again with the same ``n`` is a no-op.

    Args:
        n: Number of logical CPU devices, a positive integer.

    Returns:
        The names of the logical CPU devices, e.g. ``["/device:CPU:0", "/device:CPU:1"]``.

    Raises:
        ValueError: If ``n`` is not a positive integer.
        RuntimeError: If TensorFlow has already initialized its devices with another count.

    Example:
        >>> configure_logical_cpus(2)       # first thing in the program
        ['/device:CPU:0', '/device:CPU:1']
        >>> make_strategy("mirrored").num_replicas_in_sync
        2
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError("Invalid value for argument `n` of configure_logical_cpus. Expected a "
                         f"strictly positive integer (number of logical CPU devices). Received n={n!r}.")
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == n:
        return _logical_names("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
    except RuntimeError as e:
        have = len(tf.config.list_logical_devices("CPU"))
        if have == n:
            return _logical_names("CPU")
        raise RuntimeError(
            f"Cannot split the CPU into {n} logical devices: TensorFlow has already initialized its "
            f"devices (it has {have} logical CPU(s)). Call configure_logical_cpus({n}) (or set "
            f"SLIMKIT_LOGICAL_CPUS={n}) before creating any tensor, model, dataset or strategy, "
            "e.g. first thing in the program or in a fresh process.") from e
    return _logical_names("CPU")


def make_strategy(name="auto", logical_cpus=None):
    """Returns the ``tf.distribute.Strategy`` called ``name``.

    Args:
        name: One of ``auto``, ``one-device``, ``mirrored``, ``multi-worker`` (see module docs).
        logical_cpus: For ``mirrored`` on a machine without GPUs, split the CPU into this many
            logical devices first (see :func:`configure_logical_cpus`). Defaults to the
            environment variable ``SLIMKIT_LOGICAL_CPUS`` if set, else no split.

    Returns:
        A ``tf.distribute.Strategy``; build model and optimizer under ``strategy.scope()``.

    Raises:
        ValueError: For an unknown name, or for ``multi-worker`` (or ``auto`` with ``TF_CONFIG``
            set) when ``TF_CONFIG`` is missing or malformed; the message shows the expected JSON.

    Example:
        >>> strategy = make_strategy("one-device")
        >>> strategy.num_replicas_in_sync
        1
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown distribution strategy {name!r}. Expected one of: "
                         f"{', '.join(STRATEGIES)}.")
    if name == "auto":
        cluster = parse_tf_config(required=False)
        if cluster is not None and _num_tasks(cluster) > 1:
            name = "multi-worker"
        elif len(tf.config.list_physical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "one-device"
    if name == "one-device":
        device = "/gpu:0" if tf.config.list_physical_devices("GPU") else "/cpu:0"
        return tf.distribute.OneDeviceStrategy(device)
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices=_mirrored_devices(logical_cpus))
    parse_tf_config(required=True)  # a clear error before TensorFlow's own
    return tf.distribute.MultiWorkerMirroredStrategy()


def parse_tf_config(required=True):
    """Reads and checks the ``TF_CONFIG`` environment variable of a multi-worker job.

    Args:
        required: If False, a missing (unset or empty) ``TF_CONFIG`` returns None.

    Returns:
        The parsed dict, e.g. ``{"cluster": {"worker": [...]}, "task": {"type": "worker", "index": 0}}``.

    Raises:
        ValueError: If it is missing (and required), not JSON, or not a valid cluster description.

    Example:
        >>> os.environ["TF_CONFIG"] = '{"cluster": {"worker": ["localhost:2222"]}, "task": {"type": "worker", "index": 0}}'
        >>> parse_tf_config()["task"]
        {'type': 'worker', 'index': 0}
    """
    raw = os.environ.get("TF_CONFIG", "").strip()
    expected = (f"Expected TF_CONFIG to hold JSON like {_TF_CONFIG_EXAMPLE} (the same cluster on "
                "every machine, each with its own task index).")
    if not raw:
        if not required:
            return None
        raise ValueError("--strategy multi-worker needs the TF_CONFIG environment variable, which is "
                         f"not set. {expected}")
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON ({e}). {expected} Received TF_CONFIG={raw!r}.") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    problem = None
    if not isinstance(cluster, dict) or not cluster:
        problem = "it has no `cluster` object"
    elif any(not isinstance(v, list) or not all(isinstance(a, str) and ":" in a for a in v)
             for v in cluster.values()):
        problem = "every job in `cluster` must be a list of \"host:port\" strings"
    elif "worker" not in cluster and "chief" not in cluster:
        problem = "`cluster` has no `worker` (or `chief`) job"
    elif not isinstance(task, dict) or "type" not in task or "index" not in task:
        problem = "it has no `task` object with `type` and `index`"
    elif task["type"] not in cluster:
        problem = f"task type {task['type']!r} is not a job in `cluster` ({', '.join(cluster)})"
    elif (isinstance(task["index"], bool) or not isinstance(task["index"], int)
          or not 0 <= task["index"] < len(cluster[task["type"]])):
        problem = (f"task index {task['index']!r} is not an index into the "
                   f"{len(cluster[task['type']])} {task['type']!r} address(es)")
    if problem:
        raise ValueError(f"Invalid TF_CONFIG: {problem}. {expected} Received TF_CONFIG={raw!r}.")
    return config


def is_chief(strategy):
    """True if this process is the one that writes checkpoints, summaries and the config.

    That is every single-machine strategy; in multi-worker training, the ``chief`` task if the
    cluster has one, else worker 0.

    Example:
        >>> is_chief(make_strategy("one-device"))
        True
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or resolver.task_type is None:
        return True
    if resolver.task_type == "chief":
        return True
    jobs = resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in jobs


def num_workers(strategy):
    """The number of worker processes taking part in ``strategy`` (1 for single-machine strategies).

    Example:
        >>> num_workers(make_strategy("one-device"))
        1
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or resolver.task_type is None:
        return 1
    jobs = resolver.cluster_spec().as_dict()
    return sum(len(jobs.get(job, ())) for job in ("chief", "worker"))


def any_worker(strategy, *flags):
    """ORs boolean decisions across all workers, so that every worker acts on them together.

    In multi-worker training every step is a collective operation: if one worker decides on its
    own clock or signal to stop (time budget spent, SIGTERM) while the others go on, they wait for
    it in the next all-reduce and fail. Saves and evaluations should happen at the same step on
    every worker too. Call this once per loop iteration, at the same point on every worker, with
    the decisions each worker made locally; all get the same answer (one small all-reduce).
    Single-machine strategies return the flags unchanged, at no cost.

    Args:
        strategy: The strategy from :func:`make_strategy`.
        *flags: This worker's decisions (truthy or falsy).

    Returns:
        A tuple of bools: ``flags[i]`` of any worker.

    Example:
        >>> save_now, stop = any_worker(strategy, clock.due("checkpoint", step), signals.received)
    """
    if num_workers(strategy) <= 1:
        return tuple(bool(f) for f in flags)
    local = tf.constant([1 if f else 0 for f in flags], tf.int32)
    values = strategy.experimental_distribute_values_from_function(lambda _: tf.identity(local))
    total = strategy.reduce(tf.distribute.ReduceOp.SUM, values, axis=None)  # all-reduce over workers
    return tuple(bool(v) for v in total.numpy())


def chief_decides(strategy, decision):
    """The chief's ``decision`` (a bool), on every worker: for choices made from the chief's files.

    Example:
        >>> better = chief_decides(strategy, accuracy > best_in_my_logdir)  # all save, or none
    """
    return any_worker(strategy, is_chief(strategy) and decision)[0]


def same_on_all_workers(strategy, text):
    """True if every worker passed the same ``text`` (e.g. its resolved configuration as JSON).

    Workers started with different settings (batch size, steps, seed, logdir...) would
    compute different things in lock-step, or wait for each other forever; checking once at the
    start turns that into a clear error. One small all-reduce; always True on one machine.

    Example:
        >>> if not same_on_all_workers(strategy, json.dumps(config.to_dict(), sort_keys=True)):
        ...     raise ValueError("The workers were started with different settings ...")
    """
    if num_workers(strategy) <= 1:
        return True
    digest = int.from_bytes(hashlib.sha256(text.encode()).digest()[:3], "big")  # < 2**24
    local = tf.constant([1, digest, digest * digest], tf.int64)
    values = strategy.experimental_distribute_values_from_function(lambda _: tf.identity(local))
    count, total, squares = (int(v) for v in
                             strategy.reduce(tf.distribute.ReduceOp.SUM, values, axis=None).numpy())
    # All equal <=> the variance of the digests is 0 (each of this worker's replicas adds one).
    return count * squares == total * total


class WorkerLostError(RuntimeError):
    """Another worker of a multi-worker run died or became unreachable; this one cannot go on."""


# What a collective op raises when a peer is gone (measured with TF 2.21, SIGKILL of either
# worker during training: UnavailableError "Collective ops is aborted by: Socket closed" within
# a second). The others are what TensorFlow documents for aborted or timed-out collectives.
_PEER_LOST = (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.CancelledError,
              tf.errors.DeadlineExceededError)


@contextlib.contextmanager
def lost_workers_reported(strategy, logdir):
    """Turns the failure of a collective op in a multi-worker run into one clear WorkerLostError.

    When a worker dies (machine lost, process killed), every other worker's next all-reduce fails
    with a TensorFlow error and a long traceback. Inside this block that error becomes a
    :class:`WorkerLostError` saying what happened, which checkpoint of ``logdir`` is intact and how
    to resume. Single-machine strategies are left alone: there such errors are not about peers.

    Args:
        strategy: The strategy from :func:`make_strategy`.
        logdir: The run's logdir (the chief's checkpoints).

    Raises:
        WorkerLostError: From the TensorFlow error of a lost peer (chained as its cause).

    Example:
        >>> with lost_workers_reported(strategy, "runs/lenet"):
        ...     strategy.run(step, args=per_replica)
    """
    if num_workers(strategy) <= 1:
        yield
        return
    try:
        yield
    except (*_PEER_LOST, tf.errors.InternalError) as e:
        if isinstance(e, tf.errors.InternalError) and "ollective" not in str(e.message):
            raise  # an internal error of this worker, not a lost peer
        raise WorkerLostError(_lost_worker_message(e, strategy, logdir)) from e


def _lost_worker_message(error, strategy, logdir):
    lines = [line.strip() for line in str(error.message).splitlines() if line.strip()]
    # TensorFlow's message starts with "Graph execution error:" and the node; the cause follows,
    # e.g. "Collective ops is aborted by: Socket closed", or "... The following tasks are
    # unhealthy (stopped sending heartbeats):" with the task on the next line.
    at = next((i for i, line in enumerate(lines) if "aborted by" in line or "peer" in line.lower()),
              0)
    reason = lines[at] if lines else ""
    if reason.endswith(":") and at + 1 < len(lines):
        reason = f"{reason} {lines[at + 1]}"
    try:
        latest = tf.train.latest_checkpoint(str(logdir))
    except (tf.errors.OpError, OSError):
        latest = None
    if latest:
        saved = (f"The last checkpoint in the logdir, {latest}, is intact (a checkpoint is listed "
                 "only once it is complete)")
    elif is_chief(strategy):
        saved = f"No checkpoint had been written to {logdir} yet, so a restart begins at step 0"
    else:
        saved = (f"The chief's logdir {logdir} keeps its last complete checkpoint (it is not "
                 "visible from this machine)")
    return (f"Lost contact with another worker of this multi-worker run "
            f"({type(error).__name__}: {reason}); every step needs all workers, so this one "
            f"stopped too. {saved}. To resume, restart all workers with the same command; they "
            "continue from that checkpoint.")


def worker_logdir(logdir, strategy):
    """The directory this process writes checkpoints and summaries to.

    The chief writes into ``logdir``. A non-chief multi-worker task must still call the same
    ``CheckpointManager.save`` (saving sync-on-read variables is a collective operation), so it
    writes into a private temporary directory, which it should delete when training ends; this is
    TensorFlow's documented multi-worker checkpointing pattern. It restores from ``logdir``, not
    from this directory. Repeated calls in one process return the same directory.

    Args:
        logdir: The run's logdir.
        strategy: The strategy from :func:`make_strategy`.

    Returns:
        ``logdir`` for the chief, else an existing temporary directory (a ``str``).

    Example:
        >>> worker_logdir("runs/lenet", make_strategy("one-device"))
        'runs/lenet'
    """
    if is_chief(strategy):
        return logdir
    resolver = strategy.cluster_resolver
    prefix = os.path.join(tempfile.gettempdir(), f"slimkit-{resolver.task_type}{resolver.task_id}-")
    path = f"{prefix}{os.getpid()}"
    if not os.path.isdir(path):
        _remove_dead_scratch_dirs(prefix)
    os.makedirs(path, exist_ok=True)
    return path


def _remove_dead_scratch_dirs(prefix):
    """Removes ``<prefix><pid>`` scratch dirs whose process is gone (a worker killed abruptly
    cannot delete its own); a live process's directory, or one we may not remove, is left."""
    import glob
    import shutil

    for path in glob.glob(glob.escape(prefix) + "*"):
        pid = path[len(prefix):]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:  # no such process: its scratch dir is stale
            shutil.rmtree(path, ignore_errors=True)
        except (PermissionError, OSError):  # another user's live process, or unknown: keep
            pass


def check_global_batch(strategy, batch_size):
    """Checks that the replicas of ``strategy`` can share a global batch equally; returns a share.

    Args:
        strategy: The strategy from :func:`make_strategy`.
        batch_size: The global batch size.

    Returns:
        ``batch_size // strategy.num_replicas_in_sync``.

    Raises:
        ValueError: If ``batch_size`` is not divisible by the number of replicas.

    Example:
        >>> check_global_batch(make_strategy("one-device"), 50)
        50
    """
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise ValueError(
            f"Invalid global batch size {batch_size} for {replicas} replicas: it must be divisible by "
            f"the number of replicas so each gets the same share. Use a batch size that is a multiple "
            f"of {replicas}, e.g. --batch-size {max(replicas, batch_size - batch_size % replicas)}.")
    return batch_size // replicas


def distribute_batch(strategy, images, labels):
    """Splits a global batch into per-replica values for ``strategy.run``.

    ``images`` and ``labels`` hold ``k`` global batches stacked on axis 0, as returned by
    ``ArrayFeed.next_batches(k)``; replica ``r`` of ``R`` gets examples ``[r * B/R, (r+1) * B/R)``
    of each batch. In multi-worker training every worker draws the same global batch (same seed)
    and keeps its own replicas' slices, so the replicas together see the global batch exactly once.

    Args:
        strategy: The strategy from :func:`make_strategy`.
        images: Array of shape ``(k, B, H, W, C)``.
        labels: Array of shape ``(k, B)``.

    Returns:
        ``(images, labels)`` as distributed values, ``(k, B/R, H, W, C)`` and ``(k, B/R)`` per replica
        (plain tensors under a one-replica strategy).

    Raises:
        ValueError: If the shapes disagree or ``B`` is not divisible by the number of replicas.

    Example:
        >>> images, labels = feed.next_batches(10)          # (10, 100, 28, 28, 1), (10, 100)
        >>> per_replica = distribute_batch(strategy, images, labels)
        >>> losses = strategy.run(multi_step, args=per_replica)
    """
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim < 2 or labels.ndim < 2 or images.shape[:2] != labels.shape[:2]:
        raise ValueError("distribute_batch expects `images` of shape (k, B, ...) and `labels` of "
                         f"shape (k, B, ...) with the same k and B. Received images.shape="
                         f"{images.shape}, labels.shape={labels.shape}.")
    replicas = strategy.num_replicas_in_sync
    share = check_global_batch(strategy, images.shape[1])
    devices = strategy.extended.worker_devices  # this worker's replicas, in replica order

    def value_fn(context):
        r = context.replica_id_in_sync_group
        # Multi-worker replica ids are global; this worker's replicas are consecutive ids.
        with tf.device(devices[r % len(devices)]):
            return (tf.convert_to_tensor(images[:, r * share:(r + 1) * share]),
                    tf.convert_to_tensor(labels[:, r * share:(r + 1) * share]))

    # A tuple of PerReplica values (plain tensors under a one-replica strategy).
    return strategy.experimental_distribute_values_from_function(value_fn)


def _mirrored_devices(logical_cpus):
    # Physical devices can be listed without initializing TensorFlow's runtime; logical ones cannot.
    if tf.config.list_physical_devices("GPU"):
        return _logical_names("GPU")
    if logical_cpus is None and os.environ.get("SLIMKIT_LOGICAL_CPUS"):
        raw = os.environ["SLIMKIT_LOGICAL_CPUS"]
        try:
            logical_cpus = int(raw)
        except ValueError:
            raise ValueError("Invalid SLIMKIT_LOGICAL_CPUS. Expected a strictly positive integer "
                             f"(number of logical CPU devices). Received SLIMKIT_LOGICAL_CPUS={raw!r}.") from None
    if logical_cpus is not None:
        return configure_logical_cpus(logical_cpus)
    return _logical_names("CPU")


def _logical_names(kind):
    return [d.name for d in tf.config.list_logical_devices(kind)]


def _num_tasks(config):
    return sum(len(v) for job, v in config["cluster"].items() if job in ("chief", "worker"))
