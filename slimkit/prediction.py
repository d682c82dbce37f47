"""Classify images with a trained run: arrays (``predict``) or your own image files (``predict_files``).

    >>> run = slimkit.load_run("runs/deep-mnist-fast")
    >>> result = slimkit.predict(run, images)            # float32 (N, 28, 28, 1) in [0, 1]
    >>> result["classes"][:3], result["probabilities"].shape
    (array([7, 2, 1]), (3, 10))
    >>> for answer in predict_files(run, ["my_seven.jpg"], top_k=2):
    ...     print(answer)
    {'file': 'my_seven.jpg', 'top': [{'class': '7', 'probability': 0.98}, {'class': '1', ...}]}

How a file becomes the model's input depends on the run:

- a model of an MNIST-format dataset (28x28 grey) gets :func:`slimkit.data.digits.preprocess_digit`:
  the picture of one digit, dark on light or light on dark, any size, photo or scan, is made into
  an MNIST digit the way MNIST's were made (cropped to the ink, fitted into 20x20, centred by
  its centre of mass in 28x28);
- an image-folder model (AlexNet) gets the evaluation preprocessing of its training
  (:func:`slimkit.data.image_folder.evaluation_image`: the same decoding, resize and central
  crop as its validation images; EXIF orientation is not applied, as in training).

This module is ``prediction`` rather than ``predict`` so that the submodule does not hide the
function ``slimkit.predict``.
"""

import pathlib
import re

import numpy as np

from slimkit.data.image_folder import IMAGE_EXTENSIONS
from slimkit.runs import as_run

_CHUNK = 64  # files preprocessed and predicted together


def predict(run, images, batch_size=256):
    """Class probabilities and answers of a run's model for a batch of images.

    Args:
        run: A :class:`slimkit.runs.Run`, or a logdir or checkpoint path to load.
        images: (N, H, W, C) or one image (H, W, C) as the model takes them: float32 scaled as
            in training (MNIST-format: [0, 1], e.g. from :func:`slimkit.preprocess_digit`;
            image folders: :func:`slimkit.data.image_folder.evaluation_image`). Grey models also
            take (N, H, W); uint8 pixels of an MNIST-format model are divided by 255.
        batch_size: Images per forward pass.

    Returns:
        A dict of NumPy arrays: ``logits`` and ``probabilities`` (N, classes) float32,
        ``classes`` (N,) int64 (the argmax) and ``class_names`` (N,) of str.

    Raises:
        ValueError: If the images do not have the model's shape.

    Example:
        >>> result = predict("runs/mnist-softmax-tutorial", np.zeros((1, 28, 28, 1), np.float32))
        >>> result["probabilities"].shape, result["class_names"].dtype.kind
        ((1, 10), 'U')
    """
    import tensorflow as tf

    run = as_run(run)
    images = _as_batch(images, run)
    logits = np.concatenate([_logits_fn(run.model)(tf.constant(images[i:i + batch_size])).numpy()
                             for i in range(0, len(images), batch_size)]
                            or [np.zeros((0, run.num_classes), np.float32)])
    probabilities = tf.nn.softmax(logits).numpy()
    classes = logits.argmax(axis=-1).astype(np.int64)
    return {"logits": logits, "probabilities": probabilities, "classes": classes,
            "class_names": np.array([run.class_names[c] for c in classes], dtype=str)}


def preprocess_file(run, path):
    """The model input for one image file: float32 (H, W, C) (see the module docstring).

    Raises:
        FileNotFoundError, PermissionError, IsADirectoryError: The file cannot be read.
        ValueError: The file is no image, its data is corrupt, or (MNIST) it shows no digit.
    """
    path = pathlib.Path(path)
    contents = path.read_bytes()  # OSErrors say why the file cannot be read
    if run.mnist_type:
        from slimkit.data.digits import preprocess_digit

        return preprocess_digit(_open_image(path, contents))[..., np.newaxis]
    return _folder_input(path, contents, run.image_shape[0])


def predict_files(run, paths, top_k=3, save_preprocessed=None):
    """Classifies image files; yields one result per file, in order, errors included.

    Args:
        run: A :class:`slimkit.runs.Run`, or a path to load.
        paths: Image files, or folders (their image files, sorted, sub-folders included).
        top_k: How many classes to give per file, most probable first.
        save_preprocessed: A folder to write what the model saw into, as ``<name>.png``.

    Yields:
        ``{"file": str, "top": [{"class": name, "probability": p}, ...]}``, or for a file that
        cannot be read, decoded or read as a digit, ``{"file": str, "error": "why"}``.

    Raises:
        OSError: If ``save_preprocessed`` cannot be written (one line naming the file).
    """
    run = as_run(run)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"Invalid value for `top_k`. Expected a strictly positive integer. "
                         f"Received top_k={top_k!r}.")
    top_k = min(top_k, run.num_classes)
    saved = _PreprocessedWriter(save_preprocessed, run) if save_preprocessed else None
    files = list(_expand(paths))
    for start in range(0, len(files), _CHUNK):
        chunk, inputs = files[start:start + _CHUNK], {}
        for i, (path, problem) in enumerate(chunk):
            if problem is None:
                try:
                    inputs[i] = preprocess_file(run, path)
                except (OSError, ValueError) as e:
                    problem = _why(e)
            chunk[i] = (path, problem)
        if inputs:
            result = predict(run, np.stack(list(inputs.values())))
            answers = dict(zip(inputs, result["probabilities"]))
        for i, (path, problem) in enumerate(chunk):
            if problem is not None:
                yield {"file": str(path), "error": problem}
                continue
            if saved is not None:
                saved.write(path, inputs[i])
            order = np.argsort(-answers[i], kind="stable")[:top_k]
            yield {"file": str(path), "top": [{"class": run.class_names[c],
                                               "probability": float(answers[i][c])}
                                              for c in order]}


