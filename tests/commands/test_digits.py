"""preprocess_digit: MNIST's own digits come out as they went in; photos and scans of them come out
as MNIST digits (centred by mass in 28x28, fitted into 20x20, ink bright on black)."""

import io

import numpy as np
import pytest
from PIL import Image

from slimkit.data.digits import preprocess_digit
from slimkit.data.registry import load_arrays


@pytest.fixture(scope="module")
def mnist_test(mnist_dir):
    return load_arrays("mnist", str(mnist_dir), validation_size=0).test


def render(digit, rng, dark_ink=True, colour=True):
    """``digit`` (28x28 uint8, MNIST) as a user's photo or scan would show it, as uint8 RGB/grey.

    Scaled up 6-12x into a larger sheet at a random place, dark ink on light paper (or light on
    dark), ink and paper in colours, light falling off across the sheet, sensor noise.
    """
    scale = rng.uniform(6, 12)
    side = int(28 * scale)
    ink = np.asarray(Image.fromarray(digit).resize((side, side), Image.BILINEAR),
                     np.float32) / 255
    h, w = side + rng.integers(40, 200), side + rng.integers(40, 200)
    top, left = rng.integers(0, h - side), rng.integers(0, w - side)
    alpha = np.zeros((h, w), np.float32)
    alpha[top:top + side, left:left + side] = ink
    if dark_ink:
        paper, pen = rng.uniform([215, 205, 185], [250, 245, 235]), rng.uniform([10, 10, 40],
                                                                                [70, 70, 130])
    else:  # chalk on a blackboard
        paper, pen = rng.uniform([20, 40, 30], [50, 70, 60]), rng.uniform([200, 200, 190],
                                                                          [250, 250, 240])
    image = paper * (1 - alpha[..., None]) + pen * alpha[..., None]
    ys, xs = np.mgrid[0:h, 0:w] / max(h, w)
    light = 1 - rng.uniform(0.1, 0.3) * (rng.uniform(-1, 1) * xs + rng.uniform(-1, 1) * ys) ** 2
    image = image * light[..., None] + rng.normal(0, rng.uniform(3, 8), (h, w, 1))
    image = np.clip(image, 0, 255).astype(np.uint8)
    return image if colour else np.asarray(Image.fromarray(image).convert("L"))


def _com(image):
    ys, xs = np.mgrid[0:28, 0:28]
    return (image * ys).sum() / image.sum(), (image * xs).sum() / image.sum()


def test_mnist_digits_come_out_as_they_went_in(mnist_test):
    originals = mnist_test.images[:100, ..., 0]
    diffs = [np.abs(preprocess_digit(d) - d / 255).mean() for d in originals]
    assert np.mean(diffs) < 0.04 and np.max(diffs) < 0.12


def test_a_photo_becomes_an_mnist_digit(mnist_test):
    rng = np.random.default_rng(1)
    original = mnist_test.images[0, ..., 0]
    photo = render(original, rng)
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, format="JPEG", quality=80)
    digit = preprocess_digit(Image.open(buffer))
    assert digit.shape == (28, 28) and digit.dtype == np.float32
    assert digit.max() == 1 and digit.min() == 0
    cy, cx = _com(digit)
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5  # MNIST's centre of mass
    rows, cols = np.flatnonzero(digit.max(1) > 0.1), np.flatnonzero(digit.max(0) > 0.1)
    assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 in (19, 20, 21)  # the 20x20 box
    assert digit[[0, -1]].max() == 0 and digit[:, [0, -1]].max() == 0  # no paper, no noise
    assert np.abs(digit - original / 255).mean() < 0.08


def test_either_polarity_grey_or_colour_any_format(mnist_test, tmp_path):
    rng = np.random.default_rng(2)
    original = mnist_test.images[3, ..., 0]
    results = []
    for dark, colour, fmt in ((True, True, "PNG"), (False, True, "JPEG"), (True, False, "BMP"),
                              (False, False, "GIF")):
        path = tmp_path / f"digit.{fmt.lower()}"
        Image.fromarray(render(original, rng, dark, colour)).save(path, format=fmt)
        results.append(preprocess_digit(path))
    for digit in results:
        assert np.abs(digit - original / 255).mean() < 0.08


def test_exif_orientation_is_applied(mnist_test, tmp_path):
    original = mnist_test.images[1, ..., 0]
    photo = Image.fromarray(render(original, np.random.default_rng(3)))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the camera was turned, show the pixels rotated 90 cw
    photo.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "phone.jpg", exif=exif)
    assert np.abs(preprocess_digit(tmp_path / "phone.jpg") - original / 255).mean() < 0.08


def test_transparent_drawing_with_black_underneath(mnist_test):
    original = mnist_test.images[2, ..., 0]
    big = np.asarray(Image.fromarray(original).resize((140, 140), Image.BILINEAR))
    rgba = np.zeros((140, 140, 4), np.uint8)  # a drawing app: black ink, transparent (black) paper
    rgba[..., 3] = big
    digit = preprocess_digit(Image.fromarray(rgba, "RGBA"))
    assert np.abs(digit - original / 255).mean() < 0.06


def test_a_thin_pen_line_is_thickened_to_mnist_strokes():
    sheet = np.full((600, 600), 235, np.uint8)
    sheet[100:500, 298:302] = 30  # a "1" drawn with a fine pen: 4 of 400 pixels wide
    digit = preprocess_digit(sheet)
    widths = (digit[6:22] > 0.5).sum(axis=1)
    assert widths.min() >= 1 and 1.5 <= widths.mean() <= 3


def test_a_blank_picture_has_no_digit():
    rng = np.random.default_rng(0)
    paper = np.clip(rng.normal(200, 5, (120, 90)), 0, 255).astype(np.uint8)
    with pytest.raises(ValueError, match=r"^No digit found: nothing in the picture stands out "
                                         r"from the paper \(ink contrast 0\.\d+, paper noise "
                                         r"0\.\d+\)\. Expected one dark digit on light paper or a "
                                         r"light one on dark, written clearly enough to see\.$"):
        preprocess_digit(paper)


def test_an_array_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"Expected an array of shape \(H, W\), \(H, W, 1\), "
                                         r"\(H, W, 3\) or \(H, W, 4\)\. Received shape "
                                         r"\(2, 3, 5\)\."):
        preprocess_digit(np.zeros((2, 3, 5)))


@pytest.mark.parametrize("name", ["slimkit.data.digits.preprocess_digit",
                                  "slimkit.layers.stock.to_stock_keras",
                                  "slimkit.data.image_folder.evaluation_image"])
def test_docstring_examples_of_the_public_functions(name):
    import doctest
    import importlib

    module, function = name.rsplit(".", 1)
    module = importlib.import_module(module)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in doctest.DocTestFinder().find(getattr(module, function), globs=vars(module)):
        runner.run(test)
    assert runner.tries > 0 and runner.failures == 0
