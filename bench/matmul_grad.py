"""The input gradient of a dense layer: ``MatMul(dy, W, transpose_b=True)`` against ``BatchMatMulV2``.

    python bench/matmul_grad.py [--rounds 5] [--name matmul_grad]

TensorFlow's registered gradient of ``MatMul`` computes a dense layer's input gradient as
``MatMul(dy, kernel, transpose_b=True)``; ``slimkit.layers.keras_layers.matmul`` computes the same
product as ``BatchMatMulV2(dy, kernel, adj_y=True)``. This times both, with the forward product
and the kernel gradient (``MatMul(x, dy, transpose_a=True)``, unchanged) for scale, at the shapes
of slimkit's models: Deep MNIST's fc1 (3136 -> 1024) at the tutorial's batch 50 and the fast
recipe's 256, AlexNet's fc6 (9216 -> 4096) and fc7 (4096 -> 4096) at batch 32; in float32 and
bfloat16 (what mixed precision multiplies). Each product runs 10 times per compiled call; the
variants of a shape alternate over ``--rounds`` rounds and the median is reported. Then the same
script runs again in a child process with ``TF_ENABLE_ONEDNN_OPTS=0`` (TensorFlow's Eigen kernels),
unless ``--onednn-off`` is the child itself. Writes ``bench/results/<name>.{json,md}``.
"""

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

SHAPES = [("deep_mnist fc1", 50, 3136, 1024), ("deep_mnist fc1", 256, 3136, 1024),
          ("alexnet fc6", 32, 9216, 4096), ("alexnet fc7", 32, 4096, 4096)]
VARIANTS = ("forward", "kernel grad", "input grad MatMul", "input grad BatchMatMulV2")
REPEAT = 10


def time_shape(batch, fan_in, fan_out, dtype, rounds):
    """Median milliseconds per product of each variant at one shape and dtype."""
    import tensorflow as tf

    rng = tf.random.Generator.from_seed(0)
    x, kernel, dy = (tf.Variable(tf.cast(rng.normal(shape), dtype))
                     for shape in ([batch, fan_in], [fan_in, fan_out], [batch, fan_out]))
    products = {
        "forward": lambda: tf.matmul(x, kernel),
        "kernel grad": lambda: tf.matmul(x, dy, transpose_a=True),
        "input grad MatMul": lambda: tf.matmul(dy, kernel, transpose_b=True),
        "input grad BatchMatMulV2": lambda: tf.raw_ops.BatchMatMulV2(x=dy, y=kernel, adj_y=True),
    }
    calls = {}
    for name, product in products.items():
        # A sum of each result, so that no product is pruned; Variables, so none is folded.
        calls[name] = tf.function(lambda p=product: tf.add_n(
            [tf.reduce_sum(tf.cast(p(), tf.float32)) for _ in range(REPEAT)]))
        calls[name]()
    times = {name: [] for name in products}
    for r in range(rounds):
        for name in (VARIANTS if r % 2 == 0 else VARIANTS[::-1]):
            start = time.perf_counter()
            calls[name]().numpy()
            times[name].append(1000 * (time.perf_counter() - start) / REPEAT)
    return {name: round(common.median(t), 3) for name, t in times.items()}


def measure(rounds, dtypes):
    import tensorflow as tf

    rows = []
    for label, batch, fan_in, fan_out in SHAPES:
        for dtype in (tf.as_dtype(d) for d in dtypes):
            ms = time_shape(batch, fan_in, fan_out, dtype, rounds)
            rows.append({"layer": label, "batch": batch, "fan_in": fan_in, "fan_out": fan_out,
                         "dtype": dtype.name, "ms": ms,
                         "speedup": round(ms["input grad MatMul"]
                                          / ms["input grad BatchMatMulV2"], 2)})
            print(rows[-1], flush=True)
    return rows


def table(rows):
    return common.md_table(
        ["layer", "batch", "dtype", *(f"{v} ms" for v in VARIANTS), "MatMul / BatchMatMulV2"],
        [[r["layer"], r["batch"], r["dtype"], *(f"{r['ms'][v]:.2f}" for v in VARIANTS),
          f"{r['speedup']:.2f}x"] for r in rows])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--name", default="matmul_grad")
    parser.add_argument("--dtypes", default="float32,bfloat16",
                        help="e.g. float32 alone where oneDNN has no bf16 kernels (an AVX2 CPU)")
    parser.add_argument("--onednn-off", action="store_true",
                        help="(the child run) measure with TF_ENABLE_ONEDNN_OPTS=0, print JSON")
    args = parser.parse_args()
    dtypes = args.dtypes.split(",")
    if args.onednn_off:  # the parent set TF_ENABLE_ONEDNN_OPTS=0 before this process began
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        print("RESULT " + json.dumps(measure(args.rounds, dtypes)))
        return
    runtime = common.in_process_runtime(deterministic=False)  # oneDNN on, as slimkit runs
    info, intra, _ = runtime
    onednn = measure(args.rounds, dtypes)
    child = subprocess.run([sys.executable, __file__, "--onednn-off", "--rounds",
                            str(args.rounds), "--dtypes", args.dtypes], capture_output=True, text=True, check=True,
                           env={**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0"})
    eigen = json.loads(next(line for line in child.stdout.splitlines()
                            if line.startswith("RESULT "))[len("RESULT "):])
    markdown = "\n\n".join([
        "# A dense layer's input gradient: MatMul with transpose_b against BatchMatMulV2",
        f"Machine: {common.machine_line(info)}; {intra} intra-op threads"
        + (f"; oneDNN limited to `ONEDNN_MAX_CPU_ISA={os.environ['ONEDNN_MAX_CPU_ISA']}`"
           if os.environ.get("ONEDNN_MAX_CPU_ISA") else "") + ".",
        f"Milliseconds per product (median of {args.rounds} alternating rounds of {REPEAT} "
        "products per compiled call). `input grad MatMul` is TensorFlow's gradient of `MatMul` "
        "(`MatMul(dy, W, transpose_b=True)`), `input grad BatchMatMulV2` the same product as "
        "slimkit's dense layers compute it; `forward` and `kernel grad` (the same in both) for "
        "scale.",
        "## oneDNN on (slimkit's setting)", table(onednn),
        "## oneDNN off (`TF_ENABLE_ONEDNN_OPTS=0`, Eigen)", table(eigen)])
    payload = {"machine": info, "rounds": args.rounds, "repeat": REPEAT,
               "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
               "onednn": onednn, "eigen": eigen}
    for path in common.write_results(args.name, payload, markdown, keep_notes=True):
        print("wrote", path)


if __name__ == "__main__":
    main()
