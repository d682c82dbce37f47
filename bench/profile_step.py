"""Where a training step's time goes: TensorFlow's own profiler on the loop's real step.

    SLIMKIT_DATA_DIR=/work/shared/data python bench/profile_step.py [--quick]
        [--presets deep-mnist-fast,mnist-speedrun,deep-mnist-tutorial,alexnet-folder] [--calls 4]
        [--rounds 3] [--name profile_step]

For each preset, the train step ``slimkit train --preset P`` runs (built from the loop's own blocks,
as ``train_throughput.py`` builds it: model, optimizer, EMA, ``make_train_step``, ``ArrayFeed``; the
preset's precision, batch and steps per call) is compiled and warmed up, then ``--calls`` calls of
it run under ``tf.profiler.experimental`` and the trace (XSpace) is read back:

- ``cpu``: the process's CPU time over wall time x cores during the unprofiled calls (100% = both
  cores computing all the time; the rest is idle: ops that use one core, waits, Python);
- ``ops running``: the share of the wall time during which at least one op was executing (the
  rest: between calls, the feed, the host sync);
- ``in function``: the share of the wall time the Python thread was inside the compiled function
  (the rest is Python: the feed, the host sync, the progress line);
- op time by kind (``forward``, ``backward`` = under the gradient tape, ``update`` = optimizer, EMA,
  step counters) and by op type, as shares of all op time;
- the cost of deterministic ops (issue 10's lever): the same step built and run with them off,
  timed against the preset's setting in interleaved rounds (``--rounds``), unprofiled.

``alexnet-folder`` (not in the default list) trains on a generated folder (3 classes x 100 JPEGs
of 256x320, ``common.make_folder``) at batch 32, as ``compare.py``'s AlexNet part, through the
loop's own data (``load_training_data``: the ``FolderFeed``, with the images kept decoded in
memory as ``slimkit train`` keeps them).

This answers "compute, Python overhead or input pipeline?" for issue 10's missed targets (a step
bound by compute shows cpu, ops running and in-function near 100%). Memory bandwidth is not measured
directly. Writes ``bench/results/<name>.{json,md}`` (``_quick`` with ``--quick``); hand-written
conclusions below ``<!-- notes -->`` in the .md survive a rerun.
"""

import argparse
import collections
import glob
import os
import re
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import train_throughput  # noqa: E402

PRESETS = ("deep-mnist-fast", "mnist-speedrun", "deep-mnist-tutorial")
OP_EVENT = re.compile(r"^(?P<name>[^:]+):(?P<type>_?[A-Z][A-Za-z0-9_]*)$")


