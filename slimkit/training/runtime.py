"""Process-level settings of a run: CPU threads, precision, determinism.

They must be applied before TensorFlow initializes its runtime (before the first tensor, model or
strategy), which :func:`configure_runtime` does at the start of ``slimkit.train``; a second run in
the same process keeps the first run's thread counts (TensorFlow cannot change them any more) and
says so.

Precision ``auto`` picks mixed bfloat16 where the hardware computes it fast (a CPU with AMX, or a
GPU of compute capability >= 8.0) and the model keeps its accuracy in it. On a CPU with
AVX512_BF16 but no AMX the hardware does not say (a Xeon computed bfloat16 1.4x slower than
float32, an AMD EPYC faster), so a short measurement of the run's own step decides, cached per
machine (:mod:`slimkit.training.precision_probe`). The choice and its reason are printed, and the
resolved value is what the logdir's ``config.json`` records.
"""

import contextlib
import logging
import math
import os

import keras
import tensorflow as tf

log = logging.getLogger("slimkit.train")

# Models that gain nothing from bfloat16 or lose accuracy in it, with the reason.
BF16_EXCLUDED_MODELS = {
    # Measured on a 2-core AMX Xeon, mnist-softmax-tutorial: test accuracy 0.9149 (bf16) vs 0.9147.
    "softmax_regression": "a single 784x10 matmul: the bfloat16 casts cost more than they save "
                          "(150k vs 220k examples/s measured), for the same accuracy",
}


def usable_cores():
    """CPU cores this process may use: the affinity mask, capped by a cgroup CPU quota.

    TensorFlow sizes its thread pools from the machine's cores; in a container limited to 2 of 64
    cores that oversubscribes the CPU, so the loop passes this number instead.

    Example:
        >>> usable_cores() >= 1
        True
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def configure_threads(intra_op_threads=None, inter_op_threads=None):
    """Sets TensorFlow's thread pools (default: intra-op = usable cores, inter-op = TF's default).

    Returns:
        ``(intra, inter)`` in effect (0 means TensorFlow's own choice).
    """
    intra = intra_op_threads or usable_cores()
    inter = inter_op_threads or 0
    threading = tf.config.threading
    if (threading.get_intra_op_parallelism_threads(), threading.get_inter_op_parallelism_threads()) \
            == (intra, inter):
        return intra, inter
    try:
        threading.set_intra_op_parallelism_threads(intra)
        threading.set_inter_op_parallelism_threads(inter)
    except RuntimeError:
        log.warning("thread settings unchanged (intra-op %s, inter-op %s): TensorFlow was already "
                    "initialized in this process", threading.get_intra_op_parallelism_threads(),
                    threading.get_inter_op_parallelism_threads())
        return (threading.get_intra_op_parallelism_threads(),
                threading.get_inter_op_parallelism_threads())
    return intra, inter


def _cpuinfo(field):
    """The first ``field : value`` of /proc/cpuinfo, or None (not Linux, or no such field)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(field):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_flags():
    """The CPU feature flags from /proc/cpuinfo (an empty set elsewhere)."""
    return set((_cpuinfo("flags") or "").split())


def cpu_model():
    """The CPU's model name from /proc/cpuinfo, else what :mod:`platform` says."""
    import platform

    return _cpuinfo("model name") or platform.processor() or platform.machine()


def fast_bf16_hardware():
    """``(True, why)`` if this machine computes bfloat16 fast, ``(False, why)`` if not, and
    ``(None, why)`` where only a measurement can tell.

    Fast means matrix units for bfloat16: AMX on a Xeon, tensor cores on a GPU of compute capability
    8.0 or more. AVX512_BF16 alone may go either way: on a 2-core Xeon with AVX512_BF16 but no AMX,
    mixed bfloat16 trained Deep MNIST 1.4x *slower* than float32 (slimkit and Keras alike: each
    layer's casts cost more than the dot products save); on a 2-core AMD EPYC with AVX-512 and
    AVX512_BF16, slimkit's and Keras' Deep MNIST trained 1.5-1.6x *faster* in bfloat16
    (``bench/results/compare_avx512.md``).
    """
    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        if capability and tuple(capability) >= (8, 0):
            return True, f"GPU compute capability {capability[0]}.{capability[1]} >= 8.0"
    if tf.config.list_physical_devices("GPU"):
        return False, "the GPU's compute capability is below 8.0 (no fast bfloat16)"
    flags = cpu_flags()
    if "amx_bf16" in flags:
        return True, "the CPU has AMX (amx_bf16)"
    if "avx512_bf16" in flags:
        return None, "the CPU has AVX512_BF16 but no AMX"
    return False, "the CPU has no AMX (and no AVX512_BF16)"


def choose_precision(precision, model_name, config=None, replicas=1, on_measure=None):
    """Resolves ``fp32|bf16|auto`` to ``(fp32|bf16, reason)``.

    Args:
        precision: ``fp32``, ``bf16`` or ``auto``.
        model_name: The model (some stay in float32 under ``auto``: ``BF16_EXCLUDED_MODELS``).
        config: The run's TrainConfig, for the measurement where the hardware does not decide
            (see :func:`fast_bf16_hardware`); without it, float32 there.
        replicas: Replicas of the run's strategy: the measured step is one replica's share of
            ``config.batch_size``.
        on_measure: Called before a measurement is taken (not when it is cached), e.g. to say
            that the run is timing its step.

    Example:
        >>> choose_precision("fp32", "lenet")
        ('fp32', 'asked for')
    """
    if precision != "auto":
        return precision, "asked for"
    fast, why = fast_bf16_hardware()
    if fast is False:
        return "fp32", f"auto: {why}"
    if model_name in BF16_EXCLUDED_MODELS:
        return "fp32", f"auto: {model_name} stays in float32 ({BF16_EXCLUDED_MODELS[model_name]})"
    if fast is None:
        if config is None:
            return "fp32", f"auto: {why}, and no run to measure"
        from slimkit.training.precision_probe import cached_choice
        choice, measured = cached_choice(config, replicas=replicas, on_measure=on_measure)
        return choice, f"auto: {why}; {measured}"
    return "bf16", f"auto: {why}"


def configure_precision(precision):
    """Sets Keras' global dtype policy (before building the model): float32 or mixed_bfloat16."""
    keras.config.set_dtype_policy("mixed_bfloat16" if precision == "bf16" else "float32")


@contextlib.contextmanager
def precision_policy(precision):
    """Within the block, Keras' global dtype policy is ``precision``'s; the previous one after.

    Models built inside keep their policy, so a run can train in bfloat16 without changing what
    the caller's later models are built with.
    """
    previous = keras.config.dtype_policy()
    configure_precision(precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def configure_determinism(seed):
    """Seeds Python, NumPy, TensorFlow and Keras (weights, and anything else drawn at random)."""
    keras.utils.set_random_seed(seed)


@contextlib.contextmanager
def op_determinism(deterministic):
    """Within the block, TensorFlow ops are deterministic if ``deterministic``; restored after.

    TensorFlow only exports ``enable_op_determinism``; its module also has the matching
    ``disable_op_determinism``, used here (when present) so that a caller's later TensorFlow code
    is not made deterministic, and slower, behind its back.
    """
    try:
        from tensorflow.python.framework import config as tf_config
        was_enabled = tf_config.is_op_determinism_enabled()
        disable = tf_config.disable_op_determinism
    except (ImportError, AttributeError):
        was_enabled, disable = None, None
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    try:
        yield
    finally:
        if deterministic and was_enabled is False and disable is not None:
            disable()
