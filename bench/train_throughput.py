"""Training throughput (examples/s) of slimkit's compiled train step on Deep MNIST.

    SLIMKIT_DATA_DIR=/work/shared/data python bench/train_throughput.py [--quick]

What runs is what ``slimkit train --preset deep-mnist-fast`` runs each call, built from the loop's
own building blocks (``slimkit.runs.build_model``, ``make_optimizer``/``make_schedule``,
``make_train_step`` with the EMA and global step, the ``ArrayFeed`` with ``augment="shift"``):

    images, labels = feed.next_batches(k)                         # NumPy, (k, B, 28, 28, 1)
    result = step(*distribute_batch(strategy, images, labels))    # k compiled steps
    int(result["steps"]); float(result["loss_sum"]); ...          # the one host sync per call
    learning_rate_at(schedule, optimizer.iterations)              # the progress line's lr

Variants: precision fp32 / bf16 (mixed bfloat16) x batch 50 / 128 / 256 x steps_per_call 1 /
default (TrainConfig's); with ``--jit both``, each also with the step compiled by XLA
(``--jit-compile``) at the default steps_per_call, and then all variants without deterministic
ops (XLA has no deterministic max-pool gradient). All are built first (one model each), compiled
and warmed up, then timed in interleaved rounds (every variant once per round, the order rotated
each round); each variant's examples/s is the median over rounds. Not included: checkpoints,
summaries, evaluation, start-up (``bench/time_to_accuracy.py`` measures whole runs).

Writes ``bench/results/train_throughput.{json,md}`` (``--name`` to write another name, e.g. one per
kind of machine; ``--batches 256 --precisions bf16`` to measure fewer variants).
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

PRESET = "deep-mnist-fast"
BATCHES = (50, 128, 256)
PRECISIONS = ("fp32", "bf16")


def build_variant(config, splits, info, data=None):
    """Model, optimizer, EMA, compiled step and feed of one (precision, batch) configuration.

    ``data``: the loop's own ``TrainingData`` (``load_training_data``, e.g. of an image folder),
    whose feed and sizes are used instead of ``splits`` and ``info`` (then None).
    """
    import types

    from slimkit.data.feed import ArrayFeed
    from slimkit.training import checkpoints as ckpt_lib
    from slimkit.training.distribute import make_strategy
    from slimkit.training.ema import ExponentialMovingAverage
    from slimkit.runs import build_model
    from slimkit.training.optimizers import make_optimizer
    from slimkit.training.runtime import precision_policy
    from slimkit.training.schedules import make_schedule
    from slimkit.training.step import StepOptions, make_loss_fn, make_train_step

    if data is None:  # MNIST-format arrays: the loop's ArrayFeed over them
        data = types.SimpleNamespace(
            num_classes=info.num_classes, image_shape=info.image_shape,
            num_train=len(splits.train.labels),
            feed=ArrayFeed(splits.train.images, splits.train.labels, config.batch_size,
                           seed=config.seed, augment=config.augment))
    num_train = data.num_train
    total = config.total_steps(num_train)
    strategy = make_strategy(config.strategy)
    with precision_policy(config.precision), strategy.scope():
        model = build_model(config, data)
        schedule = make_schedule(config, total, num_train / config.batch_size)
        optimizer = make_optimizer(config, schedule)
        optimizer.build(model.trainable_variables)
        ema = ExponentialMovingAverage(model, config.ema_decay) if config.ema_decay else None
        state = ckpt_lib.RunState(model)
    options = StepOptions(global_step=state.global_step, trainable_variables=model.trainable_variables,
                          clip_gradient_norm=config.clip_gradient_norm, ema=ema,
                          jit_compile=config.jit_compile)
    step = make_train_step(model, make_loss_fn(data.num_classes, config.label_smoothing),
                           optimizer, strategy, options)
    return types.SimpleNamespace(config=config, strategy=strategy, step=step, feed=data.feed,
                                 schedule=schedule, optimizer=optimizer)


def run_calls(v, steps, k):
    """Runs ``steps`` training steps as the loop does, ``k`` per call. Returns seconds."""
    from slimkit.training.distribute import distribute_batch
    from slimkit.training.runtime import precision_policy
    from slimkit.training.schedules import learning_rate_at

    with precision_policy(v.config.precision):
        t0 = time.perf_counter()
        done = 0
        while done < steps:
            n = min(k, steps - done)
            images, labels = v.feed.next_batches(n)
            result = v.step(*distribute_batch(v.strategy, images, labels))
            done += int(result["steps"])
            float(result["loss_sum"]), float(result["accuracy_sum"])
            learning_rate_at(v.schedule, v.optimizer.iterations)
        return time.perf_counter() - t0


def _seed_and_determinism(rt, config):
    """Seeds and (if the config says so, as by default) deterministic ops, like slimkit.train."""
    import inspect

    import tensorflow as tf

    if len(inspect.signature(rt.configure_determinism).parameters) == 1:
        rt.configure_determinism(config.seed)
    else:  # older signature: (deterministic, seed)
        rt.configure_determinism(config.deterministic, config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds: plumbing check only")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--examples", type=int, default=7680,
                        help="examples per timed measurement (per variant and round)")
    parser.add_argument("--no-wait", action="store_true", help="don't wait for a quiet machine")
    parser.add_argument("--max-wait", type=float, default=600,
                        help="seconds to wait at most for a 1-min load < 1.5 before measuring")
    parser.add_argument("--jit", choices=("off", "both"), default="off",
                        help="both: also measure each variant with the step compiled by XLA")
    parser.add_argument("--batches", default=",".join(map(str, BATCHES)),
                        help="comma-separated batch sizes")
    parser.add_argument("--precisions", default=",".join(PRECISIONS),
                        help="comma-separated: fp32, bf16")
    parser.add_argument("--name", default="train_throughput", help="results file name")
    args = parser.parse_args()
    common.data_root()
    batches = tuple(int(b) for b in args.batches.split(","))
    precisions = tuple(p.strip() for p in args.precisions.split(","))
    unknown = set(precisions) - set(PRECISIONS)
    if unknown:
        parser.error(f"--precisions: unknown {', '.join(sorted(unknown))}; expected fp32, bf16")
    if args.quick:
        args.rounds, args.examples, batches = 2, 512, (128,)
    # Before starting TensorFlow: our own compiling would raise the load we wait on.
    load_start, waited = (os.getloadavg()[0], 0) if args.no_wait or args.quick else \
        common.wait_for_quiet(args.max_wait)

    from slimkit.training import runtime as rt
    from slimkit.training.config import TrainConfig

    # As slimkit.train does, before TensorFlow starts: threads, then seeds and determinism.
    threads = rt.configure_threads()
    default_spc = TrainConfig().steps_per_call
    # XLA has no deterministic max-pool gradient: with --jit both, every variant runs without them.
    deterministic = {"deterministic": False} if args.jit == "both" else {}
    base = TrainConfig.from_sources(PRESET, overrides=deterministic)
    _seed_and_determinism(rt, base)
    from slimkit.data.registry import get_dataset_info, load_arrays

    info = get_dataset_info("mnist")
    splits = load_arrays("mnist", validation_size=base.validation_size)

    variants = {}
    jits = (False, True) if args.jit == "both" else (False,)
    for precision in precisions:
        for batch in batches:
            for jit in jits:
                config = TrainConfig.from_sources(PRESET, overrides={
                    "precision": precision, "batch_size": batch, "logdir": "/tmp/unused",
                    "jit_compile": jit, **deterministic})
                built = build_variant(config, splits, info)
                for spc in sorted({1, default_spc}) if not jit else (default_spc,):
                    variants[(precision, batch, spc, jit)] = built
    print(f"{len(variants)} variants built; compiling and warming up", flush=True)
    for (precision, batch, spc, jit), v in variants.items():
        run_calls(v, 3 * spc, spc)  # the first call traces; later ones settle the kernels

    keys = list(variants)
    times = {key: [] for key in keys}
    rounds = []
    for r in range(args.rounds):
        order = keys[r % len(keys):] + keys[:r % len(keys)]  # rotate: no variant always first
        with common.LoadMeter() as meter:
            for key in order:
                precision, batch, spc, jit = key
                steps = max(spc, round(args.examples / batch / spc) * spc)
                seconds = run_calls(variants[key], steps, spc)
                times[key].append(steps * batch / seconds)
        rounds.append(meter.record())
        print(f"round {r + 1}/{args.rounds}: {meter.record()}", flush=True)

    results = []
    for key in keys:
        precision, batch, spc, jit = key
        results.append({"precision": precision, "batch_size": batch, "steps_per_call": spc,
                        "jit_compile": jit,
                        "examples_per_sec_median": round(common.median(times[key]), 1),
                        "examples_per_sec_all": [round(x, 1) for x in times[key]]})
    info_m = common.machine()
    payload = {"benchmark": "train_throughput", "quick": args.quick, "preset": PRESET,
               "what": "examples/s of the compiled deep_mnist train step as the loop calls it "
                       "(feed incl. shift augmentation + step + one host sync per call); median "
                       "over interleaved rounds",
               "intra_op_threads": threads[0], "default_steps_per_call": default_spc,
               "deterministic": base.deterministic, "examples_per_measurement": args.examples,
               "load_1m_at_start": round(load_start, 2), "waited_for_quiet_s": waited,
               "rounds": rounds, "results": results, "machine": info_m}
    common.write_results(args.name + ("_quick" if args.quick else ""), payload,
                         markdown(payload))
    print(markdown(payload))


def markdown(p):
    by = {(r["precision"], r["batch_size"], r["steps_per_call"], r.get("jit_compile", False)):
          r["examples_per_sec_median"] for r in p["results"]}
    spcs = sorted({r["steps_per_call"] for r in p["results"]})
    precs = [prec for prec in PRECISIONS if any(k[0] == prec for k in by)]
    headers = ["batch"] + [f"{prec} spc={s}" for prec in precs for s in spcs]
    if len(precs) == 2:
        headers.append(f"bf16/fp32 (spc={spcs[-1]})")
    if len(spcs) == 2 and "bf16" in precs:
        headers.append(f"spc={spcs[-1]} / spc=1 (bf16)")
    rows, xla_rows = [], []
    for b in sorted({r["batch_size"] for r in p["results"]}):
        row = [b] + [f"{by[(prec, b, s, False)]:,.0f}" for prec in precs for s in spcs]
        if len(precs) == 2:
            row.append(f"{by[('bf16', b, spcs[-1], False)] / by[('fp32', b, spcs[-1], False)]:.2f}x")
        if len(spcs) == 2 and "bf16" in precs:
            row.append(f"{by[('bf16', b, spcs[-1], False)] / by[('bf16', b, spcs[0], False)]:.2f}x")
        rows.append(row)
        for prec in precs:
            if (prec, b, spcs[-1], True) in by:
                off, on = by[(prec, b, spcs[-1], False)], by[(prec, b, spcs[-1], True)]
                xla_rows.append([b, prec, spcs[-1], f"{off:,.0f}", f"{on:,.0f}", f"{on / off:.2f}x"])
    xla = ["", "XLA (`jit_compile=True`) against the same step without it:", "",
           common.md_table(["batch", "precision", "spc", "without XLA", "with XLA", "XLA / without"],
                           xla_rows)] if xla_rows else []
    determinism = ("on (the loop's default)" if p["deterministic"] else
                   "off (XLA has no deterministic max-pool gradient)")
    loads = [x for r in p["rounds"] for x in (r["load_1m_before"], r["load_1m_after"])]
    share = [r["others_cpu_share"] for r in p["rounds"]]
    return "\n".join([
        f"# Training throughput: deep_mnist ({p['preset']} settings), examples/s",
        "",
        f"Machine: {common.machine_line(p['machine'])}; {p['intra_op_threads']} intra-op threads; "
        f"deterministic ops {determinism}.",
        "",
        "What: the loop's per-call work (ArrayFeed with shift augmentation, `make_train_step` with "
        "Adam one-cycle + EMA, one host sync per call); median of "
        f"{len(p['rounds'])} interleaved rounds of {p['examples_per_measurement']} examples per "
        "variant. spc = steps_per_call." + (" QUICK RUN: plumbing check only." if p["quick"] else ""),
        "",
        common.md_table(headers, rows),
        *xla,
        "",
        f"Load (1 min) during the rounds: {min(loads):.2f} to {max(loads):.2f} (at start "
        f"{p['load_1m_at_start']}, waited {p['waited_for_quiet_s']} s for < 1.5). CPU share used "
        f"by other processes per round: {', '.join(f'{s:.0%}' for s in share)} (the load average "
        "includes this benchmark's own 2 threads; the CPU share does not).",
    ])


if __name__ == "__main__":
    main()
