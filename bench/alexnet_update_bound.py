"""AlexNet: what slimkit's weight decay and non-finite guard cost per step (target 5's bound).

    python bench/alexnet_update_bound.py [--rounds 6] [--no-deterministic]
        [--name alexnet_update_bound]

``profile_step_zen5_alexnet.md`` found a quarter of the AlexNet step's op time in element-wise
passes over the 58 M weights, some of them the weight decay's (the L2 penalty's value, its
gradient ``Mul`` and the ``AddN`` into the data gradient) and the non-finite guard's (one
``L2Loss`` per gradient). Fusing them into the update (one read of each weight) could at best
save what removing them saves. Four variants on constant batches, in one process, interleaved
(slimkit's ``alexnet``, 3 classes, 224x224, batch 32, mixed bfloat16, SGD momentum 0.9 with
slimkit's fused momentum kernel, two steps per call):

- ``slimkit``: ``make_train_step`` as the loop runs it (weight decay 5e-4, the guard);
- ``slimkit-nowd``: the same with weight decay 0 (no penalty, no penalty gradient);
- ``noguard``: a plain step (tape, gradient, ``optimizer.apply``) with weight decay, no guard;
- ``noguard-nowd``: the plain step without weight decay: the bound of what fusing both away
  could give.

Writes ``bench/results/<name>.{json,md}``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

K, BATCH, CLASSES = 2, 32, 3


def variant(weight_decay, guarded, constant):
    import tensorflow as tf

    from slimkit.losses import get_total_loss
    from slimkit.models.registry import get_model
    from slimkit.training.config import TrainConfig
    from slimkit.training.optimizers import make_optimizer
    from slimkit.training.step import StepOptions, make_loss_fn, make_train_step

    model = get_model("alexnet", num_classes=CLASSES, weight_decay=weight_decay)
    optimizer = make_optimizer(TrainConfig(optimizer="momentum", momentum=0.9), 1e-3)
    optimizer.build(model.trainable_variables)
    loss_fn = make_loss_fn(CLASSES)
    if guarded:
        step = make_train_step(model, loss_fn, optimizer,
                               options=StepOptions(global_step=tf.Variable(0, dtype=tf.int64)))
        return lambda: float(step(*constant)["loss_sum"])
    variables = model.trainable_variables

    @tf.function
    def steps(images, labels):
        total = tf.constant(0.0)
        for i in tf.range(K):
            with tf.GradientTape() as tape:
                logits = model(images[i], training=True)
                data_loss = tf.cast(loss_fn(logits, labels[i]), tf.float32)
                loss = tf.cast(get_total_loss(model, data_loss), tf.float32)
            optimizer.apply(tape.gradient(loss, variables), variables)
            total += loss
        return total
    return lambda: float(steps(*constant))


def main():
    args = common.in_process_args(__doc__.splitlines()[0], rounds=6, name="alexnet_update_bound")
    runtime = common.in_process_runtime(not args.no_deterministic)
    import keras
    import numpy as np
    import tensorflow as tf

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    rng = np.random.default_rng(0)
    constant = (tf.constant(rng.random((K, BATCH, 224, 224, 3), np.float32)),
                tf.constant(rng.integers(0, CLASSES, (K, BATCH)).astype(np.int32)))
    variants = {"slimkit": variant(5e-4, True, constant),
                "slimkit-nowd": variant(0.0, True, constant),
                "noguard": variant(5e-4, False, constant),
                "noguard-nowd": variant(0.0, False, constant)}
    for run in variants.values():  # compile and warm up
        run()
        run()
    speeds = common.interleaved_rounds(variants, args.rounds, K * BATCH)
    common.write_in_process_results(
        args, runtime, "AlexNet: what slimkit's weight decay and non-finite guard cost per step "
        "(target 5's bound)",
        f"Mixed bfloat16, batch {BATCH}, 224x224, {CLASSES} classes, SGD momentum 0.9, constant "
        f"batches; {K} steps per timed call, 3 calls per variant per round", "slimkit", speeds,
        {"batch": BATCH, "steps_per_call": K})


if __name__ == "__main__":
    main()
