"""A photo or scan of one handwritten digit turned into an MNIST digit, the way MNIST's were made.

    >>> digit = preprocess_digit("my_seven.jpg")       # any size, grey or colour, either polarity
    >>> digit.shape, digit.dtype, float(digit.max())
    ((28, 28), dtype('float32'), 1.0)

MNIST's digits (LeCun et al.) are white ink on black, "size normalized to fit in a 20x20 pixel box
while preserving their aspect ratio", anti-aliased, and "centered in a 28x28 image by computing
the center of mass of the pixels" (at pixel (14, 14), by a whole-pixel shift: measured on the
training set, the centres of mass are 14.0 +- 0.29 in both axes). A user's picture is brought
there step by step:

1. **Decode** (Pillow: PNG, JPEG, BMP, GIF's first frame, ...), turned upright by its EXIF
   orientation, transparency flattened onto a background the ink stands out from, converted to
   grey (ITU-R 601 luma); then resized so its longer side is 256 pixels to work on.
2. **Polarity and paper level.** The paper's grey level is the median of a frame around the
   border; the ink is on the side (darker or lighter) where the image reaches furthest from it.
   Dark ink is inverted so ink is bright. The paper's level is then modelled as a smooth
   (quadratic) surface fitted robustly to the medians of 12x12 blocks (blocks mostly covered by
   ink are left out), which absorbs uneven lighting, shadows and vignetting; the ink is what
   rises above it.
3. **Ink mask.** Otsu's threshold on the ink, but never below 3 sigma of the paper's noise
   (estimated from what lies below the paper's level, where there is no ink); connected pieces
   (on a 4x coarser grid: pieces closer than 4 pixels are one) smaller than a tenth of the
   largest (dust, JPEG artefacts, noise) are dropped. A picture with no ink rising clearly
   above its noise is an error: there is no digit to read.
4. **Crop** to the kept pieces; the ink is scaled so its strokes' core is 1 (paper 0), and
   everything outside the kept pieces is cleared.
5. **Stroke width.** A pen line on a large sheet would shrink to a hairline in 20 pixels; MNIST's
   strokes are 1.3 to 3 pixels wide (5th to 95th percentile, median 2). Strokes that would end
   thinner than 1.5 pixels are thickened to 2.
6. **Fit** into 20x20 keeping the aspect ratio (anti-aliased resize), then **centre** by the centre
   of mass in 28x28; the brightest pixel is scaled to 1, as in MNIST.

Only NumPy and Pillow are used (no TensorFlow).
"""

import math
import os

import numpy as np

_WORK = 256  # longer side of the working image, in pixels
_BOX = 20  # MNIST's box for the digit
_SIZE = 28  # MNIST's image
_CENTRE = 14  # where MNIST's centres of mass are (see the module docstring)
_BLOCKS = 12  # blocks per side for the paper's level
_MIN_STROKE, _STROKE = 1.5, 2.0  # thicken strokes thinner than this (final pixels) to this


def preprocess_digit(image):
    """One handwritten digit as MNIST's model input: grey, ink bright on black, fitted and centred.

    Args:
        image: A file path, a ``PIL.Image``, or an array (H, W), (H, W, 1), (H, W, 3) or
            (H, W, 4): uint8, or floats in [0, 1]. Dark ink on light paper or light on dark, any
            size, a photo or a scan.

    Returns:
        float32 (28, 28) in [0, 1]: the digit fitted into the central 20x20 box and centred by
        its centre of mass, as MNIST's digits are (add ``[..., None]`` for a model's channel).

    Raises:
        ValueError: If the picture shows no ink that stands out from the paper (blank, or too
            faint or noisy), or an array has an unusable shape.
        OSError: If the file cannot be read or decoded (``PIL.UnidentifiedImageError`` for data
            that is no image).

    Example:
        >>> import numpy as np
        >>> paper = np.full((300, 200), 230, np.uint8)
        >>> paper[60:240, 90:115] = 20                       # a dark "1" on light paper
        >>> digit = preprocess_digit(paper)
        >>> digit.shape, round(float(digit[14, 14]), 2), float(digit[0, 0])
        ((28, 28), 1.0, 0.0)
    """
    grey = _resize(_grey(image), _WORK)
    ink, sigma = _ink(grey)
    mask = _ink_mask(ink, sigma)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    mask = mask[top:bottom, left:right]
    crop = ink[top:bottom, left:right]
    core = float(np.percentile(crop[mask], 90))
    crop = np.clip(crop / core, 0, 1) * _dilate(mask, 2)  # soft edges kept; the rest cleared
    crop = _thicken(crop, mask, _BOX / max(crop.shape))
    return _centre(_fit(crop, _BOX), _SIZE)


