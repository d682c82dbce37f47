"""mnist-speedrun: the examples/s of mnist_speedrun's forms, in one process, interleaved.

    python bench/speedrun_step.py [--precision fp32|bf16] [--rounds 6] [--no-deterministic]
        [--name speedrun_step]

Each variant is ``slimkit train --preset mnist-speedrun``'s compiled step (batch 256, Adam, label
smoothing, EMA, 10 steps per call) fed by the loop's ``ArrayFeed``, as
``bench/train_throughput.py`` builds it, for one form of the net (``--model-kwargs``):

- ``current``: the net's defaults since 2026-12-06 (conv1 5x5/2 to 12x12x16, conv2 3x3 48 wide);
- ``until-12-06``: ``conv1_stride=1, conv2=64`` (conv1 on 24x24 maps, a 2x2 pool, conv2 64);
- ``stride-only``: ``conv2=64``, the stride without the narrower conv2;
- ``conv2-48-only``: ``conv1_stride=1``, the narrower conv2 without the stride.

Run with ``ONEDNN_MAX_CPU_ISA=AVX2`` in the environment to hold oneDNN's kernels to AVX2 on a
newer CPU (recorded in the results): a stand-in, not a measurement, of a CPU with AVX2 only.
Whole runs and their accuracy are ``bench/compare.py``'s. Writes ``bench/results/<name>.{json,md}``.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

FORMS = {"current": {}, "until-12-06": {"conv1_stride": 1, "conv2": 64},
         "stride-only": {"conv2": 64}, "conv2-48-only": {"conv1_stride": 1}}
STEPS_PER_VARIANT_CALL = 30


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--no-deterministic", action="store_true")
    parser.add_argument("--name", default="speedrun_step")
    args = parser.parse_args()
    runtime = common.in_process_runtime(not args.no_deterministic)

    import train_throughput

    from slimkit.data.registry import get_dataset_info, load_arrays
    from slimkit.training.config import TrainConfig

    info = get_dataset_info("mnist")
    splits = load_arrays("mnist", validation_size=0)
    variants, batch = {}, None
    for name, kwargs in FORMS.items():
        config = TrainConfig.from_sources("mnist-speedrun", overrides={
            "precision": args.precision, "model_kwargs": kwargs, "logdir": "/tmp/unused",
            "deterministic": not args.no_deterministic})
        built = train_throughput.build_variant(config, splits, info)
        train_throughput.run_calls(built, 3 * config.steps_per_call, config.steps_per_call)  # warm
        variants[name] = (lambda v=built, k=config.steps_per_call:
                          train_throughput.run_calls(v, STEPS_PER_VARIANT_CALL, k))
        batch = config.batch_size
    speeds = common.interleaved_rounds(variants, args.rounds, STEPS_PER_VARIANT_CALL * batch)
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA") or "not set (oneDNN uses the CPU's best)"
    common.write_in_process_results(
        args, runtime, "mnist-speedrun: the step of each form of mnist_speedrun",
        f"{args.precision}, batch {batch}, the preset's step and feed, {STEPS_PER_VARIANT_CALL} "
        f"steps per timed call, 3 calls per variant per round; ONEDNN_MAX_CPU_ISA {isa}",
        "until-12-06", speeds,
        extra={"precision": args.precision, "onednn_max_cpu_isa": os.environ.get(
            "ONEDNN_MAX_CPU_ISA"), "forms": FORMS})


if __name__ == "__main__":
    main()
