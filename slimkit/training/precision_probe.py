"""Is mixed bfloat16 faster than float32 here? A short measurement, cached per machine.

``precision auto`` needs it where the hardware alone does not say (see
:func:`slimkit.training.runtime.fast_bf16_hardware`): a CPU with AVX512_BF16 but no AMX. Such a
CPU may compute bfloat16 slower than float32 (a 2-core Xeon: Deep MNIST 1.4x slower) or faster
(a 2-core AMD EPYC with AVX-512: slimkit's and Keras' Deep MNIST 1.5-1.6x faster,
``bench/results/compare_avx512.md``), so slimkit times the run's own train step (forward,
backward and Adam update of the run's model, on one replica's share of the run's batch of random
images) in both precisions, alternating, and keeps the faster one: bfloat16 only if it is at
least 10% faster (float32 is the more accurate). Each step is compiled, then timed 5 times (3
if it takes over a second): seconds for the MNIST nets, longer for AlexNet at 224x224. The
models are built with the model's default class count. The result is cached in
``$XDG_CACHE_HOME/slimkit/precision.json`` (default ``~/.cache/slimkit``), keyed by CPU, usable
cores, TensorFlow version, model, batch, input size, model arguments and XLA, so it is measured
once per machine and recipe. A cache that cannot be read or written means measuring again, never
an error.

    fp32_s, bf16_s = measure_step_seconds(config)     # median seconds per step in each
    choice, why = cached_choice(config, replicas=1)   # ("bf16" or "fp32", the reason to print)
"""

import json
import os
import statistics
import time
import types

# bfloat16 must be this much faster per step to be chosen: float32 is the more accurate.
MIN_SPEEDUP = 1.1
CACHE_NAME = "precision.json"


def cache_path():
    """Where measured choices are kept: ``<user cache>/slimkit/precision.json``."""
    from slimkit.data.registry import cache_root
    return cache_root() / CACHE_NAME


def cache_key(config, batch):
    """What measuring ``config``'s step at per-replica ``batch`` depends on, as one string."""
    import tensorflow as tf

    from slimkit.models.registry import model_form
    from slimkit.training.runtime import cpu_flags, cpu_model, usable_cores

    flags = sorted(f for f in cpu_flags() if f.startswith(("avx512", "amx", "avx2")))
    parts = dict(cpu=cpu_model(), flags=",".join(flags), cores=usable_cores(),
                 tf=tf.__version__, model=config.model, batch=batch,
                 image_size=config.image_size,
                 model_kwargs=model_form(config.model, config.model_kwargs),  # defaults included
                 jit=bool(config.jit_compile))
    return json.dumps(parts, sort_keys=True, default=str)


def _probe_inputs(config):
    from slimkit.models.registry import get_model_spec

    spec = get_model_spec(config.model)
    size = config.image_size
    shape = (size, size, spec.channels) if size else spec.input_shape
    return types.SimpleNamespace(num_classes=spec.num_classes, image_shape=shape)


def _make_probe_step(config, precision, data, batch):
    import keras
    import numpy as np
    import tensorflow as tf

    from slimkit.runs import build_model
    from slimkit.training.runtime import precision_policy
    from slimkit.training.step import StepOptions, make_loss_fn, make_train_step

    with precision_policy(precision):
        model = build_model(config, data)
    optimizer = keras.optimizers.Adam(1e-4)  # the update's cost; Adam is among the dearest
    optimizer.build(model.trainable_variables)
    step = make_train_step(model, make_loss_fn(data.num_classes, config.label_smoothing),
                           optimizer, tf.distribute.get_strategy(),
                           StepOptions(global_step=tf.Variable(0, dtype=tf.int64),
                                       jit_compile=config.jit_compile))
    rng = np.random.default_rng(0)
    images = tf.constant(rng.random((1, batch, *data.image_shape), dtype=np.float32))
    labels = tf.constant(rng.integers(0, data.num_classes, (1, batch)), dtype=tf.int32)

    def run():
        start = time.perf_counter()
        int(step(images, labels)["steps"])  # waits for the step
        return time.perf_counter() - start

    run()  # trace and compile
    return run


def measure_step_seconds(config, batch=None, rounds=None):
    """Median seconds of one train step of ``config``'s model: ``(fp32, bf16)``.

    The two steps run alternately (``rounds`` each; default: 5, or 3 for a step over a second),
    so that a noisy machine slows both alike, on one device at ``batch`` (one replica's share of
    the global batch; default ``config.batch_size``) of random images (speed does not depend on
    them).
    """
    data = _probe_inputs(config)
    batch = batch or config.batch_size
    runs = {p: _make_probe_step(config, p, data, batch) for p in ("fp32", "bf16")}
    times = {p: [] for p in runs}
    first = runs["fp32"]()
    rounds = rounds or (3 if first > 1.0 else 5)
    for _ in range(rounds):
        for p, run in runs.items():
            times[p].append(run())
    return statistics.median(times["fp32"]), statistics.median(times["bf16"])


def _read_cache():
    try:
        with open(cache_path(), encoding="utf-8") as f:
            cache = json.load(f)
        return cache if isinstance(cache, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_cache(key, entry):
    from slimkit.writing import write_text_atomically

    cache = _read_cache()
    cache[key] = entry
    try:
        os.makedirs(cache_path().parent, exist_ok=True)
        write_text_atomically(cache_path(), json.dumps(cache, indent=1, sort_keys=True) + "\n")
        return True
    except OSError:  # WriteFaultError included
        return False  # measured again next time


def _reason(entry, cached, saved):
    fp32_ms, bf16_ms = entry["fp32_s"] * 1e3, entry["bf16_s"] * 1e3
    where = ("cached in " if cached else "now saved in " if saved else "could not be saved in ")
    return (f"measured on this machine: one {entry['model']} step at batch {entry['batch']} takes "
            f"{bf16_ms:,.0f} ms in bfloat16, {fp32_ms:,.0f} ms in float32 "
            f"({where}{cache_path()})")


def cached_choice(config, replicas=1, on_measure=None):
    """``(precision, reason)`` from the cache, or measured now (and cached).

    Args:
        config: The run's :class:`~slimkit.training.config.TrainConfig`.
        replicas: The strategy's replicas; the step measured is one replica's share of the batch.
        on_measure: Called before measuring (not when the choice is cached).
    """
    batch = max(1, config.batch_size // max(1, replicas))
    key = cache_key(config, batch)
    entry = _read_cache().get(key)
    cached = isinstance(entry, dict) and {"fp32_s", "bf16_s", "choice", "model",
                                          "batch"} <= set(entry)
    saved = False
    if not cached:
        if on_measure:
            on_measure()
        fp32_s, bf16_s = measure_step_seconds(config, batch)
        entry = dict(fp32_s=fp32_s, bf16_s=bf16_s, model=config.model, batch=batch,
                     choice="bf16" if fp32_s >= MIN_SPEEDUP * bf16_s else "fp32",
                     measured=time.strftime("%Y-%m-%d %H:%M:%S %Z"))
        saved = _write_cache(key, entry)
    return entry["choice"], _reason(entry, cached, saved)
