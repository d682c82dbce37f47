"""Where the tutorial's step differs from TF1's: in one process, interleaved (target 4's profile).

    python bench/tutorial_step.py [--rounds 12] [--no-deterministic] [--name tutorial_step]

Whole-process comparisons (``compare.py``) of slimkit's ``deep-mnist-tutorial`` and the peer
``tf1_deep_mnist.py`` drift by +-10% on these shared machines between runs a minute apart. Here
every variant lives in one process and is timed in the same rounds (the order rotated each
round), so a ratio to TF1 is taken within a round. All train the Deep MNIST network at the
tutorial's settings (batch 50, Adam 1e-4, dropout 0.5, fp32) on the same 10 random batches:

- ``tf1``: the peer's graph (``tf.compat.v1``, placeholders, ``session.run`` with ``feed_dict``
  per step), built in its own ``tf.Graph``;
- ``slimkit``: ``make_train_step`` as ``slimkit train`` builds it (10 steps per call; loss,
  accuracy and gradient-norm sums, the non-finite guard, ``global_step``);
- ``plain``: the same model and fused Adam in a bare ``tf.range`` loop of 10 steps per call;
- ``plain+norm``: ``plain`` plus one ``L2Loss`` per gradient summed (what the guard reads), not
  gating the update;
- ``plain+guard``: ``plain+norm`` with the update applied only if loss and that sum are finite
  (the loop breaks otherwise): the guard's cost without slimkit's other sums;
- ``plain+loss-guard``: the update gated on the loss alone (no pass over the gradients);
- ``plain-unrolled``: ``plain`` with its 10 steps written out in the graph (no ``while`` loop).

Deterministic ops are on (slimkit's default; ``--no-deterministic`` turns them off for every
variant). Not included: data feeding, summaries, checkpoints, progress (whole runs: compare.py).
Writes ``bench/results/<name>.{json,md}``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

K, BATCH = 10, 50  # steps per call, the tutorial's batch


def tf1_variant(images, labels):
    """The peer's graph and session; ``run()`` does K session.run steps with feed_dict."""
    import numpy as np
    import tensorflow as tf

    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        x = v1.placeholder(tf.float32, [None, 784])
        y_ = v1.placeholder(tf.float32, [None, 10])
        keep = v1.placeholder(tf.float32)

        def weight(shape):
            return tf.Variable(v1.truncated_normal(shape, stddev=0.1, seed=1))

        def bias(shape):
            return tf.Variable(tf.constant(0.1, shape=shape))

        def conv(a, w):
            return tf.nn.conv2d(a, w, [1, 1, 1, 1], "SAME")

        def pool(a):
            return tf.nn.max_pool2d(a, 2, 2, "SAME")

        h = tf.reshape(x, [-1, 28, 28, 1])
        h = pool(tf.nn.relu(conv(h, weight([5, 5, 1, 32])) + bias([32])))
        h = pool(tf.nn.relu(conv(h, weight([5, 5, 32, 64])) + bias([64])))
        h = tf.nn.relu(tf.matmul(tf.reshape(h, [-1, 3136]), weight([3136, 1024])) + bias([1024]))
        h = v1.nn.dropout(h, keep_prob=keep, seed=2)
        logits = tf.matmul(h, weight([1024, 10])) + bias([10])
        loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=y_, logits=logits))
        step = v1.train.AdamOptimizer(1e-4).minimize(loss)
        init = v1.global_variables_initializer()
    session = v1.Session(graph=graph)
    session.run(init)
    flat = images.reshape(K, BATCH, 784)
    onehot = np.eye(10, dtype=np.float32)[labels]

    def run():
        for i in range(K):
            session.run(step, {x: flat[i], y_: onehot[i], keep: 0.5})
    return run


def tf2_variant(kind, images, labels):
    """slimkit's step, or a bare tf.range loop with the guard's parts added one at a time."""
    import tensorflow as tf

    from slimkit.models.registry import get_model
    from slimkit.training.config import TrainConfig
    from slimkit.training.optimizers import make_optimizer
    from slimkit.training.step import StepOptions, make_loss_fn, make_train_step

    model = get_model("deep_mnist")
    optimizer = make_optimizer(TrainConfig(optimizer="adam", opt_epsilon=1e-8), 1e-4)
    optimizer.build(model.trainable_variables)
    loss_fn = make_loss_fn(10)
    if kind == "slimkit":
        step = make_train_step(model, loss_fn, optimizer,
                               options=StepOptions(global_step=tf.Variable(0, dtype=tf.int64)))
        return lambda: float(step(images, labels)["loss_sum"])

    # plain-unrolled: the same K steps written out in the graph (a Python loop), no `while`.
    @tf.function
    def steps(xs, ys):
        total = tf.constant(0.0)
        for i in (range(K) if kind == "plain-unrolled" else tf.range(K)):
            with tf.GradientTape() as tape:
                loss = loss_fn(model(xs[i], training=True), ys[i])
            grads = tape.gradient(loss, model.trainable_variables)
            finite = tf.math.is_finite(loss)
            if kind in ("plain+norm", "plain+guard"):
                half = tf.add_n([tf.nn.l2_loss(g) for g in grads])
                finite = tf.logical_and(finite, tf.math.is_finite(half))
                total += half
            if kind in ("plain+guard", "plain+loss-guard"):
                if not finite:
                    break
            optimizer.apply(grads, model.trainable_variables)
            total += loss
        return total

    return lambda: float(steps(images, labels))


KINDS = ("tf1", "slimkit", "plain", "plain+norm", "plain+guard", "plain+loss-guard",
         "plain-unrolled")


def main():
    args = common.in_process_args(__doc__.splitlines()[0], rounds=12, name="tutorial_step")
    runtime = common.in_process_runtime(not args.no_deterministic)
    import numpy as np

    rng = np.random.default_rng(0)
    images = rng.random((K, BATCH, 28, 28, 1), np.float32)
    labels = rng.integers(0, 10, (K, BATCH)).astype(np.int32)
    variants = {kind: (tf1_variant(images, labels) if kind == "tf1"
                       else tf2_variant(kind, images, labels)) for kind in KINDS}
    for run in variants.values():  # compile and warm up
        run()
        run()
    speeds = common.interleaved_rounds(variants, args.rounds, K * BATCH)
    common.write_in_process_results(
        args, runtime, "The tutorial's step against TF1's, in one process (target 4)",
        f"Batch {BATCH}, Adam 1e-4, dropout 0.5, fp32; {K} steps per timed call, 3 calls per "
        "variant per round", "tf1", speeds, {"batch": BATCH, "steps_per_call": K})


if __name__ == "__main__":
    main()
