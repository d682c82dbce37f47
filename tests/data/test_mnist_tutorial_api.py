"""read_data_sets on real MNIST: the tutorial's shapes, split and next_batch epoch semantics."""

import re

import numpy as np
import pytest

from slimkit.data.idx import read_idx
from slimkit.data.mnist import DataSet, read_data_sets

TRAIN_COUNTS = (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)


@pytest.fixture(scope="module")
def mnist(mnist_dir):
    return read_data_sets(str(mnist_dir), one_hot=True, seed=0)


def _rows_sorted(images):
    """Rows in a canonical order: equal for two arrays holding the same multiset of examples."""
    flat = images.reshape(len(images), -1)
    return flat[np.lexsort(flat.T[::-1])]


def test_shapes_dtypes_and_range(mnist):
    assert (mnist.train.num_examples, mnist.validation.num_examples,
            mnist.test.num_examples) == (55000, 5000, 10000)
    for split in mnist:
        assert split.images.shape == (split.num_examples, 784)
        assert split.images.dtype == np.float32
        assert split.images.min() == 0.0 and split.images.max() == 1.0
        assert split.labels.shape == (split.num_examples, 10)
        assert split.labels.dtype == np.float32
        np.testing.assert_array_equal(split.labels.sum(axis=1), 1.0)


def test_per_class_counts_of_the_training_file(mnist):
    labels = np.concatenate([mnist.train.labels, mnist.validation.labels]).argmax(axis=1)
    assert tuple(np.bincount(labels, minlength=10)) == TRAIN_COUNTS


def test_validation_is_the_end_of_the_training_file(mnist, mnist_dir):
    raw = read_idx(mnist_dir / "train-images-idx3-ubyte.gz")
    np.testing.assert_array_equal(np.rint(mnist.validation.images * 255).astype(np.uint8),
                                  raw[55000:].reshape(5000, 784))
    np.testing.assert_array_equal(np.rint(mnist.train.images[:3] * 255).astype(np.uint8),
                                  raw[:3].reshape(3, 784))


def test_next_batch_epoch_semantics_on_real_data(mnist):
    split = mnist.validation  # 5,000 examples; batch 128 straddles the epoch end at batch 40
    batches, epochs = [], []
    for _ in range(79):  # 79 * 128 = 10,112 examples: two full epochs and a bit
        images, labels = split.next_batch(128)
        assert images.shape == (128, 784) and labels.shape == (128, 10)
        batches.append(images)
        epochs.append(split.epochs_completed)
    assert epochs[38] == 0 and epochs[39] == 1  # the 40th batch crosses into epoch 1
    assert epochs[78] == 2
    stream = np.concatenate(batches)
    first, second = stream[:5000], stream[5000:10000]
    # every example exactly once per epoch (as a multiset: MNIST has no index in the images)
    np.testing.assert_array_equal(_rows_sorted(first), _rows_sorted(split.images))
    np.testing.assert_array_equal(_rows_sorted(second), _rows_sorted(split.images))
    assert not np.array_equal(first, second)  # reshuffled between epochs
    assert not np.array_equal(first, split.images)  # shuffled at all


def test_straddling_batch_is_rest_of_old_epoch_then_new_epoch():
    images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1)
    ds = DataSet(images, np.arange(10), dtype="uint8", seed=3)
    first = np.concatenate([ds.next_batch(4)[1] for _ in range(2)])  # 8 of epoch 0
    straddle = ds.next_batch(4)[1]
    assert ds.epochs_completed == 1
    assert sorted(np.concatenate([first, straddle[:2]])) == list(range(10))
    rest_of_epoch1 = np.concatenate([ds.next_batch(4)[1] for _ in range(2)])
    assert sorted(np.concatenate([straddle[2:], rest_of_epoch1])) == list(range(10))


def test_exact_epoch_end_counts_up_on_the_next_call_like_the_tutorial():
    ds = DataSet(np.zeros((6, 2, 2), np.uint8), np.arange(6), seed=0)
    ds.next_batch(3), ds.next_batch(3)
    assert ds.epochs_completed == 0
    ds.next_batch(3)
    assert ds.epochs_completed == 1


def test_no_shuffle_is_file_order_and_wraps():
    ds = DataSet(np.zeros((5, 1, 1), np.uint8), np.arange(5))
    labels = [ds.next_batch(3, shuffle=False)[1].tolist() for _ in range(3)]
    assert labels == [[0, 1, 2], [3, 4, 0], [1, 2, 3]]


def test_same_seed_same_batches_and_file_order_kept():
    images = np.arange(20, dtype=np.uint8).reshape(20, 1, 1)
    a, b = DataSet(images, np.arange(20), seed=5), DataSet(images, np.arange(20), seed=5)
    for _ in range(7):
        np.testing.assert_array_equal(a.next_batch(6)[1], b.next_batch(6)[1])
    np.testing.assert_array_equal(a.labels, np.arange(20))  # the split itself is not reordered
    assert a.images.shape == (20, 1) and a.images.dtype == np.float32


def test_integer_labels_and_unflattened_images(mnist_dir):
    data = read_data_sets(mnist_dir, reshape=False, dtype="uint8", validation_size=0)
    assert data.train.images.shape == (60000, 28, 28, 1) and data.train.images.dtype == np.uint8
    assert data.train.labels.dtype == np.int64
    assert tuple(np.bincount(data.train.labels)) == TRAIN_COUNTS
    assert data.validation.num_examples == 0


@pytest.mark.parametrize("size", [-1, 60001, 2.5])
def test_validation_size_out_of_range(mnist_dir, size):
    with pytest.raises(ValueError, match=re.escape(
            f"Invalid value for `validation_size`. Expected an integer from 0 to 60000: mnist has "
            f"60000 training examples, validation_size of them are held out. Received "
            f"validation_size={size!r}.")):
        read_data_sets(mnist_dir, validation_size=size)


def test_bad_batch_size():
    ds = DataSet(np.zeros((5, 1, 1), np.uint8), np.arange(5))
    with pytest.raises(ValueError, match=re.escape(
            "Invalid value for argument `batch_size`. Expected an integer between 1 and 5 (the "
            "number of examples). Received batch_size=6.")):
        ds.next_batch(6)


def test_data_dir_keyword_is_an_alias_of_train_dir(mnist_dir, monkeypatch, tmp_path):
    # an empty root and cache: only the folder passed can provide the files
    monkeypatch.setenv("SLIMKIT_DATA_DIR", str(tmp_path / "root"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    by_keyword = read_data_sets(data_dir=mnist_dir, one_hot=True, validation_size=5000,
                                download=False)
    by_position = read_data_sets(mnist_dir, True, validation_size=5000, download=False)
    assert by_keyword.train.num_examples == by_position.train.num_examples == 55000
    np.testing.assert_array_equal(by_keyword.test.labels, by_position.test.labels)


def test_train_dir_and_data_dir_together_are_an_error(tmp_path):
    with pytest.raises(ValueError, match="^" + re.escape(
            "read_data_sets() got both `train_dir` and `data_dir` (train_dir='a', "
            "data_dir='b'). Expected one of them: they name the same folder (`data_dir` is an "
            "alias of the tutorial's `train_dir`).") + "$"):
        read_data_sets("a", data_dir="b")
