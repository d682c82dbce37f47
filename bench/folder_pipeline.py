"""What the image-folder pipeline delivers alone: examples/s of training batches, no model.

    python bench/folder_pipeline.py FOLDER BATCHES BATCH [IMAGE_SIZE] [--keep-mb MB]

Iterates ``ImageFolder.dataset("train", BATCH, training=True, repeat=True)`` (the feed of
``slimkit train --dataset folder``: parallel decode, resize, random crop and flip, normalize,
batch, prefetch) for BATCHES batches after 3 of warm-up and prints the examples/s as JSON.
With ``--keep-mb MB`` the training images are first kept decoded in memory if they fit in MB
(``ImageFolder.keep_decoded``, as ``slimkit train --image-cache-mb``): then only the crop, flip
and normalization are left; the JSON also has ``kept_mb`` and ``keep_seconds``.
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import slimkit  # noqa: E402,F401  (oneDNN on, as in training)
from slimkit.data.image_folder import ImageFolder  # noqa: E402

argv, keep_mb = sys.argv[1:], None
if "--keep-mb" in argv:
    at = argv.index("--keep-mb")
    keep_mb = float(argv[at + 1])
    del argv[at:at + 2]
folder, batches, batch = argv[0], int(argv[1]), int(argv[2])
size = int(argv[3]) if len(argv) > 3 else 224
images = ImageFolder(folder, image_size=size)
kept = {}
if keep_mb is not None:
    start = time.perf_counter()
    kept = {"kept_mb": images.keep_decoded("train", keep_mb),
            "keep_seconds": round(time.perf_counter() - start, 2)}
iterator = iter(images.dataset("train", batch, training=True, repeat=True))
for _ in range(3):
    next(iterator)
start = time.perf_counter()
for _ in range(batches):
    images, _ = next(iterator)
    images.numpy()  # (the batch is really there)
seconds = time.perf_counter() - start
print(json.dumps({"examples_per_sec": round(batches * batch / seconds, 1),
                  "seconds": round(seconds, 2), **kept}))
