"""MNIST training feeds: slimkit's in-memory ArrayFeed vs per-element tf.data pipelines.

    SLIMKIT_DATA_DIR=/work/shared/data python bench/feed.py [--quick]

DESIGN.md claims that on small MNIST a per-element pipeline costs more than the model, which is why
MNIST-format data is fed from memory by ``slimkit.data.feed.ArrayFeed``. This measures it, side by
side in one process (variants interleaved in rounds, order rotated, medians), at batch 128 (the
``deep-mnist-fast`` batch) on the 55,000 training images:

- ``arrayfeed``: ``ArrayFeed.next_batches(k)``, k = 1 and 10 (the loop's steps_per_call), with and
  without ``augment="shift"``;
- ``tfdata_per_element``: the straightforward pipeline,
  ``from_tensor_slices((images, labels)).shuffle(N).map(per-element scale to [0, 1]).batch(B)``;
- ``tfdata_per_element_parallel``: the same with ``map(num_parallel_calls=AUTOTUNE)`` and
  ``prefetch(AUTOTUNE)`` (what the tf.data guide recommends), and ``..._shift``: plus a
  per-element random 2-pixel shift (pad 2, stateless random crop), ArrayFeed's augmentation;
- ``tfdata_batched_map``: shuffle, batch, *then* map the scaling over whole batches (the usual fix);
- ``model_step_{bf16,fp32}``: the compiled deep_mnist train step alone (``deep-mnist-fast``
  settings) on ready batches: the cost the feed is compared with; ``model_step_softmax``: the
  same for the tutorial's softmax regression (``mnist-softmax-tutorial`` settings, batch 128);
- ``train_{arrayfeed,tfdata}_shift_bf16``, ``train_{arrayfeed,tfdata}_softmax``: the step fed by
  each (10 steps per call, as the loop; the tf.data pipeline is the parallel per-element one,
  batched by 10 more and prefetched).

Every pipeline yields the same batches in kind: float32 (B, 28, 28, 1) in [0, 1] and int32 (B,)
labels, each epoch a fresh shuffle (the shuffles themselves differ: NumPy's vs tf.data's).
Reported: batches/s, examples/s and CPU seconds of this process per 1,000 examples (tf.data runs on
background threads, so on 2 cores its CPU time is what it takes away from the model).

Writes ``bench/results/feed.{json,md}``.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

BATCH = 128
K = 10  # TrainConfig's default steps_per_call


def tfdata_pipelines(images, labels, batch, seed=0):
    """The tf.data variants, each an iterator of (images (B, 28, 28, 1) f32, labels (B,) i32)."""
    import tensorflow as tf

    n = len(labels)
    autotune = tf.data.AUTOTUNE

    def scale(x, y):  # one example: (28, 28, 1) uint8
        return tf.cast(x, tf.float32) * (1 / 255), tf.cast(y, tf.int32)

    def scale_shift(i, xy):
        x, y = xy
        x = tf.pad(x, [[2, 2], [2, 2], [0, 0]])  # (32, 32, 1)
        x = tf.image.stateless_random_crop(x, [28, 28, 1], seed=tf.stack([tf.cast(seed, tf.int64),
                                                                          i]))
        return scale(x, y)

    def base():
        return tf.data.Dataset.from_tensor_slices((images, labels)).shuffle(
            n, seed=seed, reshuffle_each_iteration=True).repeat()

    return {
        "tfdata_per_element": base().map(scale).batch(batch),
        "tfdata_per_element_parallel": base().map(scale, num_parallel_calls=autotune)
        .batch(batch).prefetch(autotune),
        "tfdata_per_element_parallel_shift": base().enumerate().map(
            scale_shift, num_parallel_calls=autotune).batch(batch).prefetch(autotune),
        "tfdata_batched_map": base().batch(batch).map(scale, num_parallel_calls=autotune)
        .prefetch(autotune),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds: plumbing check only")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--examples", type=int, default=25600,
                        help="examples per measurement of a feed (model variants: a quarter)")
    parser.add_argument("--no-wait", action="store_true", help="don't wait for a quiet machine")
    parser.add_argument("--max-wait", type=float, default=600,
                        help="seconds to wait at most for a 1-min load < 1.5 before measuring")
    args = parser.parse_args()
    common.data_root()
    if args.quick:
        args.rounds, args.examples = 1, 2560
    load_start, waited = (os.getloadavg()[0], 0) if args.no_wait or args.quick else \
        common.wait_for_quiet(args.max_wait)

    from slimkit.training import runtime as rt
    from slimkit.training.config import TrainConfig

    threads = rt.configure_threads()
    config = TrainConfig.from_sources("deep-mnist-fast", overrides={"batch_size": BATCH})
    import tensorflow as tf

    if config.deterministic:  # as slimkit.train runs (stateless ops only, so tf.data accepts it)
        tf.config.experimental.enable_op_determinism()
    from slimkit.data.feed import ArrayFeed
    from slimkit.data.registry import get_dataset_info, load_arrays
    from train_throughput import build_variant

    info = get_dataset_info("mnist")
    train = load_arrays("mnist", validation_size=config.validation_size).train
    images, labels = train.images, train.labels  # uint8 (55000, 28, 28, 1), int64 (55000,)

    feeds = {"plain": ArrayFeed(images, labels, BATCH, seed=0),
             "shift": ArrayFeed(images, labels, BATCH, seed=0, augment="shift")}
    iters = {name: iter(ds) for name, ds in tfdata_pipelines(images, labels, BATCH).items()}
    stacked = tfdata_pipelines(images, labels, BATCH)["tfdata_per_element_parallel_shift"] \
        .batch(K).prefetch(1)  # (K, B, 28, 28, 1): K steps per call, as from the ArrayFeed
    iters["stacked_shift"] = iter(stacked)
    models = {p: build_variant(TrainConfig.from_sources("deep-mnist-fast", overrides={
        "batch_size": BATCH, "precision": p}), load_arrays_cache(train), info)
        for p in ("bf16", "fp32")}
    # The tutorial's softmax regression (one 784x10 matmul): the smallest model of all.
    models["softmax"] = build_variant(TrainConfig.from_sources(
        "mnist-softmax-tutorial", overrides={"batch_size": BATCH}), load_arrays_cache(train), info)
    plain_stacked = tfdata_pipelines(images, labels, BATCH)["tfdata_per_element_parallel"] \
        .batch(K).prefetch(1)
    iters["stacked_plain"] = iter(plain_stacked)
    ready = feeds["shift"].next_batches(K)

    def arrayfeed(feed, k):
        return lambda: feed.next_batches(k)

    def tfdata(it):
        return lambda: next(it)

    def step_alone(v):
        return lambda: int(v.step(*ready)["steps"])  # ready batches: the model's cost only

    def train_on(v, get):
        return lambda: int(v.step(*get())["steps"])

    # name: (function producing `batches` batches per call, batches per call, kind)
    variants = {
        "arrayfeed_k1": (arrayfeed(feeds["plain"], 1), 1, "feed"),
        "arrayfeed_k10": (arrayfeed(feeds["plain"], K), K, "feed"),
        "arrayfeed_k1_shift": (arrayfeed(feeds["shift"], 1), 1, "feed"),
        "arrayfeed_k10_shift": (arrayfeed(feeds["shift"], K), K, "feed"),
        **{name: (tfdata(iters[name]), 1, "feed") for name in (
            "tfdata_per_element", "tfdata_per_element_parallel",
            "tfdata_per_element_parallel_shift", "tfdata_batched_map")},
        "model_step_bf16": (step_alone(models["bf16"]), K, "model"),
        "model_step_fp32": (step_alone(models["fp32"]), K, "model"),
        "model_step_softmax": (step_alone(models["softmax"]), K, "model"),
        "train_arrayfeed_shift_bf16": (train_on(models["bf16"], arrayfeed(feeds["shift"], K)), K,
                                       "train"),
        "train_tfdata_shift_bf16": (train_on(models["bf16"], tfdata(iters["stacked_shift"])), K,
                                    "train"),
        "train_arrayfeed_softmax": (train_on(models["softmax"], arrayfeed(feeds["plain"], K)), K,
                                    "train"),
        "train_tfdata_softmax": (train_on(models["softmax"], tfdata(iters["stacked_plain"])), K,
                                 "train"),
    }
    print("warming up (fills the shuffle buffers, compiles the step)", flush=True)
    for fn, per_call, _ in variants.values():
        for _ in range(3):
            fn()

    names = list(variants)
    rates = {n: [] for n in names}
    cpu = {n: [] for n in names}
    rounds = []
    for r in range(args.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        with common.LoadMeter() as meter:
            for name in order:
                fn, per_call, kind = variants[name]
                # The Deep MNIST step is ~100x slower than a feed: fewer examples for it.
                examples = args.examples // 4 if kind != "feed" and "softmax" not in name \
                    else args.examples
                calls = max(1, round(examples / BATCH / per_call))
                c0, t0 = time.process_time(), time.perf_counter()  # CPU: all our threads
                for _ in range(calls):
                    fn()
                dt, c1 = time.perf_counter() - t0, time.process_time()
                n_batches = calls * per_call
                rates[name].append(n_batches / dt)
                cpu[name].append((c1 - c0) / (n_batches * BATCH) * 1000)
        rounds.append(meter.record())
        print(f"round {r + 1}/{args.rounds}: {rounds[-1]}", flush=True)

    results = [{"variant": n, "kind": variants[n][2],
                "batches_per_sec_median": round(common.median(rates[n]), 1),
                "examples_per_sec_median": round(common.median(rates[n]) * BATCH),
                "cpu_s_per_1000_examples_median": round(common.median(cpu[n]), 4),
                "batches_per_sec_all": [round(x, 1) for x in rates[n]]} for n in names]
    payload = {"benchmark": "feed", "quick": args.quick, "batch_size": BATCH, "steps_per_call": K,
               "intra_op_threads": threads[0], "deterministic_ops": config.deterministic,
               "examples_per_feed_measurement": args.examples,
               "load_1m_at_start": round(load_start, 2), "waited_for_quiet_s": waited,
               "rounds": rounds, "results": results, "machine": common.machine()}
    common.write_results("feed" + ("_quick" if args.quick else ""), payload, markdown(payload))
    print(markdown(payload))


def load_arrays_cache(train):
    """build_variant wants ``splits.train``: wrap the already loaded training split."""
    import types

    return types.SimpleNamespace(train=train)


def markdown(p):
    by = {r["variant"]: r for r in p["results"]}
    step = by["model_step_bf16"]["batches_per_sec_median"]
    rows = [[r["variant"], r["kind"], f"{r['batches_per_sec_median']:,.1f}",
             f"{r['examples_per_sec_median']:,}", f"{r['cpu_s_per_1000_examples_median']:.3f}",
             f"{step / r['batches_per_sec_median']:.2f}"] for r in p["results"]]
    loads = [x for r in p["rounds"] for x in (r["load_1m_before"], r["load_1m_after"])]
    share = [r["others_cpu_share"] for r in p["rounds"]]
    return "\n".join([
        f"# MNIST feeds: ArrayFeed vs per-element tf.data (batch {p['batch_size']})",
        "",
        f"Machine: {common.machine_line(p['machine'])}; {p['intra_op_threads']} intra-op threads; "
        f"deterministic ops {'on' if p['deterministic_ops'] else 'off'} (as in `slimkit.train`).",
        "",
        f"Median of {len(p['rounds'])} interleaved rounds. `time / bf16 step` = time per batch of "
        "the variant divided by the time of one bf16 `deep-mnist-fast` train step (compiled, on "
        "ready batches): above 1 the feed alone costs more than the model. `cpu s / 1k ex` = "
        "this process' CPU seconds per 1,000 examples (tf.data's background threads included)."
        + (" QUICK RUN: plumbing check only." if p["quick"] else ""),
        "",
        common.md_table(["variant", "kind", "batches/s", "examples/s", "cpu s / 1k ex",
                         "time / bf16 step"], rows),
        "",
        f"Load (1 min) during the rounds: {min(loads):.2f} to {max(loads):.2f} (at start "
        f"{p['load_1m_at_start']}, waited {p['waited_for_quiet_s']} s for < 1.5; the load includes "
        "this benchmark's own threads). CPU share used by other processes per round: "
        f"{', '.join(f'{s:.0%}' for s in share)}.",
    ])


if __name__ == "__main__":
    main()
