"""The pictures of a model: filters, feature maps, galleries, confusion matrices, weight heat maps.

Every function takes NumPy arrays (or anything ``np.asarray`` accepts) and returns a ``uint8``
image array of shape (H, W, 1) (grey) or (H, W, 3) (colour); :func:`to_png` turns one into PNG
bytes. TensorBoard's Images dashboard, ``slimkit inspect --png`` and a notebook
(``PIL.Image.fromarray(filter_grid(kernel)[..., 0])``) therefore show the same pictures.

    >>> kernel = model.get_layer("conv2").kernel.numpy()     # (5, 5, 32, 64)
    >>> filter_grid(kernel).shape            # 32 rows (inputs) x 64 columns of 25x25 tiles
    (833, 1665, 1)

Normalization: each tile (one filter slice, one feature map, one input image) is stretched to the
full grey range on its own, so its structure is visible whatever its scale; a constant tile is
mid-grey. Grids are separated by a 1-pixel line and small tiles are magnified (nearest neighbour,
an integer factor) so that a 5x5 filter is not five pixels wide on screen.

Unlike Keras' TensorBoard callback, which skips kernels it cannot squeeze into 1, 3 or 4
channels, every conv kernel is drawn: a first layer with 3 input channels (RGB) as one colour tile
per filter, any other as one grey tile per (input channel, filter) pair, inputs in rows and
filters in columns.
"""

import io
import math

import numpy as np

_PAD = 1  # pixels between tiles
_GRID_VALUE = 0.25  # grey level of the separating lines (tiles span 0..1)
_MAX_SIDE = 2048  # magnification stops before a grid gets larger than this
_MIN_TILE = 24  # magnify tiles smaller than this many pixels


def normalize_tiles(tiles):
    """Stretches each tile of ``tiles`` (n, h, w[, c]) to [0, 1] on its own; constant tiles -> 0.5.

    The channels of one tile are stretched together (a colour filter keeps its hues).

    Example:
        >>> normalize_tiles(np.array([[[1., 3.]], [[2., 2.]]]))[:, 0]
        array([[0. , 1. ],
               [0.5, 0.5]], dtype=float32)
    """
    tiles = np.asarray(tiles, np.float32)
    axes = tuple(range(1, tiles.ndim))
    finite = np.where(np.isfinite(tiles), tiles, np.nan)
    with np.errstate(all="ignore"):
        low = np.nanmin(finite, axis=axes, keepdims=True) if tiles.size else finite
        high = np.nanmax(finite, axis=axes, keepdims=True) if tiles.size else finite
        span = high - low
        out = np.where(span > 0, (tiles - low) / np.where(span > 0, span, 1), 0.5)
    return np.nan_to_num(np.clip(out, 0, 1), nan=0.5).astype(np.float32)


