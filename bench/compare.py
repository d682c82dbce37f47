"""slimkit side by side with Keras `fit` and the tutorial's TF1 code, in one run (issue 10's targets).

    SLIMKIT_DATA_DIR=/work/shared/data python bench/compare.py [--quick] [--seeds 5]
        [--parts fast,speedrun,keras,tutorial,loop,alexnet] [--rounds 2] [--name compare]
    python bench/compare.py --render --name compare   # the .md again from the .json

Every measurement is a whole process, the command its user types, and the parts interleave
(slimkit's seeds alternate with the Keras runs) so that a slow phase of this shared machine hits
both sides:

- ``fast``: ``slimkit train --preset deep-mnist-fast --seed S`` for S = 0..seeds-1: test accuracy
  (mean, min; one row per precision if the runs differ in it), wall time of the whole process
  (import, data, compile, checkpoints, TensorBoard summaries, final evaluation), peak RSS.
- ``speedrun``: the same for ``--preset mnist-speedrun``.
- ``keras``: the peer ``keras_deep_mnist.py`` (Adam 1e-3, batch 128, plain ``model.fit``) in the
  precision that is faster for Keras on this machine (one epoch of each decides), for up to 5
  epochs: its training time until the first epoch with test accuracy >= 0.992 (the target 2
  baseline) and its examples/s after the first epoch (the target 5 baseline).
- ``tutorial``: ``slimkit train --preset deep-mnist-tutorial --steps N`` against the peer
  ``tf1_deep_mnist.py N`` (TF1 graph, feed_dict): examples/s of the same procedure (batch 50,
  Adam 1e-4, dropout 0.5, fp32).
- ``loop``: slimkit's loop with Keras' settings (Adam 1e-3 fixed, batch 128, no EMA, no
  augmentation, the precision Keras used) against Keras' examples/s from ``keras``.
- ``alexnet``: on a generated folder (3 classes x 100 JPEGs of 256x320, or
  ``--alexnet-photo-size``): the pipeline alone (``folder_pipeline.py``), reading every file
  every epoch, with the images kept decoded in memory (what ``slimkit train`` does when they
  fit in ``--image-cache-mb``) and with them kept resized on disk (what it does when they do
  not), slimkit's loop (``--preset alexnet-folder --summaries none``; also fed from disk with
  ``--alexnet-disk``) and Keras ``fit`` of the same model and pipeline (``keras_alexnet.py``),
  batch 32, 224x224, in the precision slimkit's run resolved (``precision auto``), whatever
  Keras prefers for Deep MNIST.

Writes ``bench/results/<name>.{json,md}`` with the machine, the ratios and the targets, met or
not. Peak RSS is each process's own (``os.wait4``). What limits a missed target (from
``bench/profile_step.py``) is written by hand below ``<!-- notes -->`` in the .md; a rerun keeps it.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

PEERS = os.path.normpath(os.path.join(common.BENCH_DIR, "..", "..", "shared", "peers"))
TARGET_ACCURACY = 0.992


def run(cmd, env=None, timeout=3600):
    """Runs ``cmd``; returns (returncode, stdout, stderr, wall s, LoadMeter record).

    Commands are started through ``bench/rss.py``, which prints the child's peak RSS on stderr.
    """
    with common.LoadMeter() as meter:
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **(env or {})})
        wall = time.perf_counter() - start
    return proc.returncode, proc.stdout, proc.stderr, round(wall, 2), meter.record()


def slimkit_train(args, quick_steps=None, name=None, env=None):
    """One `slimkit train ... --json` run in a fresh logdir; returns its record."""
    logdir = tempfile.mkdtemp(prefix="slimkit_compare_", dir="/tmp")
    cmd = [sys.executable, os.path.join(common.BENCH_DIR, "rss.py"), sys.executable, "-m",
           "slimkit", "train", *args, "--logdir", logdir, "--json"]
    if quick_steps:
        cmd += ["--steps", str(quick_steps)]
    try:
        code, out, err, wall, load = run(cmd, env=env)
    finally:
        shutil.rmtree(logdir, ignore_errors=True)
    record = {"what": name, "command": "slimkit train " + " ".join(args), "returncode": code,
              "wall_s": wall, **load}
    record["peak_rss_mb"] = _rss_of(err)
    if code != 0:
        record["stderr_tail"] = err[-2000:]
        return record
    metrics = json.loads(out.strip().splitlines()[-1])
    record.update({k: metrics.get(k) for k in ("test_accuracy", "validation_accuracy",
                                               "examples_per_sec", "train_seconds", "seconds",
                                               "global_step", "precision")})
    return record


def _rss_of(stderr):
    match = re.findall(r"^peak_rss_mb=([\d.]+)$", stderr, re.M)
    return float(match[-1]) if match else None


def peer(script, *args, env=None):
    """A peer program (``../shared/peers``) run as it is; returns (record, stdout lines)."""
    cmd = [sys.executable, os.path.join(common.BENCH_DIR, "rss.py"), sys.executable,
           os.path.join(PEERS, script), *map(str, args)]
    code, out, err, wall, load = run(cmd, env={"MNIST_DIR": os.path.join(
        os.environ["SLIMKIT_DATA_DIR"], "mnist"), **(env or {})})
    record = {"what": script, "command": " ".join([script, *map(str, args)]), "returncode": code,
              "wall_s": wall, "peak_rss_mb": _rss_of(err), **load}
    if code != 0:
        record["stderr_tail"] = err[-2000:]
    return record, out.strip().splitlines()


def keras_epochs(lines):
    """[{epoch, train_s, img_per_s, test_acc}] from keras_deep_mnist.py's lines."""
    epochs = []
    for line in lines:
        if line.startswith("keras epoch="):
            values = dict(item.split("=") for item in line.split()[1:])
            epochs.append({"epoch": int(values["epoch"]), "train_s": float(values["train_s"]),
                           "img_per_s": float(values["img_per_s"]),
                           "test_acc": float(values["test_acc"])})
    return epochs


