"""AlexNet: slimkit's step against Keras' `fit` step, in one process (issue 10, target 5's profile).

    python bench/alexnet_step.py [--rounds 6] [--no-deterministic] [--name alexnet_step]

``compare.py`` times whole processes (``slimkit train --preset alexnet-folder`` against
``keras_alexnet.py``), which drift by +-10% within minutes on these shared machines. Here five
variants live in one process and are timed in the same interleaved rounds (order rotated), each
training slimkit's ``alexnet`` (3 classes, 224x224, batch 32, mixed bfloat16, SGD with momentum
0.9, the arg scope's weight decay 5e-4), two steps per timed call as the preset's loop does:

- ``slimkit-feed``: ``make_train_step`` fed by the loop's ``FolderFeed`` (the ``ImageFolder``
  pipeline: JPEG decode, random crop and flip; ``next_batches(2)``);
- ``slimkit-kept``: the same, with the images kept decoded in memory as ``slimkit train`` does
  when they fit in ``--image-cache-mb`` (``ImageFolder.keep_decoded``): crop and flip only;
- ``keras-feed``: Keras' own compiled train function (what ``model.fit`` runs each step, no XLA:
  Keras turns it off on CPU-only machines) pulling from the same pipeline's iterator;
- ``slimkit-const`` and ``keras-const``: the same steps on two constant random batches, so the
  pipeline's share of the CPU is out of the picture.

The image folder is generated (``common.make_folder``: 3 classes x 100 JPEGs of 256x320).
Deterministic ops are on for all (slimkit's default; the Keras peer of ``compare.py`` runs without
them), or off for all with ``--no-deterministic``. Writes ``bench/results/<name>.{json,md}``.
"""

import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

K, BATCH, CLASSES = 2, 32, 3


def slimkit_variant(folder, constant):
    import tensorflow as tf

    from slimkit.models.registry import get_model
    from slimkit.training.config import TrainConfig
    from slimkit.training.data import FolderFeed
    from slimkit.training.optimizers import make_optimizer
    from slimkit.training.step import StepOptions, make_loss_fn, make_train_step

    model = get_model("alexnet", num_classes=CLASSES)
    optimizer = make_optimizer(TrainConfig(optimizer="momentum", momentum=0.9), 1e-3)
    optimizer.build(model.trainable_variables)
    step = make_train_step(model, make_loss_fn(CLASSES), optimizer,
                           options=StepOptions(global_step=tf.Variable(0, dtype=tf.int64)))
    if constant is not None:
        return lambda: float(step(*constant)["loss_sum"])
    feed = FolderFeed(folder, BATCH, seed=0)
    return lambda: float(step(*feed.next_batches(K))["loss_sum"])


def keras_variant(folder, constant):
    import keras

    from slimkit.models.registry import get_model

    model = get_model("alexnet", num_classes=CLASSES)
    model.compile(keras.optimizers.SGD(1e-3, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.make_train_function()
    train = model.train_function  # one step per call of an iterator, as fit calls it
    if constant is not None:
        images, labels = constant

        def run():
            for i in range(K):
                logs = train(iter([(images[i], labels[i])]))
            return float(logs["loss"])
        return run
    iterator = iter(folder.dataset("train", BATCH, training=True, repeat=True))

    def run():
        for _ in range(K):
            logs = train(iterator)
        return float(logs["loss"])
    return run


def main():
    args = common.in_process_args(__doc__.splitlines()[0], rounds=6, name="alexnet_step")
    runtime = common.in_process_runtime(not args.no_deterministic)
    import keras
    import numpy as np
    import tensorflow as tf

    from slimkit.data.image_folder import ImageFolder

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    root = tempfile.mkdtemp(prefix="slimkit_alexnet_step_", dir="/tmp")
    try:
        folder = ImageFolder(common.make_folder(root, classes=CLASSES, per_class=100),
                             image_size=224, seed=0)
        rng = np.random.default_rng(0)
        constant = (tf.constant(rng.random((K, BATCH, 224, 224, 3), np.float32)),
                    tf.constant(rng.integers(0, CLASSES, (K, BATCH)).astype(np.int32)))
        kept = ImageFolder(folder.root, image_size=224, seed=0)
        if kept.keep_decoded("train", 1024) is None:
            raise SystemExit("the generated folder's images were not kept in memory")
        variants = {
            "slimkit-feed": slimkit_variant(folder, None),
            "slimkit-kept": slimkit_variant(kept, None),
            "keras-feed": keras_variant(folder, None),
            "slimkit-const": slimkit_variant(folder, constant),
            "keras-const": keras_variant(folder, constant),
        }
        for run in variants.values():  # compile and warm up
            run()
            run()
        speeds = common.interleaved_rounds(variants, args.rounds, K * BATCH)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    common.write_in_process_results(
        args, runtime, "AlexNet: slimkit's step against Keras' `fit` step, in one process "
        "(target 5)",
        f"Mixed bfloat16, batch {BATCH}, 224x224, {CLASSES} classes, SGD momentum 0.9; {K} steps "
        "per timed call, 3 calls per variant per round", "keras-feed", speeds,
        {"batch": BATCH, "steps_per_call": K})


if __name__ == "__main__":
    main()
