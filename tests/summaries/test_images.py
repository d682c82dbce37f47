"""The picture functions against NumPy: layout, per-tile normalization, colours, PNG."""

import io

import numpy as np
import pytest
from PIL import Image

from slimkit.summaries import images

PAD = images._PAD


def _tile(grid, row, column, h, w):
    """The (h, w) tile at (row, column) of a grid laid out with 1-pixel lines."""
    top, left = PAD + row * (h + PAD), PAD + column * (w + PAD)
    return grid[top:top + h, left:left + w]


def _expected(tile, scale):
    """uint8 of a tile normalized on its own and magnified by ``scale``."""
    tile = np.asarray(tile, np.float32)
    low, high = tile.min(), tile.max()
    norm = (tile - low) / (high - low) if high > low else np.full_like(tile, 0.5)
    norm = norm.repeat(scale, axis=0).repeat(scale, axis=1)
    return (norm * 255 + 0.5).astype(np.uint8)


def test_normalize_tiles_stretches_each_tile_on_its_own():
    tiles = np.array([[[1.0, 3.0]], [[2.0, 2.0]], [[-5.0, np.nan]]])
    out = images.normalize_tiles(tiles)
    np.testing.assert_allclose(out[0, 0], [0, 1])
    np.testing.assert_allclose(out[1, 0], [0.5, 0.5])  # constant: mid-grey
    np.testing.assert_allclose(out[2, 0], [0.5, 0.5])  # one finite value and a NaN