def keras_record(precision, epochs):
    flags = ["--bf16"] if precision == "bf16" else []
    record, lines = peer("keras_deep_mnist.py", epochs, 128, *flags)
    record["precision"] = precision
    record["epochs"] = keras_epochs(lines)
    reached = [e for e in record["epochs"] if e["test_acc"] >= TARGET_ACCURACY]
    record["train_s_to_target"] = reached[0]["train_s"] if reached else None
    record["epochs_to_target"] = reached[0]["epoch"] if reached else None
    if len(record["epochs"]) >= 2:  # after the first epoch (which includes compiling)
        e1, e2 = record["epochs"][0], record["epochs"][-1]
        record["steady_img_per_s"] = round(60000 * (e2["epoch"] - e1["epoch"]) /
                                           (e2["train_s"] - e1["train_s"]), 1)
    return record


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few steps: plumbing check only")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--parts", default="fast,speedrun,keras,tutorial,loop,alexnet")
    parser.add_argument("--tutorial-steps", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2,
                        help="interleaved rounds of the throughput parts (tutorial, loop, alexnet)")
    parser.add_argument("--alexnet-steps", type=int, default=40,
                        help="AlexNet steps per run (the first 3 calls of 2 not counted)")
    parser.add_argument("--alexnet-photo-size", default="256x320",
                        help="HxW of the generated JPEGs of the AlexNet folder")
    parser.add_argument("--alexnet-disk", action="store_true",
                        help="also run the AlexNet loop with its images kept on disk "
                             "(--image-cache-mb 0), as for a folder too large for memory")
    parser.add_argument("--max-wait", type=float, default=600)
    parser.add_argument("--name", default="compare")
    parser.add_argument("--render", action="store_true",
                        help="only rewrite <name>.md from <name>.json (notes kept); runs nothing")
    args = parser.parse_args()
    if args.render:
        with open(common.RESULTS_DIR / f"{args.name}.json") as f:
            out = json.load(f)
        common.write_results(args.name, out, markdown(out), keep_notes=True)
        return
    common.data_root()
    parts = set(args.parts.split(","))
    quick = args.quick
    seeds = 1 if quick else args.seeds
    load, waited = (os.getloadavg()[0], 0) if quick else common.wait_for_quiet(args.max_wait)
    out = {"benchmark": "compare", "machine": common.machine(), "waited_s": waited,
           "quick": quick, "records": []}

    def log(record):
        out["records"].append(record)
        print(json.dumps(record), flush=True)

    # Keras' faster precision on this machine: one epoch of each; without that probe, bf16 only
    # with AMX (as slimkit's precision auto; on AVX-512 or AVX2 alone bf16 is the slower one).
    keras_precision = "bf16" if "amx_bf16" in _cpu_flags() else "fp32"
    if "keras" in parts or "loop" in parts:
        probes = {p: keras_record(p, 1) for p in ("bf16", "fp32")}
        for record in probes.values():
            record["what"] = "keras precision probe"
            log(record)
        speeds = {p: r["epochs"][0]["img_per_s"] for p, r in probes.items() if r["epochs"]}
        keras_precision = max(speeds, key=speeds.get) if speeds else keras_precision
        out["keras_precision"] = keras_precision

    # deep-mnist-fast / speedrun seeds, interleaved with the Keras runs.
    keras_runs = 0 if quick else 2
    for seed in range(seeds):
        if "fast" in parts:
            log(slimkit_train(["--preset", "deep-mnist-fast", "--seed", str(seed)],
                              20 if quick else None, "deep-mnist-fast"))
        if "speedrun" in parts:
            log(slimkit_train(["--preset", "mnist-speedrun", "--seed", str(seed)],
                              20 if quick else None, "mnist-speedrun"))
        if "keras" in parts and seed < keras_runs:
            record = keras_record(keras_precision, 5)
            record["what"] = "keras fit"
            log(record)

    for r in range(1 if quick else args.rounds):
        if "tutorial" in parts:
            steps = 50 if quick else args.tutorial_steps
            log(slimkit_train(["--preset", "deep-mnist-tutorial", "--steps", str(steps)],
                              None, "deep-mnist-tutorial"))
            record, lines = peer("tf1_deep_mnist.py", steps)
            found = re.search(r"img_per_s=(\d+) test_acc=([\d.]+)", " ".join(lines))
            record.update(img_per_s=float(found[1]) if found else None,
                          test_acc=float(found[2]) if found else None, what="tf1 graph")
            log(record)
        if "loop" in parts:
            log(slimkit_train(["deep_mnist", "--optimizer", "adam", "--learning-rate", "0.001",
                               "--batch-size", "128", "--keep-prob", "0.5", "--precision",
                               keras_precision, "--steps", "30" if quick else "500",
                               "--summaries", "none", "--save-every-n-secs", "0",
                               "--validation-size", "0"], None, "loop (Keras' settings)"))

    if "alexnet" in parts:
        photo = tuple(int(n) for n in args.alexnet_photo_size.lower().split("x"))
        out["alexnet_photo_size"] = list(photo)
        folder = common.make_folder(tempfile.mkdtemp(prefix="slimkit_compare_folder_"),
                                    per_class=20 if quick else 100, size=photo)
        steps = 4 if quick else args.alexnet_steps
        try:
            for r in range(1 if quick else args.rounds):
                record, lines = _script("folder_pipeline.py", folder, 3 * steps, 32)
                record.update(json.loads(lines[-1]) if lines else {}, what="alexnet pipeline")
                log(record)
                # what the loop's feed does with a folder that fits in --image-cache-mb
                record, lines = _script("folder_pipeline.py", folder, 3 * steps, 32, 224,
                                        "--keep-mb", 1024)
                record.update(json.loads(lines[-1]) if lines else {},
                              what="alexnet pipeline (kept)")
                log(record)
                # ... and with a folder too large for memory: resized once onto disk
                record, lines = _script("folder_pipeline.py", folder, 3 * steps, 32, 224,
                                        "--disk-mb", 100_000)
                record.update(json.loads(lines[-1]) if lines else {},
                              what="alexnet pipeline (on disk)")
                log(record)
                alexnet = ["--preset", "alexnet-folder", "--data-dir", folder, "--steps",
                           str(steps), "--batch-size", "32", "--summaries", "none",
                           "--steps-per-call", "2", "--save-every-n-secs", "0", "--no-keep-best",
                           "--warmup-steps", "2",
                           # (0.01 after 2 warm-up steps diverges in bf16 on AMX)
                           "--learning-rate", "0.001"]
                loop = slimkit_train(alexnet, None, "alexnet loop")
                log(loop)
                if args.alexnet_disk:  # fed from disk (--image-cache-mb 0), as for a folder too
                    cache = tempfile.mkdtemp(prefix="slimkit_compare_cache_")  # large for memory
                    try:
                        # (the loop's precision: the new cache has no measured choice)
                        log(slimkit_train(alexnet + ["--image-cache-mb", "0", "--precision",
                                                     loop.get("precision") or "auto"], None,
                                          "alexnet loop (images on disk)",
                                          env={**os.environ, "XDG_CACHE_HOME": cache}))
                    finally:
                        shutil.rmtree(cache, ignore_errors=True)
                # the same precision as the loop (Deep MNIST's Keras precision may differ)
                flags = ["--bf16"] if loop.get("precision") == "bf16" else []
                record, lines = _script("keras_alexnet.py", folder, steps, 32, *flags)
                record.update(json.loads(lines[-1]) if lines else {}, what="alexnet keras fit",
                              precision="bf16" if flags else "fp32")
                log(record)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    name = args.name + ("_quick" if quick else "")
    common.write_results(name, out, markdown(out), keep_notes=True)
    print(markdown(out))


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].split() for line in f
                         if line.startswith("flags")), [])
    except OSError:
        return []


