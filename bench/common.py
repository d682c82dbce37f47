"""Shared helpers of the benchmarks: data location, honest load accounting, medians, result files.

These machines are shared and noisy, so every measurement records what else was running:

- the load average (1 min) before and after it;
- ``others_cpu_s``: CPU seconds that *other* processes used during it, from the machine's busy time
  in ``/proc/stat`` minus this process' own CPU time (and that of the children it waited for).
  ``others_cpu_share`` divides it by wall time x cores: 0 means the machine was ours, 0.5 means
  another job used half of it.

Ratios are measured side by side in one run (variants interleaved in rounds, medians reported), so
a slow phase of the machine hits every variant alike.
"""

import json
import os
import pathlib
import statistics
import sys
import time

BENCH_DIR = pathlib.Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
DEFAULT_DATA_DIR = "/work/shared/data"
_HZ = os.sysconf("SC_CLK_TCK")


def data_root():
    """``SLIMKIT_DATA_DIR`` (set to the default root if unset and present); exits if absent."""
    root = os.environ.get("SLIMKIT_DATA_DIR")
    if not root and os.path.isdir(DEFAULT_DATA_DIR):
        root = os.environ["SLIMKIT_DATA_DIR"] = DEFAULT_DATA_DIR
    if not root or not os.path.isdir(os.path.join(root, "mnist")):
        sys.exit(f"MNIST not found: set SLIMKIT_DATA_DIR to a folder holding mnist/ (the 4 IDX .gz "
                 f"files). Received SLIMKIT_DATA_DIR={root!r}.")
    return root


def _busy_seconds():
    """CPU seconds the whole machine spent busy since boot (all cores)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    steal = fields[7] if len(fields) > 7 else 0
    return (sum(fields[:8]) - idle - steal) / _HZ


def _own_seconds():
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class LoadMeter:
    """Measures one interval: wall time, load before/after, CPU used by other processes.

    Example:
        >>> with LoadMeter() as m:
        ...     work()
        >>> m.record()["others_cpu_share"]
        0.03
    """

    def __enter__(self):
        self.load_before = os.getloadavg()[0]
        self._t0, self._busy0, self._own0 = time.perf_counter(), _busy_seconds(), _own_seconds()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self._t0
        self.own_cpu_s = _own_seconds() - self._own0
        self.others_cpu_s = max(0.0, (_busy_seconds() - self._busy0) - self.own_cpu_s)
        self.load_after = os.getloadavg()[0]
        return False

    def record(self):
        cores = os.cpu_count() or 1
        return {"wall_s": round(self.wall, 3), "load_1m_before": round(self.load_before, 2),
                "load_1m_after": round(self.load_after, 2),
                "own_cpu_s": round(self.own_cpu_s, 2),  # incl. children waited for
                "others_cpu_s": round(self.others_cpu_s, 2),
                "others_cpu_share": round(self.others_cpu_s / max(self.wall * cores, 1e-9), 3)}


def others_share(seconds=5.0):
    """Share of the machine's CPU that other processes used over the next ``seconds``."""
    with LoadMeter() as meter:
        time.sleep(seconds)
    return meter.record()["others_cpu_share"]


def wait_for_quiet(max_wait_s=600, threshold=1.5, log=print):
    """Waits (up to ``max_wait_s``) until the machine is quiet, then returns.

    Quiet: the 1-minute load is below ``threshold``, or other processes used less than 20% of
    the CPU over the last 5 s (the load average still counts our own previous run for a minute
    after it ended; other processes' CPU does not).

    Returns:
        ``(1-min load when starting, seconds waited)``; measures anyway after the wait, saying so.
    """
    t0 = time.monotonic()
    while time.monotonic() - t0 < max_wait_s:
        if os.getloadavg()[0] < threshold:
            break
        share = others_share()
        if share < 0.2:
            break
        log(f"load {os.getloadavg()[0]:.2f}, other processes use {share:.0%} of the CPU: waiting "
            f"({time.monotonic() - t0:.0f}/{max_wait_s:.0f} s)")
        time.sleep(10)
    else:
        log(f"machine still busy after {max_wait_s:.0f} s: measuring anyway (recorded)")
    return os.getloadavg()[0], round(time.monotonic() - t0)


def median(values):
    return statistics.median(values) if values else float("nan")


def machine():
    sys.path.insert(0, str(BENCH_DIR))
    from machine import machine_info

    return machine_info()


NOTES_MARKER = "<!-- notes -->"


