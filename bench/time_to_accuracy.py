"""Wall time and final test accuracy of whole `slimkit train --preset ...` runs.

    SLIMKIT_DATA_DIR=/work/shared/data python bench/time_to_accuracy.py [--quick]
        [--runs softmax,fast] [--seeds 0,1] [--max-time S]

Each run is the command a user types, in a fresh logdir under /tmp (removed afterwards):

    python -m slimkit train --preset NAME --seed S --logdir /tmp/slimkit_tta_XXXX --json [flags]

timed from outside (``wall_s``: process start to exit, so TensorFlow's import, data loading,
compiling, checkpoints and the final test evaluation are all in it), with the final metrics from
its JSON line (``test_accuracy``; ``examples_per_sec`` is the loop's steady-state speed). The
runs go one at a time, interleaved across seeds (A B A B, not A A B B), each with the load average
before/after and the CPU that other processes used meanwhile.

Runs (``--runs``, comma-separated labels): ``softmax`` (mnist-softmax-tutorial), ``fast``
(deep-mnist-fast), ``tutorial`` (deep-mnist-tutorial, 20,000 steps: ~10 min), and tuning variants
of deep-mnist-fast (``fast-4ep``, ``fast-b256``, ``fast-fp32``, ... see VARIANTS). With
``--max-time S`` a run stops after S seconds and its full wall time is *projected* from its
measured speed (marked ``projected`` in the results).

Results accumulate in ``bench/results/time_to_accuracy.{json,md}`` (``--name`` picks another file,
one per kind of machine): a new run replaces the one with the same label and seed. Text below the
line ``<!-- notes -->`` of the .md is kept.
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

# label: (preset, flag overrides[, environment]); the environment is set for that run only.
ONEDNN_OFF = {"TF_ENABLE_ONEDNN_OPTS": "0"}  # TensorFlow's default on CPUs without AVX-512/AMX
VARIANTS = {
    "softmax": ("mnist-softmax-tutorial", {}),
    "fast": ("deep-mnist-fast", {}),
    "tutorial": ("deep-mnist-tutorial", {}),
    "fast-4ep": ("deep-mnist-fast", {"epochs": 4}),
    "fast-3ep": ("deep-mnist-fast", {"epochs": 3}),
    "fast-b256": ("deep-mnist-fast", {"batch_size": 256}),
    "fast-4ep-b256": ("deep-mnist-fast", {"epochs": 4, "batch_size": 256}),
    "fast-b256-6ep": ("deep-mnist-fast", {"batch_size": 256, "epochs": 6}),
    "fast-b256-5ep": ("deep-mnist-fast", {"batch_size": 256, "epochs": 5}),
    "fast-b256-lr4e-3": ("deep-mnist-fast", {"batch_size": 256, "learning_rate": 4e-3}),
    "fast-fp32": ("deep-mnist-fast", {"precision": "fp32"}),
    # 3 epochs of all 60,000 (as Keras' fit trains), the speed run's label smoothing and EMA 0.99:
    "fast-3ep60k-ls": ("deep-mnist-fast", {"epochs": 3, "validation_size": 0,
                                           "label_smoothing": 0.1, "ema_decay": 0.99}),
    "fast-3ep60k-ls-noaug": ("deep-mnist-fast", {"epochs": 3, "validation_size": 0,
                                                 "label_smoothing": 0.1, "ema_decay": 0.99,
                                                 "augment": "none"}),
    "fast-3ep60k-ls-noaug-lr5e-3": ("deep-mnist-fast", {"epochs": 3, "validation_size": 0,
                                                        "label_smoothing": 0.1, "ema_decay": 0.99,
                                                        "augment": "none", "learning_rate": 5e-3}),
    "fast-nodet": ("deep-mnist-fast", {"deterministic": False}),
    # Fewer epochs of all 60,000 with less dropout (fewer epochs need less regularization):
    "fast-4ep60k-kp1": ("deep-mnist-fast", {"epochs": 4, "validation_size": 0, "keep_prob": 1.0}),
    "fast-4ep60k-kp75": ("deep-mnist-fast", {"epochs": 4, "validation_size": 0,
                                             "keep_prob": 0.75}),
    "fast-3ep60k-kp1": ("deep-mnist-fast", {"epochs": 3, "validation_size": 0, "keep_prob": 1.0}),
    "fast-3ep60k-kp75": ("deep-mnist-fast", {"epochs": 3, "validation_size": 0,
                                             "keep_prob": 0.75}),
    "fast-3.5ep60k-kp1": ("deep-mnist-fast", {"epochs": 3.5, "validation_size": 0,
                                              "keep_prob": 1.0}),
    "fast-3.5ep60k-kp75": ("deep-mnist-fast", {"epochs": 3.5, "validation_size": 0,
                                               "keep_prob": 0.75}),
    "fast-3ep60k-kp75-lr5e-3": ("deep-mnist-fast", {"epochs": 3, "validation_size": 0,
                                                    "keep_prob": 0.75, "learning_rate": 5e-3}),
    "fast-3ep60k-lr5e-3": ("deep-mnist-fast", {"epochs": 3, "validation_size": 0,
                                               "learning_rate": 5e-3}),
    "fast-3ep60k-kp75-lr7e-3": ("deep-mnist-fast", {"epochs": 3, "validation_size": 0,
                                                    "keep_prob": 0.75, "learning_rate": 7e-3}),
    "softmax-onednn-off": ("mnist-softmax-tutorial", {}, ONEDNN_OFF),
    "fast-onednn-off": ("deep-mnist-fast", {}, ONEDNN_OFF),
    "fast-b256-6ep-onednn-off": ("deep-mnist-fast", {"batch_size": 256, "epochs": 6}, ONEDNN_OFF),
}
QUICK_STEPS = {"mnist-softmax-tutorial": 50, "deep-mnist-fast": 20, "deep-mnist-tutorial": 20}


def _flags(overrides):
    flags = []
    for key, value in overrides.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + key.replace("_", "-"))
        else:
            flags += [flag, str(value)]
    return flags


def run_once(label, seed, quick=False, max_time=None):
    """One CLI run; returns its record (metrics, wall time, load, command)."""
    preset, overrides, *env = VARIANTS[label]
    overrides, env = dict(overrides), dict(env[0]) if env else {}
    if quick:
        overrides.pop("epochs", None)
        overrides["steps"] = QUICK_STEPS[preset]
    if max_time:
        overrides["max_time"] = max_time
    logdir = tempfile.mkdtemp(prefix="slimkit_tta_", dir="/tmp")
    cmd = [sys.executable, "-m", "slimkit", "train", "--preset", preset, "--seed", str(seed),
           "--logdir", logdir, "--json"] + _flags(overrides)
    try:
        with common.LoadMeter() as meter:
            proc = subprocess.run(cmd, capture_output=True, text=True,
                                  env={**os.environ, **env})
    finally:
        shutil.rmtree(logdir, ignore_errors=True)
    record = {"label": label, "preset": preset, "seed": seed, "overrides": overrides, "env": env,
              "command": " ".join([f"{k}={v}" for k, v in env.items()] + ["slimkit"] + cmd[3:]),
              "returncode": proc.returncode,
              **meter.record()}
    if proc.returncode != 0:
        record["stderr_tail"] = proc.stderr[-2000:]
        return record
    metrics = json.loads(proc.stdout.strip().splitlines()[-1])
    record.update({k: metrics.get(k) for k in ("test_accuracy", "test_loss", "global_step",
                                               "examples_per_sec", "precision", "seconds",
                                               "stopped")})
    record["projected_line"] = next((line for line in proc.stderr.splitlines()
                                     if line.startswith("projected time")), None)
    if metrics.get("stopped") == "max_time":
        total = _total_steps(preset, overrides)
        batch = overrides.get("batch_size") or _preset_value(preset, "batch_size")
        remaining = max(0, total - metrics["global_step"])
        record["projected"] = True
        record["projected_wall_s"] = round(meter.wall + remaining * batch /
                                           metrics["examples_per_sec"], 1)
    return record


def _preset_value(preset, key):
    from slimkit.training.presets import get_preset

    return get_preset(preset).get(key)


def _total_steps(preset, overrides):
    from slimkit.training.config import TrainConfig

    values = {k: v for k, v in overrides.items() if k != "max_time"}
    config = TrainConfig.from_sources(preset, overrides=values)
    return config.total_steps(60000 - config.validation_size)  # MNIST's training split


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a few steps per run: plumbing check only (not saved as results)")
    parser.add_argument("--runs", default="softmax,fast", help=f"labels: {', '.join(VARIANTS)}")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--softmax-seeds", default="0", help="seeds of the softmax runs")
    parser.add_argument("--max-time", type=float, default=None,
                        help="stop each run after S s and project its full wall time")
    parser.add_argument("--report", action="store_true",
                        help="only rewrite the .md from the saved .json (no runs)")
    parser.add_argument("--no-wait", action="store_true", help="don't wait for a quiet machine")
    parser.add_argument("--max-wait", type=float, default=600,
                        help="seconds to wait at most for a 1-min load < 1.5 before measuring")
    parser.add_argument("--name", default="time_to_accuracy",
                        help="results file name: runs of another kind of machine go to a file of "
                             "their own (each file describes one machine)")
    args = parser.parse_args()
    common.data_root()
    labels = [x for x in args.runs.split(",") if x]
    unknown = [x for x in labels if x not in VARIANTS]
    if unknown:
        sys.exit(f"Unknown run label(s) {unknown}. Expected some of: {', '.join(VARIANTS)}.")
    seeds = [int(s) for s in args.seeds.split(",")]
    plan = []
    for seed in seeds:  # interleaved: every label once per seed
        for label in labels:
            if label in ("softmax", "tutorial") and seed not in (
                    [int(s) for s in args.softmax_seeds.split(",")] if label == "softmax" else
                    seeds[:1]):
                continue
            plan.append((label, seed))
    name = args.name + ("_quick" if args.quick else "")
    old = common.RESULTS_DIR / f"{name}.json"
    payload = json.loads(old.read_text()) if old.exists() else {"benchmark": "time_to_accuracy",
                                                                "runs": []}
    if args.report:
        plan = []
    for i, (label, seed) in enumerate(plan):
        # The full wait before the first run; between runs only a short one (the previous run's
        # own load decays in about a minute).
        max_wait = args.max_wait if i == 0 else min(args.max_wait, 60)
        load, waited = (os.getloadavg()[0], 0) if args.no_wait or args.quick else \
            common.wait_for_quiet(max_wait)
        print(f"run {label} seed {seed} (load {load:.2f}, waited {waited} s) ...", flush=True)
        record = run_once(label, seed, args.quick, args.max_time)
        record["waited_for_quiet_s"] = waited
        record["date"] = common.machine()["date"]
        print(json.dumps(record), flush=True)
        payload["runs"] = [r for r in payload["runs"]
                           if (r["label"], r["seed"]) != (label, seed)] + [record]
        payload["machine"] = common.machine()
        save(name, payload)
    if args.report:
        save(name, payload)
    print(markdown(payload))


def save(name, payload):
    """Writes the .json and the .md, keeping the .md's notes (below ``<!-- notes -->``)."""
    common.write_results(name, payload, markdown(payload), keep_notes=True)