def _script(script, *args):
    cmd = [sys.executable, os.path.join(common.BENCH_DIR, "rss.py"), sys.executable,
           os.path.join(common.BENCH_DIR, script), *map(str, args)]
    code, out, err, wall, load = run(cmd)
    record = {"command": " ".join([script, *map(str, args)]), "returncode": code, "wall_s": wall,
              "peak_rss_mb": _rss_of(err), **load}
    if code != 0:
        record["stderr_tail"] = err[-2000:]
    return record, out.strip().splitlines()


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _fmt(value, spec=",.0f"):
    return "n/a" if value is None else format(value, spec)


def markdown(p):
    rec = [r for r in p["records"] if r.get("returncode") == 0]
    by = lambda what: [r for r in rec if r.get("what") == what]  # noqa: E731
    lines = ["# slimkit side by side with Keras `fit` and the tutorial's TF1 code", "",
             f"Machine: {common.machine_line(p['machine'])}." +
             (" QUICK RUN: plumbing check only." if p.get("quick") else ""), "",
             "Whole processes, interleaved; medians over runs. `wall s` = process start to exit. "
             "`others` = the largest CPU share other processes took during a run of that row.", ""]
    keras = by("keras fit")
    keras_to_target = _median([r.get("train_s_to_target") for r in keras])
    rows, targets = [], []
    groups = []  # (label, runs): one per preset, or per preset and precision where they differ
    for preset in ("deep-mnist-fast", "mnist-speedrun"):
        precisions = sorted({r.get("precision") for r in by(preset)}, key=str)
        groups += [(preset if len(precisions) == 1 else f"{preset} ({precision} runs)",
                    [r for r in by(preset) if r.get("precision") == precision])
                   for precision in precisions]
    for label, runs in groups:
        preset = label.split()[0]
        accs = [r["test_accuracy"] for r in runs]
        wall = _median([r["wall_s"] for r in runs])
        ratio = keras_to_target / wall if keras_to_target and wall else None
        rows.append([label, len(runs), f"{statistics.mean(accs):.4f}",
                     f"{min(accs):.4f}-{max(accs):.4f}", _fmt(wall, ".1f"),
                     _fmt(ratio, ".2f") + ("x" if ratio else ""),
                     _fmt(_median([r["peak_rss_mb"] for r in runs])),
                     runs[0].get("precision"), f"{max(r['others_cpu_share'] for r in runs):.0%}"])
        mean_ok = statistics.mean(accs) >= TARGET_ACCURACY and min(accs) >= 0.991
        if preset == "deep-mnist-fast":
            targets.append((f"2. {label}: mean >= 0.992, every seed >= 0.991, >= 2x Keras "
                            "fit's time to 0.992", mean_ok and bool(ratio and ratio >= 2),
                            f"mean {statistics.mean(accs):.4f}, min {min(accs):.4f}, "
                            f"{_fmt(ratio, '.2f')}x Keras"))
            rss = _median([r["peak_rss_mb"] for r in runs])
            targets.append((f"7. peak RSS of {label} <= 1.5 GB", bool(rss and rss <= 1536),
                            f"{_fmt(rss)} MB"))
        else:
            targets.append((f"3. {label}: mean >= 0.992 in <= 30 s wall",
                            statistics.mean(accs) >= TARGET_ACCURACY and bool(wall and wall <= 30),
                            f"mean {statistics.mean(accs):.4f}, {_fmt(wall, '.1f')} s"))
    if rows:  # not when only the throughput parts ran
        lines += ["## Time to accuracy (targets 2, 3, 7)", "",
                  common.md_table(["preset", "seeds", "mean acc", "range", "wall s", "vs Keras",
                                   "peak RSS MB", "precision", "others"], rows), ""]
    if keras:
        k = keras[0]
        lines += [f"Keras `fit` ({p.get('keras_precision')}, batch 128, Adam 1e-3; "
                  f"{len(keras)} runs): epochs to >= 0.992: "
                  f"{', '.join(str(r.get('epochs_to_target')) for r in keras)}; training time to "
                  f"it {_fmt(keras_to_target, '.1f')} s (median); per-epoch accuracy of the first "
                  f"run: {', '.join(format(e['test_acc'], '.4f') for e in k['epochs'])}; peak RSS "
                  f"{_fmt(_median([r['peak_rss_mb'] for r in keras]))} MB.", ""]
    probes = by("keras precision probe")
    if probes:
        lines += ["Keras' precision probe (one epoch each): " + ", ".join(
            f"{r['precision']} {_fmt(r['epochs'][0]['img_per_s'])} img/s" for r in probes
            if r["epochs"]) + ".", ""]
    tut, tf1 = by("deep-mnist-tutorial"), by("tf1 graph")
    loop = by("loop (Keras' settings)")
    rows = []
    if tut and tf1:
        a, b = _median([r["examples_per_sec"] for r in tut]), _median([r["img_per_s"] for r in tf1])
        rows.append(["deep-mnist-tutorial vs TF1 graph (fp32, batch 50)", _fmt(a), _fmt(b),
                     f"{a / b:.2f}x" if a and b else "n/a"])
        targets.append(("4. deep-mnist-tutorial at least as fast as the TF1 graph code",
                        bool(a and b and a >= b), f"{a / b:.2f}x" if a and b else "n/a"))
    keras_speed = _median([r.get("steady_img_per_s") for r in keras])
    if loop and keras_speed:
        a = _median([r["examples_per_sec"] for r in loop])
        rows.append([f"loop vs Keras fit (deep_mnist, batch 128, {p.get('keras_precision')})",
                     _fmt(a), _fmt(keras_speed), f"{a / keras_speed:.2f}x"])
        targets.append(("5. loop >= 1.1x Keras fit (deep_mnist)", a >= 1.1 * keras_speed,
                        f"{a / keras_speed:.2f}x"))
    alex_loop, alex_keras, pipe = by("alexnet loop"), by("alexnet keras fit"), by(
        "alexnet pipeline")
    if alex_loop and alex_keras:
        a = _median([r["examples_per_sec"] for r in alex_loop])
        b = _median([r["examples_per_sec"] for r in alex_keras])
        # (Keras records before 2026-12-06 have no precision: Deep MNIST's Keras precision)
        precisions = "/".join(sorted({r.get("precision") or str(p.get("keras_precision"))
                                      for r in alex_loop + alex_keras}))
        rows.append([f"loop vs Keras fit (alexnet 224x224, batch 32, {precisions})",
                     _fmt(a, ",.1f"), _fmt(b, ",.1f"), f"{a / b:.2f}x" if a and b else "n/a"])
        targets.append(("5. loop >= 1.1x Keras fit (alexnet)", bool(a and b and a >= 1.1 * b),
                        f"{a / b:.2f}x" if a and b else "n/a"))
    kept = [r for r in by("alexnet pipeline (kept)") if r.get("kept_mb")]  # (None: not kept)
    on_disk = [r for r in by("alexnet pipeline (on disk)") if r.get("disk_mb")]
    photo = "x".join(map(str, p.get("alexnet_photo_size") or (256, 320)))
    if pipe and alex_loop:
        a = _median([r["examples_per_sec"] for r in pipe])
        b = _median([r["examples_per_sec"] for r in alex_loop])
        rows.append([f"alexnet: pipeline alone ({photo} JPEGs read every epoch) vs what "
                     "training consumes", _fmt(a, ",.1f"), _fmt(b, ",.1f"),
                     f"{a / b:.2f}x" if a and b else "n/a"])
        targets.append(("6. the image-folder pipeline delivers >= 2x what AlexNet consumes "
                        "(files read every epoch: both caches off)", bool(a and b and a >= 2 * b),
                        f"{a / b:.2f}x" if a and b else "n/a"))
        for records, what in ((kept, "images kept decoded in memory, as the loop does when "
                                      "they fit"),
                              (on_disk, "images kept resized on disk, as the loop does when they "
                                        "do not fit in memory")):
            c = _median([r["examples_per_sec"] for r in records]) if records else None
            if c:
                rows.append([f"alexnet: pipeline alone ({what}) vs what training consumes",
                             _fmt(c, ",.1f"), _fmt(b, ",.1f"), f"{c / b:.2f}x" if b else "n/a"])
                targets.append((f"6. the image-folder pipeline delivers >= 2x what AlexNet "
                                f"consumes ({what})", bool(b and c >= 2 * b),
                                f"{c / b:.2f}x" if b else "n/a"))
    disk_loop = by("alexnet loop (images on disk)")
    if disk_loop and alex_keras:
        a = _median([r["examples_per_sec"] for r in disk_loop])
        b = _median([r["examples_per_sec"] for r in alex_keras])
        rows.append(["loop fed from disk (--image-cache-mb 0) vs Keras fit (alexnet)",
                     _fmt(a, ",.1f"), _fmt(b, ",.1f"), f"{a / b:.2f}x" if a and b else "n/a"])
    if rows:
        lines += ["## Throughput (targets 4, 5, 6), examples/s", "",
                  common.md_table(["what", "slimkit", "peer", "ratio"], rows), ""]
    rss_rows = [[w, _fmt(_median([r.get("peak_rss_mb") for r in by(w)]))]
                for w in ("deep-mnist-fast", "mnist-speedrun", "deep-mnist-tutorial",
                          "alexnet loop") if by(w)]
    if rss_rows:
        lines += ["## Peak RSS per preset (MB)", "", common.md_table(["run", "peak RSS MB"],
                                                                     rss_rows), ""]
    lines += ["## Targets", "", common.md_table(["target", "met", "measured"], [
        [t, "yes" if ok else "**no**", m] for t, ok, m in targets]), ""]
    failed = [r for r in p["records"] if r.get("returncode") != 0]
    if failed:
        lines.append(f"{len(failed)} run(s) FAILED (see the .json).")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