# ---------------------------------------------------------------------------- decoding
def _grey(image):
    """float32 (H, W) in [0, 1] of a path, PIL image or array (alpha flattened)."""
    from PIL import Image, ImageOps

    if isinstance(image, (str, os.PathLike)):
        with Image.open(image) as opened:
            opened.load()  # decode now: a truncated file fails here, with the file still open
            return _grey(ImageOps.exif_transpose(opened))
    if isinstance(image, Image.Image):
        return _grey_of_pil(image)
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)) \
            or min(array.shape[:2]) < 1:
        raise ValueError(f"Invalid value for argument `image`. Expected an array of shape (H, W), "
                         f"(H, W, 1), (H, W, 3) or (H, W, 4). Received shape {array.shape}.")
    array = array.astype(np.float32) / (255.0 if array.dtype == np.uint8 else 1.0)
    if array.ndim == 2:
        return np.clip(array, 0, 1)
    alpha = array[..., 3] if array.shape[2] == 4 else None
    return _flatten(_luma(array[..., :3]), alpha)


def _grey_of_pil(image):
    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)  # an animated GIF: its first frame
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16-bit or float grey
        array = np.asarray(image, np.float32)
        return np.clip(array / (65535.0 if array.max() > 255 else 255.0), 0, 1)
    if image.mode == "P" and "transparency" in image.info or image.mode in ("LA", "PA", "RGBA",
                                                                             "La", "RGBa"):
        rgba = np.asarray(image.convert("RGBA"), np.float32) / 255.0
        return _flatten(_luma(rgba[..., :3]), rgba[..., 3])
    return np.asarray(image.convert("L"), np.float32) / 255.0


def _luma(rgb):
    return np.clip(rgb @ np.array([0.299, 0.587, 0.114], np.float32), 0, 1)


def _flatten(grey, alpha):
    """Composites a transparent picture onto a background its ink stands out from.

    Drawing apps leave the paper transparent, often black underneath: flattening dark ink onto
    that black would hide it. The opaque pixels' level tells the ink's: dark ink goes on white.
    """
    if alpha is None or alpha.min() >= 1:
        return grey
    opaque = alpha > 0.5
    ink = float(np.average(grey, weights=alpha)) if alpha.sum() else 0.0
    if opaque.any():
        ink = float(grey[opaque].mean())
    background = 1.0 if ink < 0.5 else 0.0
    return alpha * grey + (1 - alpha) * background


def _resize(array, longest):
    """``array`` (h, w) float resized (anti-aliased) so that its longer side is ``longest``."""
    from PIL import Image

    h, w = array.shape
    scale = longest / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if size == (w, h):
        return array.astype(np.float32)
    resized = Image.fromarray(array.astype(np.float32), mode="F").resize(size, Image.BILINEAR)
    return np.asarray(resized, np.float32)


# ---------------------------------------------------------------------------- finding the ink
def _ink(grey):
    """``(ink, sigma)``: ink >= 0, bright, above a fitted paper level; sigma of the paper's noise."""
    h, w = grey.shape
    ring = max(1, round(0.04 * min(h, w)))
    border = np.concatenate([grey[:ring].ravel(), grey[-ring:].ravel(), grey[:, :ring].ravel(),
                             grey[:, -ring:].ravel()])
    paper = float(np.median(border))
    low, high = np.percentile(grey, [0.2, 99.8])
    bright = 1 - grey if paper - low > high - paper else grey  # dark ink: invert
    level = _paper_level(bright)
    residual = bright - level
    # Ink only rises above the paper: the part below it is the paper's noise alone (half-normal,
    # median 0.6745 sigma), however much of the picture the ink covers.
    below = -residual[residual < 0]
    sigma = float(np.median(below)) / 0.6745 if below.size else 0.0
    return np.maximum(residual, 0), sigma


def _paper_level(bright):
    """A smooth quadratic surface through the paper of ``bright`` (ink is bright, paper dark)."""
    h, w = bright.shape
    ys = np.linspace(0, h, _BLOCKS + 1).astype(int)
    xs = np.linspace(0, w, _BLOCKS + 1).astype(int)
    values, centres = [], []
    for i in range(_BLOCKS):
        for j in range(_BLOCKS):
            block = bright[ys[i]:ys[i + 1], xs[j]:xs[j + 1]]
            if block.size:
                values.append(np.median(block))  # paper, unless ink covers most of the block
                centres.append(((ys[i] + ys[i + 1]) / 2 / h, (xs[j] + xs[j + 1]) / 2 / w))
    values, (cy, cx) = np.array(values), np.array(centres).T
    terms = np.stack([np.ones_like(cy), cy, cx, cy * cy, cx * cx, cy * cx], axis=1)
    # Start from the darker half of the blocks (a thick digit may cover many), then take in every
    # block the surface explains, until the set settles.
    keep = values <= np.median(values)
    for _ in range(5):
        coef = np.linalg.lstsq(terms[keep], values[keep], rcond=None)[0]
        residual = values - terms @ coef
        spread = 1.4826 * np.median(np.abs(residual[keep])) + 0.01
        keep = residual < 3 * spread
    yy, xx = np.mgrid[0:h, 0:w]
    yy, xx = (yy + 0.5) / h, (xx + 0.5) / w
    return (coef[0] + coef[1] * yy + coef[2] * xx + coef[3] * yy * yy + coef[4] * xx * xx
            + coef[5] * yy * xx).astype(np.float32)