def read_trace(logdir):
    """The XSpace the profiler wrote under ``logdir``."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    paths = sorted(glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb")))
    space = xplane_pb2.XSpace()
    with open(paths[-1], "rb") as f:
        space.ParseFromString(f.read())
    return space


def summarize(space, wall_s, model):
    """Share of the wall time with ops running, in-function share of Python, op time by kind and
    type.

    An op is ``forward`` when its name is under the model's scope (``deep_mnist_1/...``) and not
    under the gradient tape, ``backward`` under the tape, ``update`` otherwise.
    """
    forward = re.compile(rf"(^|/){re.escape(model)}(_\d+)?/")
    host = next(p for p in space.planes if p.name == "/host:CPU")
    names = {k: m.name for k, m in host.event_metadata.items()}
    by_kind, by_type = collections.Counter(), collections.Counter()
    intervals, in_function = [], 0.0
    for line in host.lines:
        if line.name.startswith("tf_Compute"):
            for event in line.events:
                name, seconds = names[event.metadata_id], event.duration_ps / 1e12
                if name == "ExecutorState::Process":
                    start = line.timestamp_ns * 1e-9 + event.offset_ps * 1e-12
                    intervals.append((start, start + seconds))
                    continue
                match = OP_EVENT.match(name)
                if not match:
                    continue
                scope = match["name"]
                kind = ("backward" if "gradient_tape" in scope else
                        "forward" if forward.search(scope) else "update")
                by_kind[kind] += seconds
                by_type[match["type"].lstrip("_").replace("MklNative", "").replace(
                    "Mkl", "")] += seconds
        elif line.name == "python":
            in_function += sum(e.duration_ps / 1e12 for e in line.events
                               if names[e.metadata_id].startswith("EagerLocalExecute: __inference"))
    total = sum(by_kind.values()) or 1.0
    top = by_type.most_common(12)
    rest = total - sum(t for _, t in top)
    covered, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):  # the union: time when at least one op was running
        covered += max(0.0, stop - max(start, end))
        end = max(end, stop)
    return {"ops_running_share": round(covered / wall_s, 3),
            "in_function_share": round(in_function / wall_s, 3),
            "op_seconds": round(total, 3),
            "by_kind": {k: round(v / total, 3) for k, v in by_kind.most_common()},
            "by_type": {**{k: round(v / total, 3) for k, v in top}, "other": round(rest / total, 3)}}


def profile(preset, splits, info, calls, rounds, quick, overrides=None):
    """Profiles the preset's step (deterministic ops as the preset says), then times it against
    the same step with the other determinism setting, interleaved over ``rounds``. With a
    ``data_dir`` in ``overrides`` (an image folder), the loop's own data feeds the step."""
    import tensorflow as tf

    from slimkit.models.registry import get_model_spec
    from slimkit.training.config import TrainConfig
    from slimkit.training.data import load_training_data
    from slimkit.training.runtime import choose_precision, configure_determinism, op_determinism

    overrides = {"logdir": "/tmp/unused", **(overrides or {})}
    config = TrainConfig.from_sources(preset, overrides=overrides)
    precision = choose_precision(config.precision, config.model, config)[0]  # as slimkit.train does
    spc = config.steps_per_call
    steps = (1 if quick else calls) * spc
    variants = {}
    for deterministic in (config.deterministic, not config.deterministic):
        configure_determinism(config.seed)
        c = TrainConfig.from_sources(preset, overrides={
            **overrides, "precision": precision, "deterministic": deterministic})
        data = None
        if c.dataset == "folder":
            data = load_training_data(c, get_model_spec(c.model).input_shape)
            data.prepare(print)  # the images kept in memory, as slimkit.train does
        with op_determinism(deterministic):
            variants[deterministic] = train_throughput.build_variant(c, splits, info, data)
            train_throughput.run_calls(variants[deterministic], 3 * spc, spc)  # trace, settle

    cpu = {True: [], False: []}

    def timed(deterministic):
        before = time.process_time()
        with op_determinism(deterministic):
            seconds = train_throughput.run_calls(variants[deterministic], steps, spc)
        cpu[deterministic].append((time.process_time() - before) / (seconds * os.cpu_count()))
        return seconds

    logdir = tempfile.mkdtemp(prefix="slimkit_profile_")
    tf.profiler.experimental.start(logdir)
    wall = timed(config.deterministic)
    tf.profiler.experimental.stop()
    summary = summarize(read_trace(logdir), wall, config.model)
    shutil.rmtree(logdir, ignore_errors=True)
    seconds = {True: [], False: []}
    for r in range(1 if quick else rounds):  # unprofiled, interleaved, order alternating
        for deterministic in ((True, False) if r % 2 == 0 else (False, True)):
            seconds[deterministic].append(timed(deterministic))
    speed = {d: steps * config.batch_size / common.median(t) for d, t in seconds.items()}
    return {"preset": preset, "model": config.model, "precision": precision,
            "batch_size": config.batch_size, "steps_per_call": spc, "steps": steps,
            "deterministic": config.deterministic, "wall_s_profiled": round(wall, 3),
            "ms_per_step": round(1000 * common.median(seconds[config.deterministic]) / steps, 2),
            "examples_per_sec": round(speed[config.deterministic], 1),
            "examples_per_sec_deterministic": round(speed[True], 1),
            "examples_per_sec_nondeterministic": round(speed[False], 1),
            "nondeterministic_speedup": round(speed[False] / speed[True], 3),
            "cpu_share": round(common.median(cpu[config.deterministic][1:]), 3), **summary}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one call per preset: plumbing check")
    parser.add_argument("--presets", default=",".join(PRESETS))
    parser.add_argument("--calls", type=int, default=4, help="calls per preset and measurement")
    parser.add_argument("--rounds", type=int, default=3, help="deterministic on/off rounds")
    parser.add_argument("--max-wait", type=float, default=600)
    parser.add_argument("--name", default="profile_step", help="results file name (per machine)")
    args = parser.parse_args()
    common.data_root()
    _, waited = (os.getloadavg()[0], 0) if args.quick else common.wait_for_quiet(args.max_wait)

    from slimkit.training import runtime as rt
    from slimkit.training.config import TrainConfig

    threads = rt.configure_threads()  # as slimkit.train does, before TensorFlow starts
    from slimkit.data.registry import get_dataset_info, load_arrays

    info = get_dataset_info("mnist")
    records = []
    for preset in args.presets.split(","):
        base = TrainConfig.from_sources(preset)
        folder, splits, overrides = None, None, None
        if base.dataset == "folder":
            folder = common.make_folder(tempfile.mkdtemp(prefix="slimkit_profile_folder_"),
                                        per_class=100)
            overrides = {"data_dir": folder, "batch_size": 32, "warmup_steps": 2,
                         "learning_rate": 0.001}  # as compare.py's AlexNet part
        else:
            splits = load_arrays("mnist", validation_size=base.validation_size)
        try:
            with common.LoadMeter() as meter:
                record = profile(preset, splits, info, args.calls, args.rounds, args.quick,
                                 overrides)
        finally:
            if folder:
                shutil.rmtree(folder, ignore_errors=True)
        record.update(meter.record())
        records.append(record)
        print(record, flush=True)
    payload = {"benchmark": "profile_step", "quick": args.quick, "intra_op_threads": threads[0],
               "waited_s": waited, "machine": common.machine(), "records": records}
    name = args.name + ("_quick" if args.quick else "")
    common.write_results(name, payload, markdown(payload), keep_notes=True)
    print(markdown(payload))