@pytest.mark.parametrize("in_channels", [1, 32, 96])
def test_grey_filters_one_tile_per_input_channel_and_filter(in_channels):
    rng = np.random.default_rng(in_channels)
    filters = 64 if in_channels == 32 else 32
    kernel = rng.normal(size=(5, 5, in_channels, filters)) * rng.uniform(0.01, 10, filters)
    grid = images.filter_grid(kernel)
    assert grid.dtype == np.uint8 and grid.shape[2] == 1
    assert max(grid.shape) <= images._MAX_SIDE
    if in_channels == 1:  # a near-square grid of the 32 filters: 6 x 6
        rows, columns = 6, 6
        slots = [(j // 6, j % 6, 0, j) for j in range(filters)]
    else:  # input channel i in row i, filter j in column j
        rows, columns = in_channels, filters
        slots = [(i, j, i, j) for i in (0, in_channels // 2, in_channels - 1)
                 for j in (0, 7, filters - 1)]
    side = (grid.shape[0] - PAD) // rows - PAD
    scale = side // 5
    assert side == 5 * scale and scale >= 1
    assert grid.shape[:2] == (rows * (side + PAD) + PAD, columns * (side + PAD) + PAD)
    for row, column, i, j in slots:
        np.testing.assert_array_equal(_tile(grid, row, column, side, side)[..., 0],
                                      _expected(kernel[:, :, i, j], scale))


def test_rgb_first_layer_is_one_colour_tile_per_filter():
    rng = np.random.default_rng(3)
    kernel = rng.normal(size=(11, 11, 3, 96))  # AlexNet's conv1
    kernel[..., 5] *= 1000  # a huge filter is not allowed to wash the others out
    grid = images.filter_grid(kernel)
    assert grid.shape[2] == 3
    side = (grid.shape[0] - PAD) // 10 - PAD  # ceil(sqrt(96)) = 10 columns, 10 rows
    scale = side // 11
    assert grid.shape[:2] == (10 * (side + PAD) + PAD,) * 2 and side == 11 * scale
    for j in (0, 5, 95):
        np.testing.assert_array_equal(_tile(grid, j // 10, j % 10, side, side),
                                      _expected(kernel[:, :, :, j], scale))
    # the four unused slots of the last row stay the grid's grey
    assert (_tile(grid, 9, 9, side, side) == images.to_uint8(images._GRID_VALUE)).all()


def test_feature_maps_one_tile_per_channel():
    rng = np.random.default_rng(4)
    activation = rng.uniform(0, 3, size=(7, 7, 64))
    activation[..., 3] = 0.0  # a dead ReLU channel: uniform grey, not an error
    grid = images.feature_map_grid(activation)
    side = (grid.shape[0] - PAD) // 8 - PAD  # 64 channels: 8 x 8
    scale = side // 7
    for c in (0, 3, 63):
        np.testing.assert_array_equal(_tile(grid, c // 8, c % 8, side, side)[..., 0],
                                      _expected(activation[..., c], scale))


def test_bad_shapes_are_refused_with_the_shape():
    with pytest.raises(ValueError, match=r"Expected a conv kernel of shape \(height, width, "
                                         r"in_channels, filters\). Received shape \(784, 10\)"):
        images.filter_grid(np.zeros((784, 10)))
    with pytest.raises(ValueError, match=r"Received shape \(2, 28, 28, 32\)"):
        images.feature_map_grid(np.zeros((2, 28, 28, 32)))


def test_gallery_shows_each_image_with_true_and_predicted_caption():
    rng = np.random.default_rng(5)
    batch = rng.uniform(size=(3, 28, 28, 1))
    gallery = images.misclassified_gallery(batch, [7, 2, 1], [1, 3, 7], columns=8)
    assert gallery.shape == (4 + 84 + 30 + 4, 3 * (84 + 4) + 4, 3)
    tile = gallery[4:4 + 84, 4 + 88:4 + 88 + 84, 0]  # the second image, magnified 3x
    np.testing.assert_array_equal(tile, _expected(batch[1, ..., 0], 3))
    caption = gallery[4 + 84:4 + 84 + 30, 4:4 + 84]
    green = (caption[..., 1] > 150) & (caption[..., 0] < 150)
    red = (caption[..., 0] > 200) & (caption[..., 1] < 150)
    assert green.sum() > 10 and red.sum() > 10  # "true 7" in green, "pred 1" in red
    with pytest.raises(ValueError, match="3 images, 2 labels and 3 predictions"):
        images.misclassified_gallery(batch, [7, 2], [1, 3, 7])


def test_confusion_matrix_darker_where_a_row_puts_more_examples():
    matrix = np.array([[90, 10, 0], [0, 50, 50], [0, 0, 7]])
    picture = images.confusion_matrix_image(matrix, ["cat", "dog", "fox"])
    cell = 40
    left = top = picture.shape[0] - 3 * cell - 2

    def colour(t, p):
        return picture[top + t * cell + 2, left + p * cell + cell - 3].astype(int)  # cell corner

    assert colour(2, 2).sum() < colour(0, 0).sum()  # 7 of 7 vs 90 of 100
    assert colour(0, 0).sum() < colour(0, 1).sum() < colour(0, 2).sum() == 3 * 255
    assert (colour(1, 1) == colour(1, 2)).all()  # the same share of their row
    # the class names are drawn on the left of the rows
    assert (picture[top:top + 3 * cell, :left] < 100).any()


def test_weight_heatmaps_red_for_positive_blue_for_negative():
    weights = np.zeros((784, 10))
    weights[380, 3] = 2.0  # pixel 380 (row 13, column 16) is evidence for class 3
    weights[380, 5] = -1.0
    picture = images.weight_heatmaps(weights, (28, 28))
    scale = 3  # 28 px -> 84

    def pixel(k):
        left, top = 6 + (k % 5) * (84 + 6), 6 + (k // 5) * (84 + 22) + 16
        return picture[top + 13 * scale + 1, left + 16 * scale + 1].astype(int)
    assert tuple(pixel(3)) == (214, 39, 40)  # the largest |w|: full red
    r, g, b = pixel(5)
    assert b > r and (r, g, b) != (255, 255, 255)  # half as negative: light blue
    assert tuple(pixel(0)) == (255, 255, 255)
    with pytest.raises(ValueError, match=r"Expected shape \(784, classes\)"):
        images.weight_heatmaps(np.zeros((100, 10)), (28, 28))


def test_png_round_trip():
    grid = images.filter_grid(np.random.default_rng(6).normal(size=(5, 5, 1, 32)))
    data = images.to_png(grid)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data))), grid[..., 0])


def test_sprite_is_square_and_within_the_projector_limit():
    sprite, side = images.sprite_image(np.random.default_rng(7).uniform(size=(1000, 28, 28, 1)))
    assert side == 28 and sprite.shape == (32 * 28, 32 * 28, 3)
    sprite, side = images.sprite_image(np.zeros((1000, 224, 224, 3)))
    assert side == 64 and max(sprite.shape) <= 8192
