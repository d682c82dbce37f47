"""The IDX parser: real MNIST reads; every kind of broken file fails with an exact message.

Broken files are written to tmp_path; the shared data is only read.
"""

import gzip
import re

import numpy as np
import pytest

from slimkit.data.idx import read_idx


def _idx_bytes(array, type_code=0x08):
    """An IDX file's bytes for a uint8 array (the writer the parser is checked against)."""
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(">u1").tobytes()


@pytest.fixture()
def images():
    return np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)


def _write(path, data):
    path.write_bytes(data)
    return path


def test_reads_raw_and_gzip_identically(tmp_path, images):
    raw = _write(tmp_path / "x-idx3-ubyte", _idx_bytes(images))
    gz = _write(tmp_path / "x-idx3-ubyte.gz", gzip.compress(_idx_bytes(images)))
    # gzip is detected by content, not by name
    renamed = _write(tmp_path / "no-extension", gzip.compress(_idx_bytes(images)))
    for path in (raw, gz, renamed):
        array = read_idx(path, shape=(None, 3, 4))
        assert array.dtype == np.uint8 and array.shape == (2, 3, 4)
        np.testing.assert_array_equal(array, images)
        assert array.flags.writeable


def test_reads_big_endian_wider_types(tmp_path):
    values = np.array([[1, -2], [300, 70000]], dtype=">i4")
    data = bytes([0, 0, 0x0C, 2]) + (2).to_bytes(4, "big") * 2 + values.tobytes()
    array = read_idx(_write(tmp_path / "ints", data), ndim=2)
    assert array.dtype == np.int32 and array.dtype.isnative
    np.testing.assert_array_equal(array, [[1, -2], [300, 70000]])


def test_real_mnist_files(mnist_dir):
    train = read_idx(mnist_dir / "train-images-idx3-ubyte.gz", shape=(60000, 28, 28))
    labels = read_idx(mnist_dir / "train-labels-idx1-ubyte.gz", shape=(60000,))
    test = read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz", shape=(None, 28, 28))
    assert train.dtype == np.uint8 and test.shape == (10000, 28, 28)
    assert train.min() == 0 and train.max() == 255
    assert tuple(np.bincount(labels)) == (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851,
                                          5949)


def test_truncated_payload(tmp_path, images):
    path = _write(tmp_path / "cut.gz", gzip.compress(_idx_bytes(images)[:-6]))
    message = (f"Invalid IDX file {path}: expected 40 bytes (16-byte header + 2 x 3 x 4 unsigned "
               f"byte values), found 34 bytes after decompression. The file is truncated; delete "
               f"it and download it again.")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        read_idx(path)


def test_trailing_garbage(tmp_path, images):
    path = _write(tmp_path / "long", _idx_bytes(images) + b"\0\0")
    with pytest.raises(ValueError, match=re.escape(
            f"Invalid IDX file {path}: expected 40 bytes (16-byte header + 2 x 3 x 4 unsigned byte "
            f"values), found 42 bytes. The file is longer than its header says")):
        read_idx(path)


def test_truncated_header(tmp_path, images):
    tiny = _write(tmp_path / "tiny", b"\0\0")
    with pytest.raises(ValueError, match=re.escape(
            f"Invalid IDX file {tiny}: expected at least a 4-byte header (magic number), found a "
            f"file of 2 bytes.")):
        read_idx(tiny)
    cut = _write(tmp_path / "cut-header", _idx_bytes(images)[:10])
    with pytest.raises(ValueError, match=re.escape(
            f"Invalid IDX file {cut}: expected a 16-byte header for 3 dimensions, found a file of "
            f"10 bytes.")):
        read_idx(cut)


def test_wrong_magic(tmp_path):
    path = _write(tmp_path / "photo.jpg", b"\xff\xd8\xff\xe0" + b"\0" * 20)
    with pytest.raises(ValueError, match=re.escape(
            f"Invalid IDX file {path}: expected an IDX magic number (00 00 <type> <ndim>, type one "
            f"of 08, 09, 0b, 0c, 0d, 0e), found ff d8 ff e0. This is not an IDX file")):
        read_idx(path)


def test_labels_file_where_images_expected(tmp_path):
    path = _write(tmp_path / "labels.gz", gzip.compress(_idx_bytes(np.arange(5, dtype=np.uint8))))
    with pytest.raises(ValueError, match=re.escape(
            f"Invalid IDX file {path}: expected 3 dimension(s) (magic 0x00000803 for unsigned "
            f"bytes), found 1 (magic 0x00000801). Is this the right file (images vs labels)?")):
        read_idx(path, shape=(None, 28, 28))


def test_wrong_dimensions(tmp_path, images):
    path = _write(tmp_path / "small", _idx_bytes(images))
    with pytest.raises(ValueError, match=re.escape(
            f"Invalid IDX file {path}: expected dimensions any x 28 x 28, found 2 x 3 x 4. Is this "
            f"the right file?")):
        read_idx(path, shape=(None, 28, 28))


@pytest.mark.parametrize("damage", ["cut", "flipped"])
def test_corrupt_gzip(tmp_path, damage):
    data = gzip.compress(_idx_bytes(np.random.default_rng(0).integers(0, 255, (50, 28, 28),
                                                                      dtype=np.uint8)))
    if damage == "cut":
        data = data[: len(data) // 2]
    else:  # garble the deflate stream in the middle
        middle = len(data) // 2
        data = data[:middle] + bytes(b ^ 0xFF for b in data[middle:middle + 64]) + \
            data[middle + 64:]
    path = _write(tmp_path / f"{damage}.gz", data)
    with pytest.raises(ValueError, match=re.escape(
            f"Invalid IDX file {path}: expected a complete gzip stream, found a corrupt or "
            f"truncated one (")):
        read_idx(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nothing.gz")


def test_huge_header_dimensions_do_not_overflow(tmp_path):
    """Four dimensions of 2**32 - 1 doubles: 8 * (2**32 - 1)**4 bytes, far beyond int64."""
    path = _write(tmp_path / "huge", bytes([0, 0, 0x0E, 4]) + b"\xff\xff\xff\xff" * 4)
    dims = " x ".join(["4294967295"] * 4)
    expected = 20 + (2 ** 32 - 1) ** 4 * 8
    message = (f"Invalid IDX file {path}: expected {expected} bytes (20-byte header + {dims} "
               f"double values), found 20 bytes. The file is truncated; delete it and download it "
               f"again.")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        read_idx(path)