def markdown(p):
    rows = []
    for r in p["records"]:
        rows.append([r["preset"], f"{r['model']}, {r['precision']}, batch {r['batch_size']}",
                     f"{r['ms_per_step']:.1f}", f"{r['examples_per_sec']:,.0f}",
                     f"{r['nondeterministic_speedup']:.2f}x",
                     f"{r['cpu_share']:.0%}", f"{r['ops_running_share']:.0%}",
                     f"{r['in_function_share']:.0%}",
                     ", ".join(f"{k} {v:.0%}" for k, v in r["by_kind"].items()),
                     ", ".join(f"{k} {v:.0%}" for k, v in r["by_type"].items()),
                     f"{r['others_cpu_share']:.0%}"])
    return "\n".join([
        "# Where a training step's time goes (TensorFlow profiler on the loop's step)", "",
        f"Machine: {common.machine_line(p['machine'])}; {p['intra_op_threads']} intra-op threads."
        + (" QUICK RUN: plumbing check only." if p.get("quick") else ""), "",
        "`ms/step`, `ex/s`: the same calls unprofiled, deterministic ops on (the presets' "
        "default, for exact resume); `det. off` = examples/s with them off against on (median "
        "of interleaved rounds). `cpu` = CPU time / (wall x cores) of those calls; `ops running` = "
        "share of wall time with at least one op executing; `in function` = share the Python thread spent inside the compiled "
        "step; op shares are of all op time (`backward` = under the gradient tape, `update` = "
        "optimizer, EMA, counters).", "",
        common.md_table(["preset", "step", "ms/step", "ex/s", "det. off", "cpu", "ops running",
                         "in function",
                         "op time",
                         "op types", "others"], rows)])


if __name__ == "__main__":
    main()