def write_results(name, payload, markdown, keep_notes=False):
    """Writes ``bench/results/<name>.json`` and ``.md``; returns their paths.

    With ``keep_notes``, the hand-written conclusions below the line ``<!-- notes -->`` of an
    existing ``.md`` survive the rewrite (the marker is written either way).
    """
    RESULTS_DIR.mkdir(exist_ok=True)
    json_path, md_path = RESULTS_DIR / f"{name}.json", RESULTS_DIR / f"{name}.md"
    json_path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    if keep_notes:
        old = md_path.read_text() if md_path.exists() else ""
        notes = old.split(NOTES_MARKER, 1)[1] if NOTES_MARKER in old else ""
        markdown = markdown.rstrip() + "\n\n" + NOTES_MARKER + notes
    md_path.write_text(markdown.rstrip() + "\n")
    return json_path, md_path


def machine_line(info):
    return (f"{info['cpu']}, {info['cores']} cores, flags {', '.join(info['cpu_flags'])}; "
            f"TensorFlow {info['tensorflow']}, Keras {info['keras']}, NumPy {info['numpy']}; "
            f"{info['date']}")


def md_table(headers, rows):
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def in_process_args(description, rounds, name):
    """The command line of an in-process A/B script: ``--rounds``, ``--no-deterministic``,
    ``--name``."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--no-deterministic", action="store_true")
    parser.add_argument("--name", default=name)
    return parser.parse_args()


def in_process_runtime(deterministic):
    """The machine, then slimkit's process settings as ``slimkit train`` makes them (oneDNN on,
    its CPU threads, deterministic ops unless ``deterministic`` is False).

    Returns:
        ``(machine info, intra-op threads, inter-op threads)`` (0 = TensorFlow's default).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import slimkit  # noqa: F401  (sets TF_ENABLE_ONEDNN_OPTS before TensorFlow loads)
    from slimkit.training import runtime

    info = machine()
    intra, inter = runtime.configure_threads(None, None)
    if deterministic:
        runtime.configure_determinism(0)
    return info, intra, inter


def interleaved_rounds(variants, rounds, examples_per_call, calls=3, log=print):
    """Times in-process ``variants`` (name -> callable) in interleaved rounds.

    Each round calls every variant ``calls`` times, in an order rotated by one each round (so no
    variant always runs first or after the same one). Returns ``{name: [examples/s per round]}``.
    """
    names = list(variants)
    speeds = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = time.perf_counter()
            for _ in range(calls):
                variants[name]()
            speeds[name].append(calls * examples_per_call / (time.perf_counter() - start))
        log(f"round {r + 1}/{rounds}", {k: round(v[-1], 1) for k, v in speeds.items()})
    return speeds


def ratios_to(speeds, base):
    """Per variant: median examples/s and the median over rounds of its ratio to ``base``'s
    examples/s in the same round, as ``({name: record}, table rows)``."""
    results, rows = {}, []
    for name, values in speeds.items():
        ratio = statistics.median(v / b for v, b in zip(values, speeds[base]))
        results[name] = {"examples_per_sec": round(statistics.median(values), 1),
                         f"ratio_to_{base.replace('-', '_')}": round(ratio, 3),
                         "per_round": values}
        rows.append([name, f"{statistics.median(values):,.1f}", f"{ratio:.3f}x"])
    return results, rows


def write_in_process_results(args, runtime, title, setup, base, speeds, extra=None):
    """Writes an in-process A/B (``in_process_args``' command line, ``in_process_runtime``'s
    result, ``interleaved_rounds``' speeds) to ``bench/results/<args.name>.{json,md}``, each
    variant's ratio to ``base`` taken within a round; ``setup`` says what was timed."""
    info, intra, inter = runtime
    results, rows = ratios_to(speeds, base)
    deterministic = not args.no_deterministic
    markdown = "\n\n".join([
        f"# {title}",
        f"Machine: {machine_line(info)}; {intra} intra-op / {inter} inter-op threads (0 = "
        f"TensorFlow's default); deterministic ops {'on' if deterministic else 'off'}.",
        f"{setup}; {args.rounds} interleaved rounds (order rotated). `vs {base}` = median over "
        f"rounds of the variant's examples/s divided by {base}'s in the same round. The script's "
        "docstring says what each variant is.",
        md_table(["variant", "examples/s (median)", f"vs {base}"], rows)])
    payload = {"machine": info, "deterministic": deterministic, "rounds": args.rounds,
               **(extra or {}), "results": results}
    for path in write_results(args.name, payload, markdown, keep_notes=True):
        print("wrote", path)


def make_folder(root, classes=3, per_class=40, size=(256, 320)):
    """A small image folder of coloured noise (class = dominant channel), as JPEG files
    (``compare.py`` and ``summaries_cost.py`` train AlexNet on it)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in range(classes):
        folder = os.path.join(root, f"class{label}")
        os.makedirs(folder, exist_ok=True)
        for i in range(per_class):
            image = rng.integers(0, 90, size + (3,), dtype=np.uint8)
            image[..., label % 3] += 120
            Image.fromarray(image).save(os.path.join(folder, f"{i}.jpg"), quality=90)
    return root
