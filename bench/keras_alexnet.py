"""Keras `fit` of slimkit's AlexNet on an image folder: the peer of the loop's AlexNet throughput.

    python bench/keras_alexnet.py FOLDER STEPS BATCH [--bf16]

The same model (``slimkit.get_model("alexnet")``), the same tf.data pipeline (``ImageFolder``,
224x224 random crops and flips), SGD with momentum 0.9, as a Keras user would train it:
``model.compile(...)`` and ``model.fit(dataset, steps_per_epoch=STEPS, epochs=2)``. Prints the
examples/s of the second epoch (the first includes compiling), as JSON.
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402

import slimkit  # noqa: E402  (oneDNN on, as for slimkit's own runs)
from slimkit.data.image_folder import ImageFolder  # noqa: E402

folder, steps, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if "--bf16" in sys.argv:
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
keras.utils.set_random_seed(0)
images = ImageFolder(folder, image_size=224)
model = slimkit.get_model("alexnet", num_classes=images.num_classes)
model.compile(keras.optimizers.SGD(0.01, momentum=0.9),
              keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
data = images.dataset("train", batch, training=True, repeat=True)


class Timer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds = time.perf_counter() - self.start


timer = Timer()
model.fit(data, steps_per_epoch=steps, epochs=2, verbose=0, callbacks=[timer])
print(json.dumps({"examples_per_sec": round(steps * batch / timer.seconds, 1),
                  "epoch_seconds": round(timer.seconds, 2)}))