def tile_grid(tiles, columns=None, scale=None):
    """Lays ``tiles`` (n, h, w, c), values in [0, 1], on a grid; returns uint8 (H, W, c).

    Args:
        tiles: The tiles, already normalized.
        columns: Tiles per row (default: a near-square grid).
        scale: Integer magnification of every tile (default: up to ``_MIN_TILE`` pixels, as long
            as the grid stays within ``_MAX_SIDE``).

    Example:
        >>> tile_grid(np.ones((6, 4, 4, 1)), columns=3, scale=1).shape   # 2 rows of 3
        (11, 16, 1)
    """
    tiles = np.asarray(tiles, np.float32)
    if tiles.ndim != 4 or not len(tiles):
        raise ValueError(f"Invalid value for argument `tiles`. Expected a non-empty array of shape "
                         f"(n, h, w, channels). Received shape {tiles.shape}.")
    n, h, w, c = tiles.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    if scale is None:
        scale = _magnification(h, w, rows, columns)
    if scale > 1:
        tiles = tiles.repeat(scale, axis=1).repeat(scale, axis=2)
        h, w = h * scale, w * scale
    grid = np.full((rows * (h + _PAD) + _PAD, columns * (w + _PAD) + _PAD, c), _GRID_VALUE,
                   np.float32)
    for i, tile in enumerate(tiles):
        top, left = _PAD + (i // columns) * (h + _PAD), _PAD + (i % columns) * (w + _PAD)
        grid[top:top + h, left:left + w] = tile
    return to_uint8(grid)


def _magnification(h, w, rows, columns):
    want = max(1, math.ceil(_MIN_TILE / max(h, w)))
    room = min((_MAX_SIDE - _PAD) // (rows * (h + _PAD)), (_MAX_SIDE - _PAD) // (columns * (w + _PAD)))
    return int(max(1, min(want, room)))


def filter_grid(kernel):
    """The filters of a conv layer as one grid image.

    Args:
        kernel: (kh, kw, in_channels, filters), e.g. ``layer.kernel.numpy()`` (a grouped
            convolution's kernel has in_channels per group).

    Returns:
        uint8 (H, W, 3) with one colour tile per filter if ``in_channels == 3`` (in a near-square
        grid); otherwise uint8 (H, W, 1) with one grey tile per (input channel, filter) pair: input
        channel ``i`` in row ``i``, filter ``j`` in column ``j`` (one input channel: the filters in
        a near-square grid). Each tile is normalized on its own (module docstring).

    Raises:
        ValueError: If ``kernel`` is not 4-D.

    Example:
        >>> filter_grid(np.random.randn(11, 11, 3, 96)).shape   # AlexNet conv1: 10 x 10 colour
        (341, 341, 3)
    """
    kernel = np.asarray(kernel, np.float32)
    if kernel.ndim != 4:
        raise ValueError(f"Invalid value for argument `kernel`. Expected a conv kernel of shape "
                         f"(height, width, in_channels, filters). Received shape {kernel.shape}.")
    kh, kw, cin, cout = kernel.shape
    if cin == 3:  # RGB input: one colour tile per filter
        return tile_grid(normalize_tiles(kernel.transpose(3, 0, 1, 2)))
    tiles = kernel.transpose(2, 3, 0, 1).reshape(cin * cout, kh, kw, 1)  # (in, out) row-major
    return tile_grid(normalize_tiles(tiles), columns=cout if cin > 1 else None)


def feature_map_grid(activation):
    """The feature maps of one example at one layer: one grey tile per channel, near-square grid.

    Args:
        activation: (h, w, channels), e.g. ``end_points["conv1"]`` of one image.

    Returns:
        uint8 (H, W, 1).

    Example:
        >>> feature_map_grid(np.random.rand(28, 28, 32)).shape    # 6 x 6 grid of 28x28 tiles
        (175, 175, 1)
    """
    activation = np.asarray(activation, np.float32)
    if activation.ndim != 3:
        raise ValueError(f"Invalid value for argument `activation`. Expected the feature maps of "
                         f"one example, shape (height, width, channels). Received shape "
                         f"{activation.shape}.")
    tiles = activation.transpose(2, 0, 1)[..., np.newaxis]  # (channels, h, w, 1)
    return tile_grid(normalize_tiles(tiles))


def display_images(images):
    """Input images as they can be shown: each stretched to [0, 1] on its own, uint8 (n, h, w, c).

    MNIST's [0, 1] pixels stay what they are (unless an image does not span the range); an image
    folder's normalized (ImageNet mean and stddev) images get their contrast back.
    """
    images = np.asarray(images, np.float32)
    if images.ndim == 3:
        images = images[..., np.newaxis]
    return to_uint8(normalize_tiles(images))


def misclassified_gallery(images, labels, predictions, class_names=None, columns=8):
    """A grid of examples, each captioned with its true and predicted class.

    Args:
        images: (n, h, w, c) as fed to the model (any scale: each is normalized for display).
        labels: (n,) true class ids.
        predictions: (n,) predicted class ids.
        class_names: Names by class id (default: the ids).
        columns: Examples per row.

    Returns:
        uint8 (H, W, 3): every tile at least 84 pixels wide, captioned ``true 7`` / ``pred 2``.

    Example:
        >>> misclassified_gallery(images[:4], [7, 2, 1, 0], [1, 2, 7, 6]).shape[2]
        3
    """
    from PIL import Image, ImageDraw

    images = display_images(images)
    n, h, w, c = images.shape
    if not (len(labels) == len(predictions) == n):
        raise ValueError(f"Invalid arguments: {n} images, {len(labels)} labels and "
                         f"{len(predictions)} predictions. Expected one label and one prediction "
                         "per image.")
    names = _names(class_names, max(list(labels) + list(predictions)) + 1)
    scale = max(1, math.ceil(84 / w))
    font = _font(12)
    tile_w, text_h = w * scale, 30
    columns = max(1, min(columns, n))
    rows = math.ceil(n / columns)
    canvas = Image.new("RGB", (columns * (tile_w + 4) + 4, rows * (h * scale + text_h + 4) + 4),
                       (40, 40, 40))
    draw = ImageDraw.Draw(canvas)
    for i in range(n):
        tile = images[i] if c == 3 else np.repeat(images[i][..., :1], 3, axis=2)
        tile = Image.fromarray(tile).resize((tile_w, h * scale), Image.NEAREST)
        left, top = 4 + (i % columns) * (tile_w + 4), 4 + (i // columns) * (h * scale + text_h + 4)
        canvas.paste(tile, (left, top))
        draw.text((left + 2, top + h * scale + 1), _fit(f"true {names[labels[i]]}", tile_w, font),
                  fill=(120, 230, 120), font=font)
        draw.text((left + 2, top + h * scale + 15),
                  _fit(f"pred {names[predictions[i]]}", tile_w, font), fill=(255, 120, 120),
                  font=font)
    return np.asarray(canvas)


def confusion_matrix_image(matrix, class_names=None):
    """A confusion matrix as a heat map, true classes in rows, predictions in columns.

    Args:
        matrix: (k, k) counts, ``matrix[true, predicted]``.
        class_names: Names by class id, drawn on both axes (default: the ids).

    Returns:
        uint8 (H, W, 3): white (none) to dark blue (a row's largest share); the count in each cell
        where it fits; axis titles "true" and "predicted".

    Example:
        >>> confusion_matrix_image(np.eye(10, dtype=int) * 100).shape[2]
        3
    """
    from PIL import Image, ImageDraw

    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or not len(matrix):
        raise ValueError(f"Invalid value for argument `matrix`. Expected a square (classes, "
                         f"classes) array of counts. Received shape {matrix.shape}.")
    k = len(matrix)
    names = _names(class_names, k)
    cell = int(min(40, max(4, 1200 // k)))
    font = _font(max(8, min(12, cell // 3)))
    label_w = min(140, 8 + max(_text_width(n, font) for n in names)) if cell >= 10 else 20
    top, left = label_w + 18, label_w + 18
    canvas = Image.new("RGB", (left + k * cell + 2, top + k * cell + 2), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros(matrix.shape, np.float64), where=rows > 0)
    for t in range(k):
        for p in range(k):
            s = share[t, p]
            colour = tuple(int(round(255 - s * (255 - v))) for v in (8, 48, 107))
            x, y = left + p * cell, top + t * cell
            draw.rectangle([x, y, x + cell - 1, y + cell - 1], fill=colour)
            if cell >= 18 and matrix[t, p]:
                text = str(int(matrix[t, p]))
                if _text_width(text, font) < cell - 2:
                    draw.text((x + 2, y + cell // 3), text, font=font,
                              fill=(255, 255, 255) if s > 0.5 else (0, 0, 0))
    if cell >= 10:  # class names on both axes (predicted: written downwards above the columns)
        for i, name in enumerate(names):
            draw.text((4, top + i * cell + cell // 3), _fit(name, label_w - 6, font), font=font,
                      fill=(0, 0, 0))
            label = Image.new("RGB", (label_w, cell), (255, 255, 255))
            ImageDraw.Draw(label).text((2, cell // 3), _fit(name, label_w - 6, font), font=font,
                                       fill=(0, 0, 0))
            canvas.paste(label.rotate(90, expand=True), (left + i * cell, 16))
    draw.text((left, 2), "predicted", font=font, fill=(0, 0, 0))
    draw.text((2, top - 14), "true", font=font, fill=(0, 0, 0))
    return np.asarray(canvas)


def weight_heatmaps(weights, image_shape, class_names=None):
    """The weights of a linear classifier on pixels, one heat map per class (softmax regression).

    Args:
        weights: (H*W*C, classes), e.g. the kernel of ``softmax_regression``'s ``logits`` layer.
        image_shape: (H, W) or (H, W, C) of the input (channels are averaged).
        class_names: Drawn above each map (default: the ids).

    Returns:
        uint8 (H', W', 3): red for positive weights (evidence for the class), blue for negative,
        white for zero; one symmetric scale for all maps, so they compare.

    Example:
        >>> weight_heatmaps(np.random.randn(784, 10), (28, 28)).shape[2]
        3
    """
    from PIL import Image, ImageDraw

    weights = np.asarray(weights, np.float32)
    shape = tuple(image_shape)
    pixels = int(np.prod(shape))
    if weights.ndim != 2 or weights.shape[0] != pixels:
        raise ValueError(f"Invalid value for argument `weights`. Expected shape ({pixels}, "
                         f"classes) for images of shape {shape}. Received shape {weights.shape}.")
    maps = weights.T.reshape((-1,) + shape)
    if maps.ndim == 4:
        maps = maps.mean(axis=3)
    bound = float(np.max(np.abs(maps))) or 1.0
    v = np.clip(maps / bound, -1, 1)[..., np.newaxis]  # (k, H, W, 1) in [-1, 1]
    red, blue = np.array([214, 39, 40], np.float32), np.array([31, 119, 180], np.float32)
    white = np.float32(255)
    rgb = np.where(v > 0, white + v * (red - white), white - v * (blue - white))  # v<0: towards blue
    k, h, w = maps.shape
    names = _names(class_names, k)
    scale = max(1, math.ceil(84 / w))
    font = _font(12)
    columns = min(k, 5)
    rows = math.ceil(k / columns)
    canvas = Image.new("RGB", (columns * (w * scale + 6) + 6, rows * (h * scale + 22) + 6),
                       (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for i in range(k):
        tile = Image.fromarray(rgb[i].astype(np.uint8)).resize((w * scale, h * scale), Image.NEAREST)
        left, top = 6 + (i % columns) * (w * scale + 6), 6 + (i // columns) * (h * scale + 22)
        draw.text((left, top), _fit(names[i], w * scale, font), font=font, fill=(0, 0, 0))
        canvas.paste(tile, (left, top + 16))
    return np.asarray(canvas)


def sprite_image(images, thumbnail=None):
    """The TensorBoard Projector's sprite: ``images`` (n, h, w, c) as one square grid, no gaps.

    Thumbnails are ``thumbnail`` pixels square (default: the images' size, at most 64), so the
    sprite of 1,000 examples stays below the Projector's 8192-pixel limit.

    Returns:
        ``(uint8 (S, S, 3) sprite, thumbnail side)``.
    """
    from PIL import Image

    images = display_images(images)
    n, h, w, c = images.shape
    side = int(thumbnail or min(64, max(h, w)))
    columns = math.ceil(math.sqrt(n))
    sprite = Image.new("RGB", (columns * side, columns * side), (0, 0, 0))
    for i, image in enumerate(images):
        tile = image if c == 3 else np.repeat(image[..., :1], 3, axis=2)
        sprite.paste(Image.fromarray(tile).resize((side, side), Image.BILINEAR),
                     ((i % columns) * side, (i // columns) * side))
    return np.asarray(sprite), side


def to_uint8(image):
    """[0, 1] floats to uint8 (rounded, clipped)."""
    return (np.clip(np.asarray(image, np.float32), 0, 1) * 255 + 0.5).astype(np.uint8)


def to_png(image):
    """PNG bytes of a uint8 (H, W), (H, W, 1) or (H, W, 3) image.

    Example:
        >>> to_png(filter_grid(kernel))[:4]
        b'\\x89PNG'
    """
    from PIL import Image

    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = to_uint8(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _names(class_names, k):
    names = [str(n) for n in class_names] if class_names is not None else []
    return names + [str(i) for i in range(len(names), k)]


def _font(size):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType: a scalable font
    except (TypeError, OSError):
        return ImageFont.load_default()


def _text_width(text, font):
    left, _, right, _ = font.getbbox(text)
    return right - left


def _fit(text, width, font):
    """``text``, cut with an ellipsis to fit ``width`` pixels."""
    if _text_width(text, font) <= width:
        return text
    while len(text) > 1 and _text_width(text + "…", font) > width:
        text = text[:-1]
    return text + "…"
