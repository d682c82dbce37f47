"""What TensorBoard instrumentation costs: `--summaries default` (and `full`) against `none`.

    SLIMKIT_DATA_DIR=/work/shared/data python bench/summaries_cost.py [--quick] [--rounds 3]
        [--models deep_mnist,alexnet]

Each measurement is the command a user types, in a fresh logdir (removed afterwards):

    python -m slimkit train --preset deep-mnist-fast --steps 1000 --summaries LEVEL --json
    python -m slimkit train --preset alexnet-folder --data-dir <generated folder> --steps 30 ...

The levels of one model run in rounds (every level once per round, the order rotated), and the
medians are compared: ``train_seconds`` (the training loop alone: every step, summary, heavy
summary point, profiler trace and checkpoint of the run; not start-up, nor the final test
evaluation and end-of-run summaries, which are in ``wall_s``) and the steady-state
``examples_per_sec``. The target (issue 8): default costs at most 5% of deep_mnist's training
throughput against none.

deep_mnist: deep-mnist-fast for 1,000 steps (about 2.3 epochs), with the default schedule: heavy
summaries at the first summary point (step 100), every 120 s and at the end, one profiler trace.
AlexNet: alexnet-folder (224x224, batch 32) for 30 steps on a generated folder of 3 classes x 40
JPEGs, summaries every 10 steps (heavy at step 10 and at the end), learning rate 1e-3 (the
preset's 0.01 after 2 warm-up steps diverged in bfloat16 on the AMX Xeon: its warm-up is 500).
``--add --models alexnet`` re-runs one model and keeps the other's records from the results file.
Results: ``bench/results/summaries_cost.{json,md}`` with the machine.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

LEVELS = ("none", "default", "full")
MODELS = {
    "deep_mnist": (["--preset", "deep-mnist-fast", "--steps", "1000"], 20),
    "alexnet": (["--preset", "alexnet-folder", "--steps", "30", "--batch-size", "32",
                 "--save-summaries-steps", "10", "--log-every-n-steps", "10",
                 "--warmup-steps", "2", "--learning-rate", "0.001"], 4),
}


def run_once(model, level, quick, folder):
    flags, quick_steps = MODELS[model]
    flags = list(flags)
    if quick:
        flags[flags.index("--steps") + 1] = str(quick_steps)
    if model == "alexnet":
        flags += ["--data-dir", folder]
    logdir = tempfile.mkdtemp(prefix="slimkit_sumcost_", dir="/tmp")
    cmd = [sys.executable, "-m", "slimkit", "train", *flags, "--summaries", level,
           "--logdir", logdir, "--json"]
    try:
        with common.LoadMeter() as meter:
            proc = subprocess.run(cmd, capture_output=True, text=True)
        size_mb = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(logdir)
                      for f in files if "tfevents" in f or "projector" in d) / 1e6
    finally:
        shutil.rmtree(logdir, ignore_errors=True)
    record = {"model": model, "level": level, "command": " ".join(["slimkit"] + cmd[3:]),
              "returncode": proc.returncode, **meter.record()}
    if proc.returncode != 0:
        record["stderr_tail"] = proc.stderr[-2000:]
        return record
    metrics = json.loads(proc.stdout.strip().splitlines()[-1])
    record.update({k: metrics.get(k) for k in ("train_seconds", "examples_per_sec", "seconds",
                                               "global_step", "precision")})
    record["summary_mb"] = round(size_mb, 1)
    return record


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few steps: plumbing check only")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", default="deep_mnist,alexnet")
    parser.add_argument("--levels", default=",".join(LEVELS))
    parser.add_argument("--max-wait", type=float, default=600)
    parser.add_argument("--add", action="store_true",
                        help="keep the other models' records of the results file (same machine)")
    args = parser.parse_args()
    common.data_root()
    models, levels = args.models.split(","), args.levels.split(",")
    folder = common.make_folder(tempfile.mkdtemp(prefix="slimkit_sumcost_folder_")) \
        if "alexnet" in models else None
    records = []
    try:
        load, waited = common.wait_for_quiet(args.max_wait) if not args.quick else (0, 0)
        for model in models:
            for r in range(1 if args.quick else args.rounds):
                order = levels[r % len(levels):] + levels[:r % len(levels)]  # rotated
                for level in order:
                    print(f"{model} {level} round {r} ...", flush=True)
                    record = run_once(model, level, args.quick, folder)
                    record["round"] = r
                    print(json.dumps(record), flush=True)
                    records.append(record)
    finally:
        if folder:
            shutil.rmtree(folder, ignore_errors=True)
    payload = {"benchmark": "summaries_cost", "machine": common.machine(), "waited_s": waited,
               "records": records}
    name = "summaries_cost" + ("_quick" if args.quick else "")
    if args.add:
        payload = _added(name, payload, models)
    common.write_results(name, payload, markdown(payload))
    print(markdown(payload))


def _added(name, payload, models):
    """``payload`` with the records of other models kept from the results file ``name``."""
    path = common.RESULTS_DIR / f"{name}.json"
    with open(path) as f:
        earlier = json.load(f)
    if earlier["machine"].get("cpu_flags") != payload["machine"].get("cpu_flags") or \
            earlier["machine"].get("cpu") != payload["machine"].get("cpu"):
        sys.exit(f"--add: {path} was measured on another machine; run all models again")
    kept = [r for r in earlier["records"] if r["model"] not in models]
    for r in kept:
        r.setdefault("measured_at", earlier["machine"].get("date"))
    return {**payload, "records": kept + payload["records"]}


def markdown(p):
    rows = []
    for model in dict.fromkeys(r["model"] for r in p["records"]):
        mine = [r for r in p["records"] if r["model"] == model and r["returncode"] == 0]
        base = [r for r in mine if r["level"] == "none"]
        for level in dict.fromkeys(r["level"] for r in mine):
            runs = [r for r in mine if r["level"] == level]
            train = common.median([r["train_seconds"] for r in runs])
            speed = common.median([r["examples_per_sec"] for r in runs])
            wall = common.median([r["wall_s"] for r in runs])
            if base:
                b_train = common.median([r["train_seconds"] for r in base])
                b_speed = common.median([r["examples_per_sec"] for r in base])
                b_wall = common.median([r["wall_s"] for r in base])
                cost = f"{train / b_train - 1:+.1%}"
                # (a --quick run is too short for a steady-state examples/s: 0)
                speed_cost = f"{1 - speed / b_speed:+.1%}" if b_speed else "n/a"
                wall_cost = f"{wall / b_wall - 1:+.1%}"
            else:
                cost = speed_cost = wall_cost = "n/a"
            rows.append([model, level, len(runs), f"{train:.1f}", cost, f"{speed:,.0f}",
                         speed_cost, f"{wall:.1f}", wall_cost,
                         f"{common.median([r['summary_mb'] for r in runs]):.1f}",
                         f"{max(r['others_cpu_share'] for r in runs):.0%}"])
    failed = [r for r in p["records"] if r["returncode"] != 0]
    kept = {r["model"]: r["measured_at"] for r in p["records"] if r.get("measured_at")}
    return "\n".join([
        "# Cost of TensorBoard instrumentation (`--summaries`)",
        "",
        f"Machine: {common.machine_line(p['machine'])}.",
        "",
        *[f"{m}: measured earlier on this machine, run finished {when} (kept by `--add`).\n"
          for m, when in kept.items()],
        "Medians over rounds (levels interleaved, order rotated). `train s` = the training loop "
        "(steps, summaries, heavy-summary points, the profiler trace, checkpoints); `cost` = "
        "train s against `none`; `ex/s` = steady-state examples/s (first 3 calls excluded) and "
        "its loss against `none`; `wall s` = the whole process (start-up, final evaluation, "
        "end-of-run summaries and projector included); `MB` = event and projector files "
        "written; `others` = the largest CPU share other processes took during a run.",
        "",
        common.md_table(["model", "summaries", "runs", "train s", "cost", "ex/s", "ex/s loss",
                         "wall s", "wall cost", "MB", "others"], rows),
        "" if not failed else f"\n{len(failed)} run(s) FAILED: see the .json.",
    ])


if __name__ == "__main__":
    main()