def markdown(p):
    order = {label: i for i, label in enumerate(VARIANTS)}
    runs = sorted(p["runs"], key=lambda r: (order.get(r["label"], 99), r["seed"]))
    rows = []
    for r in runs:
        if r["returncode"] != 0:
            rows.append([r["label"], r["seed"], "FAILED", "", "", "", "", "", "", ""])
            continue
        wall = (f"{r['projected_wall_s']:.0f} (projected)" if r.get("projected")
                else f"{r['wall_s']:.1f}")
        cpu = f"{r['own_cpu_s']:.0f}" if "own_cpu_s" in r else "n/a"
        rows.append([r["label"], r["seed"], f"{r['test_accuracy']:.4f}", wall, cpu,
                     r["global_step"], f"{r['examples_per_sec']:,.0f}", r["precision"],
                     f"{r['load_1m_before']:.2f} / {r['load_1m_after']:.2f}",
                     f"{r['others_cpu_share']:.0%}"])
    summary = []
    for label in sorted({r["label"] for r in runs}, key=lambda x: order.get(x, 99)):
        ok = [r for r in runs if r["label"] == label and r["returncode"] == 0]
        if not ok:
            continue
        accs = [r["test_accuracy"] for r in ok]
        walls = [r.get("projected_wall_s") or r["wall_s"] for r in ok]
        _, overrides, *env = VARIANTS[label]
        changes = {**overrides, **(env[0] if env else {})}
        summary.append([label, " ".join(f"`{k}={v}`" for k, v in changes.items()) or "(preset)",
                        len(ok), f"{min(accs):.4f}", f"{max(accs):.4f}",
                        f"{common.median(walls):.1f}"])
    machine = p.get("machine")
    return "\n".join([
        "# Time to accuracy: whole `slimkit train --preset ... --json` runs",
        "",
        f"Machine: {common.machine_line(machine) if machine else '?'}.",
        "",
        "`wall s` = process start to exit (import, data, compile, checkpoints, final test "
        "evaluation included); `cpu s` = CPU seconds the run used (both cores; less sensitive "
        "to competing processes than wall time). `ex/s` = the loop's steady-state examples/s. "
        "`load` = 1-min "
        "load average before / after the run (includes the run itself); `others` = share of the "
        "CPU used by other processes during the run.",
        "",
        common.md_table(["run", "seed", "test acc", "wall s", "cpu s", "steps", "ex/s", "precision",
                         "load", "others"], rows),
        "",
        "## Per run label",
        "",
        common.md_table(["run", "changes vs preset", "runs", "min acc", "max acc",
                         "median wall s"], summary),
    ])


if __name__ == "__main__":
    main()
