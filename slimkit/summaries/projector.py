"""The Projector dashboard: the model's embedding of evaluation images, labelled, with thumbnails.

    write_projector("runs/x", ["test", "train", "validation", "."], embeddings, labels,
                    predictions, class_names, images, name="fc1")

Writes into the first run folder (the evaluation split's, e.g. ``test/``):

- ``projector/embedding.tsv``: the (n, d) embedding (the layer before the logits for up to 1,000
  images), one row per image;
- ``projector/metadata.tsv``: a header row, then per image its true class, the predicted class and
  whether the two agree (colour the points by any of them);
- ``projector/sprite.png``: the images as the Projector's thumbnails;
- ``projector_config.pbtxt``: what ties them together,

and the same config, with hard links to the same files (copies where links are impossible), into
the other run folders. Why: the Projector looks at every run and also falls back, in a run with
no checkpoint of its own, to the parent folder's checkpoint, i.e. the training run's weights and
optimizer slots; it opens the first run it lists, in no fixed order. With this embedding listed
first in every run, it is what opens.
"""

import os
import shutil

import numpy as np

MAX_POINTS = 1000
_FILES = ("embedding.tsv", "metadata.tsv", "sprite.png")


def embedding_layer(model):
    """The end point before the logits (dropout skipped: at inference it is its input), or None."""
    names = list(model.end_points)
    for name in reversed(names[:-1]):
        if not type(model.get_layer(name)).__name__.endswith("Dropout"):
            return name
    return None


def write_projector(logdir, runs, embeddings, labels, predictions, class_names, images, name):
    """Writes the Projector's files for ``embeddings`` (n, d) of ``images`` (n, H, W, C).

    Args:
        logdir: The logdir.
        runs: Run folders (relative to ``logdir``, ``"."`` for itself); the files are written into
            the first and linked into the others.
        embeddings, labels, predictions: (n, d), (n,), (n,).
        class_names: Names by class id.
        images: (n, H, W, C), shown as thumbnails.
        name: What the embedding is (e.g. the layer's name), shown as the tensor's name.

    Raises:
        OSError: If a file cannot be written (callers guard the write).
    """
    from tensorboard.plugins import projector

    from slimkit.summaries.images import sprite_image, to_png

    first = os.path.join(logdir, runs[0], "projector")
    os.makedirs(first, exist_ok=True)
    embeddings = np.asarray(embeddings, np.float32)
    np.savetxt(os.path.join(first, "embedding.tsv"), embeddings, fmt="%.5g", delimiter="\t")
    names = [str(n) for n in class_names]
    rows = ["label\tpredicted\tcorrect"] + [
        f"{names[t]}\t{names[p]}\t{'yes' if t == p else 'no'}"
        for t, p in zip(np.asarray(labels), np.asarray(predictions))]
    with open(os.path.join(first, "metadata.tsv"), "w", encoding="utf-8") as f:
        f.write("\n".join(rows) + "\n")
    sprite, side = sprite_image(images)
    with open(os.path.join(first, "sprite.png"), "wb") as f:
        f.write(to_png(sprite))
    config = projector.ProjectorConfig()
    embedding = config.embeddings.add()
    embedding.tensor_name = f"{name} ({len(embeddings):,} images)"
    embedding.tensor_path = "projector/embedding.tsv"
    embedding.tensor_shape.extend(embeddings.shape)
    embedding.metadata_path = "projector/metadata.tsv"
    embedding.sprite.image_path = "projector/sprite.png"
    embedding.sprite.single_image_dim.extend([side, side])
    for run in runs:
        folder = os.path.join(logdir, run)
        if run != runs[0]:
            os.makedirs(os.path.join(folder, "projector"), exist_ok=True)
            for file in _FILES:
                _link(os.path.join(first, file), os.path.join(folder, "projector", file))
        projector.visualize_embeddings(folder, config)


def _link(source, target):
    """A hard link of ``source`` at ``target`` (replacing it), or a copy where links fail."""
    if os.path.exists(target):
        os.remove(target)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