def _ink_mask(ink, sigma):
    """The digit's pixels: above Otsu's threshold and the noise, specks dropped."""
    peak = float(np.percentile(ink, 99.9))
    if peak < max(5 * sigma, 0.05):
        raise ValueError(f"No digit found: nothing in the picture stands out from the paper (ink "
                         f"contrast {peak:.3f}, paper noise {sigma:.3f}). Expected one dark digit "
                         "on light paper or a light one on dark, written clearly enough to see.")
    mask = ink > max(_otsu(ink), 3 * sigma)
    # Pieces are found on a 4x coarser grid (a 4x4 cell with any ink is ink; 16 times fewer
    # pixels to label), so pieces less than 4 pixels apart count as one; areas are counted in
    # full-resolution pixels.
    h, w = mask.shape
    coarse = np.pad(mask, ((0, -h % 4), (0, -w % 4))).reshape(-(-h // 4), 4, -(-w // 4), 4)
    labels, _ = _components(coarse.any(axis=(1, 3)))
    labels = labels.repeat(4, axis=0).repeat(4, axis=1)[:h, :w] * mask
    areas = np.bincount(labels.ravel())[1:]
    keep = np.flatnonzero(areas >= 0.1 * areas.max()) + 1
    return np.isin(labels, keep)


def _otsu(values, bins=256):
    """Otsu's threshold: the level that best separates ``values`` into two classes."""
    counts, edges = np.histogram(values, bins=bins, range=(0, float(values.max()) or 1.0))
    centres = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(counts)
    mean = np.cumsum(counts * centres)
    total, total_mean = weight[-1], mean[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (total_mean * weight - mean * total) ** 2 / (weight * (total - weight))
    return float(centres[int(np.nanargmax(np.nan_to_num(between[:-1], nan=-1)))])


def _components(mask):
    """8-connected components: ``(labels (h, w) with 0 = background, areas by label - 1)``.

    Labels spread as the smallest index among neighbours until nothing changes (vectorized; the
    grid is small), with pointer jumping to shorten long chains.
    """
    h, w = mask.shape
    index = np.arange(1, h * w + 1, dtype=np.int64).reshape(h, w)
    big = h * w + 1
    labels = np.where(mask, index, big)
    while True:
        padded = np.pad(labels, 1, constant_values=big)
        neighbours = [padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
                      for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
        spread = np.where(mask, np.minimum.reduce(neighbours), big)
        flat = np.append(spread.ravel(), big)
        jumped = np.where(mask, flat[np.minimum(spread, big) - 1], big)  # label of the label
        jumped = np.minimum(jumped, spread)
        if np.array_equal(jumped, labels):
            break
        labels = jumped
    unique, dense = np.unique(labels[mask], return_inverse=True)
    out = np.zeros((h, w), np.int64)
    out[mask] = dense + 1
    return out, np.bincount(dense, minlength=len(unique))


# ---------------------------------------------------------------------------- shaping the digit
def _dilate(mask, radius):
    """Binary or grey dilation by a square of side ``2 * radius + 1`` (separable max)."""
    out = mask.astype(np.float32)
    for axis in (0, 1):
        padded = np.pad(out, [(radius, radius) if a == axis else (0, 0) for a in (0, 1)])
        n = out.shape[axis]
        out = np.max([np.take(padded, range(k, k + n), axis=axis) for k in range(2 * radius + 1)],
                     axis=0)
    return out


def _thicken(crop, mask, scale):
    """Thickens strokes that would end thinner than ``_MIN_STROKE`` pixels once scaled."""
    area = float(mask.sum())
    perimeter = float((mask[1:] != mask[:-1]).sum() + (mask[:, 1:] != mask[:, :-1]).sum()
                      + mask[[0, -1]].sum() + mask[:, [0, -1]].sum())
    width = 2 * area / max(perimeter, 1.0)  # a long stroke of width w: area L*w, perimeter ~2L
    if width * scale >= _MIN_STROKE:
        return crop
    radius = max(1, math.ceil((_STROKE / scale - width) / 2))
    return _dilate(np.pad(crop, radius), radius)


def _fit(crop, box):
    """``crop`` resized (anti-aliased) so that its longer side is ``box``, aspect ratio kept."""
    return np.clip(_resize(crop, box), 0, 1)


def _centre(digit, size):
    """``digit`` pasted into a ``size`` square with its centre of mass at pixel (14, 14)."""
    h, w = digit.shape
    total = float(digit.sum())
    ys, xs = np.mgrid[0:h, 0:w]
    cy, cx = (digit * ys).sum() / total, (digit * xs).sum() / total
    top = int(np.clip(round(_CENTRE - cy), 0, size - h))
    left = int(np.clip(round(_CENTRE - cx), 0, size - w))
    out = np.zeros((size, size), np.float32)
    out[top:top + h, left:left + w] = digit
    return out / out.max()
