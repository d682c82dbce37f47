"""ArrayFeed: the stream is a pure function of (seed, epoch, offset), augmentation included."""

import re

import numpy as np
import pytest

from slimkit.data.feed import ArrayFeed


def _tagged(n, size=6):
    """Images whose pixel (1, 1) holds the example id, and labels = id: order is observable."""
    images = np.zeros((n, size, size, 1), np.uint8)
    images[:, 1, 1, 0] = np.arange(n)
    return images, np.arange(n, dtype=np.int64)


def _stream(feed, k, calls):
    labels = [feed.next_batches(k)[1].ravel() for _ in range(calls)]
    return np.concatenate(labels)


def test_epochs_are_the_contract_permutations_and_batches_straddle():
    images, labels = _tagged(10)
    feed = ArrayFeed(images, labels, batch_size=4, seed=7)
    stream = _stream(feed, k=1, calls=5)  # 20 examples = exactly 2 epochs, batch 3 straddles
    for epoch in range(2):
        expected = np.random.default_rng([7, epoch]).permutation(10)
        np.testing.assert_array_equal(stream[10 * epoch:10 * (epoch + 1)], expected)
        assert sorted(stream[10 * epoch:10 * (epoch + 1)]) == list(range(10))
    assert not np.array_equal(stream[:10], stream[10:])  # reshuffled
    assert feed.position == (2, 0) and feed.epochs_completed == 2.0


def test_shapes_dtypes_and_scaling(mnist_dir):
    from slimkit.data.registry import load_arrays

    splits = load_arrays("mnist", mnist_dir, download=False)
    feed = ArrayFeed(splits.train.images, splits.train.labels, batch_size=32, seed=0)
    images, labels = feed.next_batches(3)
    assert images.shape == (3, 32, 28, 28, 1) and images.dtype == np.float32
    assert labels.shape == (3, 32) and labels.dtype == np.int32
    index = feed.permutation(0)[:96]
    np.testing.assert_allclose(images.reshape(96, 28, 28, 1),
                               splits.train.images[index] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(labels.ravel(), splits.train.labels[index])
    assert feed.position == (0, 96)


def test_no_shuffle_is_file_order():
    images, labels = _tagged(5)
    stream = _stream(ArrayFeed(images, labels, batch_size=3, shuffle=False), k=2, calls=2)
    np.testing.assert_array_equal(stream, [0, 1, 2, 3, 4] * 2 + [0, 1])  # 2 calls x 2 x 3


def test_same_seed_same_stream_other_seed_other_stream():
    images, labels = _tagged(50)
    a = _stream(ArrayFeed(images, labels, 8, seed=1, augment="shift"), k=3, calls=4)
    b = _stream(ArrayFeed(images, labels, 8, seed=1, augment="shift"), k=3, calls=4)
    c = _stream(ArrayFeed(images, labels, 8, seed=2, augment="shift"), k=3, calls=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_stream_is_independent_of_batch_size_and_call_pattern():
    """Examples *and their augmentation* depend only on (seed, epoch, offset)."""
    images, _ = _tagged(23)
    images = np.random.default_rng(0).integers(0, 256, images.shape, dtype=np.uint8)
    labels = np.arange(23)
    a = ArrayFeed(images, labels, batch_size=3, seed=5, augment="shift").next_batches(14)
    b = ArrayFeed(images, labels, batch_size=7, seed=5, augment="shift").next_batches(6)
    np.testing.assert_array_equal(a[0].reshape(-1, 6, 6, 1), b[0].reshape(-1, 6, 6, 1))
    np.testing.assert_array_equal(a[1].ravel(), b[1].ravel())


def test_seek_reproduces_following_batches_with_augmentation():
    images = np.random.default_rng(1).integers(0, 256, (30, 8, 8, 1), dtype=np.uint8)
    feed = ArrayFeed(images, np.arange(30), batch_size=4, seed=3, augment="shift")
    feed.next_batches(9)  # 36 examples: into epoch 1
    saved = feed.position
    assert saved == (1, 6)
    first = feed.next_batches(10)
    resumed = ArrayFeed(images, np.arange(30), batch_size=4, seed=3, augment="shift")
    resumed.seek(*saved)
    second = resumed.next_batches(10)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_shift_is_a_zero_filled_translation_of_at_most_two_pixels():
    rng = np.random.default_rng(2)
    images = rng.integers(1, 256, (40, 9, 9, 2), dtype=np.uint8)  # no zeros: fill is visible
    feed = ArrayFeed(images, np.arange(40), batch_size=40, seed=0, augment="shift")
    out, labels = feed.next_batches(1)
    out, labels = np.rint(out[0] * 255).astype(np.uint8), labels[0]
    shifts = set()
    for image, label in zip(out, labels):
        # reference: find the (dy, dx) that explains the output, with a plain per-image loop
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if np.array_equal(image, _shift_reference(images[label], dy, dx))]
        assert len(found) == 1
        shifts.add(found[0])
    assert len(shifts) >= 10  # shifts vary across examples (25 possible)


def test_each_example_gets_the_shift_its_position_hash_names():
    # The shift of an example is part of the stream a resumed run must replay: dy from the low
    # 32 bits of its (seed, epoch, offset) hash, dx from the high ones, each mod 5, minus 2.
    from slimkit.data.feed import _hash_positions, _random_shift

    rng = np.random.default_rng(4)
    images = rng.integers(1, 256, (300, 7, 8, 1), dtype=np.uint8)
    hashes = _hash_positions(9, np.full(300, 3), np.arange(300))
    out = _random_shift(images, hashes)
    dys = (hashes % np.uint64(5)).astype(int) - 2
    dxs = ((hashes >> np.uint64(32)) % np.uint64(5)).astype(int) - 2
    assert len(set(zip(dys, dxs))) == 25  # every group of the implementation is exercised
    for image, expected, dy, dx in zip(images, out, dys, dxs):
        np.testing.assert_array_equal(expected, _shift_reference(image, dy, dx))


def _shift_reference(image, dy, dx):
    out = np.zeros_like(image)
    h, w = image.shape[:2]
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        image[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def test_float_images_are_not_rescaled():
    images = np.full((4, 2, 2), 0.5, np.float64)  # (N, H, W): a channel is added
    batch, _ = ArrayFeed(images, np.zeros(4, int), 2).next_batch()
    assert batch.shape == (2, 2, 2, 1) and batch.dtype == np.float32 and np.all(batch == 0.5)


@pytest.mark.parametrize("kwargs, message", [
    (dict(batch_size=0), "Invalid value for argument `batch_size`. Expected a strictly positive "
                         "integer. Received batch_size=0."),
    (dict(batch_size=2, augment="flip"), "Invalid value for argument `augment`. Expected one of "
                                         "(None, 'shift'). Received augment='flip'."),
    (dict(batch_size=2, labels=np.arange(3)), "Invalid value for argument `labels`. Expected "
                                              "shape (5,) to match the 5 images. Received shape "
                                              "(3,)."),
])
def test_invalid_arguments(kwargs, message):
    images, labels = _tagged(5)
    kwargs.setdefault("labels", labels)
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        ArrayFeed(images, **kwargs)


def test_invalid_seek():
    feed = ArrayFeed(*_tagged(5), batch_size=2)
    with pytest.raises(ValueError, match=re.escape(
            "Invalid value for argument `offset`. Expected an integer in [0, 5) (examples per "
            "epoch). Received offset=5.")):
        feed.seek(0, 5)
    with pytest.raises(ValueError, match="Expected a non-negative integer. Received epoch=-1."):
        feed.seek(-1, 0)
