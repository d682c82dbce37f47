"""What the image-folder pipeline delivers alone: examples/s of training batches, no model.

    python bench/folder_pipeline.py FOLDER BATCHES BATCH [IMAGE_SIZE]

Iterates ``ImageFolder.dataset("train", BATCH, training=True, repeat=True)`` (the feed of
``slimkit train --dataset folder``: parallel decode, resize, random crop and flip, normalize,
batch, prefetch) for BATCHES batches after 3 of warm-up and prints the examples/s as JSON.
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import slimkit  # noqa: E402,F401  (oneDNN on, as in training)
from slimkit.data.image_folder import ImageFolder  # noqa: E402

folder, batches, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
size = int(sys.argv[4]) if len(sys.argv) > 4 else 224
iterator = iter(ImageFolder(folder, image_size=size).dataset("train", batch, training=True,
                                                             repeat=True))
for _ in range(3):
    next(iterator)
start = time.perf_counter()
for _ in range(batches):
    images, _ = next(iterator)
    images.numpy()  # (the batch is really there)
seconds = time.perf_counter() - start
print(json.dumps({"examples_per_sec": round(batches * batch / seconds, 1), "seconds": round(seconds, 2)}))
