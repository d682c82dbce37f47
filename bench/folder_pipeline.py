"""What the image-folder pipeline delivers alone: examples/s of training batches, no model.

    python bench/folder_pipeline.py FOLDER BATCHES BATCH [IMAGE_SIZE] [--keep-mb MB | --disk-mb MB]

Iterates ``ImageFolder.dataset("train", BATCH, training=True, repeat=True)`` (the feed of
``slimkit train --dataset folder``: parallel decode, resize, random crop and flip, normalize,
batch, prefetch) for BATCHES batches after 3 of warm-up and prints the examples/s as JSON.
With ``--keep-mb MB`` the training images are first kept decoded in memory if they fit in MB
(``ImageFolder.keep_decoded``, as ``slimkit train --image-cache-mb``): then only the crop, flip
and normalization are left; the JSON also has ``kept_mb`` and ``keep_seconds``. With
``--disk-mb MB`` they are first resized once onto disk, into a new temporary folder, if they fit
in MB (``ImageFolder.keep_on_disk``, as ``slimkit train`` does for images that do not fit in
memory): each image is then one read, no decoding; the JSON has ``disk_mb`` and ``keep_seconds``.
"""

import json
import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import slimkit  # noqa: E402,F401  (oneDNN on, as in training)
from slimkit.data.image_folder import ImageFolder  # noqa: E402

argv, options = sys.argv[1:], {}
for flag in ("--keep-mb", "--disk-mb"):
    if flag in argv:
        at = argv.index(flag)
        options[flag] = float(argv[at + 1])
        del argv[at:at + 2]
folder, batches, batch = argv[0], int(argv[1]), int(argv[2])
size = int(argv[3]) if len(argv) > 3 else 224
images = ImageFolder(folder, image_size=size)
kept, disk = {}, tempfile.mkdtemp(prefix="slimkit_folder_pipeline_")
start = time.perf_counter()
if "--keep-mb" in options:
    kept = {"kept_mb": images.keep_decoded("train", options["--keep-mb"])}
if "--disk-mb" in options:
    kept = {"disk_mb": images.keep_on_disk("train", options["--disk-mb"], disk)}
if kept:
    kept["keep_seconds"] = round(time.perf_counter() - start, 2)
iterator = iter(images.dataset("train", batch, training=True, repeat=True))
for _ in range(3):
    next(iterator)
start = time.perf_counter()
for _ in range(batches):
    images, _ = next(iterator)
    images.numpy()  # (the batch is really there)
seconds = time.perf_counter() - start
shutil.rmtree(disk, ignore_errors=True)
print(json.dumps({"examples_per_sec": round(batches * batch / seconds, 1),
                  "seconds": round(seconds, 2), **kept}))