def _logits_fn(model):
    """A compiled ``images -> float32 logits`` (dropout off), one trace per model."""
    fn = getattr(model, "_slimkit_logits_fn", None)
    if fn is None:
        import tensorflow as tf

        @tf.function(input_signature=[tf.TensorSpec([None, *model.input.shape[1:]], tf.float32)])
        def fn(images):  # one trace for any batch size
            return tf.cast(model(images, training=False), tf.float32)

        model._slimkit_logits_fn = fn
    return fn


def _as_batch(images, run):
    images = np.asarray(images)
    shape = tuple(run.image_shape)
    if images.dtype == np.uint8 and run.mnist_type:
        images = images.astype(np.float32) / 255.0
    if images.shape == shape or (shape[2] == 1 and images.shape == shape[:2]):
        images = images[np.newaxis]  # one image
    if shape[2] == 1 and images.ndim == 3:
        images = images[..., np.newaxis]
    if images.ndim != 4 or tuple(images.shape[1:]) != shape:
        raise ValueError(f"Invalid value for argument `images`. Expected images of shape "
                         f"(N, {', '.join(map(str, shape))}) for {run.config.model} as trained "
                         f"in {run.logdir}. Received shape {images.shape}.")
    return images.astype(np.float32)


def _expand(paths):
    """``(path, None)`` for each file; a folder's image files; ``(path, why)`` for a folder of none."""
    for path in map(pathlib.Path, paths):
        if not path.is_dir():
            yield path, None
            continue
        found = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")
                       and p.name.lower().endswith(IMAGE_EXTENSIONS))
        if not found:
            yield path, (f"folder {path} holds no image files (expected files ending in "
                         f"{', '.join(IMAGE_EXTENSIONS)})")
        yield from ((p, None) for p in found)


def _open_image(path, contents):
    """A Pillow image of ``contents``; data that is no image or is corrupt is a ValueError."""
    import io

    from PIL import Image, ImageOps

    try:
        image = Image.open(io.BytesIO(contents))
        image.load()
        return ImageOps.exif_transpose(image)
    except Image.UnidentifiedImageError:
        raise ValueError(_NOT_AN_IMAGE) from None
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as e:
        raise ValueError(f"truncated or corrupt image data ({_line(e)})") from None


_NOT_AN_IMAGE = "not an image (expected a PNG, JPEG, BMP or GIF file)"


def _folder_input(path, contents, image_size):
    import tensorflow as tf

    from slimkit.data.image_folder import _structure_problem, decode_image, evaluation_image

    problem = _structure_problem(path)
    if problem is not None:
        raise ValueError(_NOT_AN_IMAGE if problem.startswith("not a") else problem)
    try:
        image = decode_image(tf.constant(contents))
    except tf.errors.OpError as e:  # (TensorFlow's {{function_node ...}} and [Op:...] dropped)
        reason = re.sub(r"\{\{.*?\}\}|\[Op:.*$", "", _line(e.message)).strip()
        raise ValueError(f"truncated or corrupt image data ({reason})") from None
    return evaluation_image(image, image_size).numpy()


def _why(error):
    if isinstance(error, OSError) and error.strerror:
        return f"cannot read it: {error.strerror}"
    return str(error)


def _line(text):
    return " ".join(str(text).split())[:200]


class _PreprocessedWriter:
    """Writes what the model saw as PNG files into one folder (``--save-preprocessed``)."""

    def __init__(self, folder, run):
        self.folder = pathlib.Path(folder)
        self.run = run
        self.names = set()

    def write(self, source, image):
        from slimkit.summaries.images import to_png

        name = f"{source.stem}.png"
        n = 1
        while name in self.names:  # two files of the same name in different folders
            n += 1
            name = f"{source.stem}-{n}.png"
        self.names.add(name)
        write_file(self.folder / name, to_png(self._shown(image)))

    def _shown(self, image):
        if self.run.mnist_type:
            return image  # [0, 1] grey, as the model saw it
        from slimkit.data.image_folder import IMAGENET_MEAN, IMAGENET_STD

        return image * np.array(IMAGENET_STD, np.float32) + np.array(IMAGENET_MEAN, np.float32)


def write_file(path, data):
    """Writes ``data`` to ``path``: every file ``predict`` writes goes through here.

    Raises:
        OSError: One line naming the file and the cause (full disk, read-only folder, ...).
    """
    from slimkit.outputs import write_output

    return write_output(path, lambda tmp: tmp.write_bytes(data), "--save-preprocessed folder")
