"""IDX files, the format of MNIST and Fashion-MNIST, read strictly.

An IDX file is a 4-byte magic number ``00 00 <type> <ndim>``, then ``ndim`` big-endian uint32
dimensions, then the values in row-major order, big-endian. MNIST ships them gzip-compressed
(``train-images-idx3-ubyte.gz``); some distributions ship them raw. We detect gzip by its first two
bytes (``1f 8b``), not by the file name, so a renamed file still reads.

Everything that can be wrong with such a file is checked before a single array is returned, and
each failure is a ``ValueError`` that names the file, what was expected and what was found:

- the gzip stream is corrupt or cut short;
- the magic number is not IDX (``00 00`` prefix, known type code);
- the number of dimensions or the dimensions differ from what the caller expects (an images file
  given where labels are expected, a Fashion-MNIST file of the wrong split, ...);
- the payload is shorter (truncated download) or longer (concatenated garbage) than the dimensions
  say.

Reading is one ``np.frombuffer`` over the decompressed bytes: no per-element Python.
"""

import gzip
import math
import os
import zlib

import numpy as np

# IDX type code -> (numpy big-endian dtype, readable name)
_TYPES = {
    0x08: (np.dtype(">u1"), "unsigned byte"),
    0x09: (np.dtype(">i1"), "signed byte"),
    0x0B: (np.dtype(">i2"), "short"),
    0x0C: (np.dtype(">i4"), "int"),
    0x0D: (np.dtype(">f4"), "float"),
    0x0E: (np.dtype(">f8"), "double"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path, ndim=None, shape=None):
    """Reads an IDX file (gzip-compressed or raw) into a NumPy array, checking it fully.

    Args:
        path: the file (``str`` or ``os.PathLike``).
        ndim: the number of dimensions the caller expects (3 for images, 1 for labels), or None.
        shape: the exact shape the caller expects, or None. An entry may be None to accept any size
            along that axis, e.g. ``(None, 28, 28)``.

    Returns:
        A NumPy array of the file's shape, in native byte order (``uint8`` for MNIST).

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if the file is not a complete, well-formed IDX file of the expected shape. The
            message names the file, what was expected and what was found.

    Example:
        >>> images = read_idx("MNIST_data/train-images-idx3-ubyte.gz", shape=(None, 28, 28))
        >>> images.shape, images.dtype
        ((60000, 28, 28), dtype('uint8'))
    """
    path = os.fspath(path)
    data = _read_bytes(path)
    where = f"Invalid IDX file {path}"
    if shape is not None and ndim is None:
        ndim = len(shape)

    if len(data) < 4:
        raise ValueError(f"{where}: expected at least a 4-byte header (magic number), "
                         f"found a file of {len(data)} bytes. The file is truncated; delete it "
                         "and download it again.")
    type_code, found_ndim = data[2], data[3]
    if data[:2] != b"\x00\x00" or type_code not in _TYPES or found_ndim == 0:
        raise ValueError(f"{where}: expected an IDX magic number (00 00 <type> <ndim>, type one of "
                         f"{', '.join(f'{c:02x}' for c in _TYPES)}), found {data[:4].hex(' ')}. "
                         "This is not an IDX file (or it is corrupt).")
    dtype, type_name = _TYPES[type_code]
    if ndim is not None and found_ndim != ndim:
        raise ValueError(f"{where}: expected {ndim} dimension(s) (magic 0x{0x800 + ndim:08x} "
                         f"for unsigned bytes), found {found_ndim} (magic "
                         f"0x{int.from_bytes(data[:4], 'big'):08x}). Is this the right file "
                         "(images vs labels)?")

    header_size = 4 + 4 * found_ndim
    if len(data) < header_size:
        raise ValueError(f"{where}: expected a {header_size}-byte header for {found_ndim} "
                         f"dimensions, found a file of {len(data)} bytes. The file is truncated; "
                         "delete it and download it again.")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=found_ndim, offset=4))
    if shape is not None and any(e is not None and e != d for e, d in zip(shape, dims)):
        expected = " x ".join("any" if e is None else str(e) for e in shape)
        raise ValueError(f"{where}: expected dimensions {expected}, found "
                         f"{' x '.join(map(str, dims))}. Is this the right file?")

    # exact Python integers: four dimensions of 2**32 - 1 overflow int64 (np.prod would wrap)
    expected_size = header_size + math.prod(dims) * dtype.itemsize
    if len(data) != expected_size:
        problem = "truncated" if len(data) < expected_size else "longer than its header says"
        raise ValueError(f"{where}: expected {expected_size} bytes ({header_size}-byte header + "
                         f"{' x '.join(map(str, dims))} {type_name} values), found {len(data)} "
                         f"bytes{' after decompression' if _is_gzip(path) else ''}. The file is "
                         f"{problem}; delete it and download it again.")

    array = np.frombuffer(data, dtype, offset=header_size).reshape(dims)
    # native byte order, writable: callers may normalize in place.
    return array.astype(dtype.newbyteorder("="), copy=True)


def _is_gzip(path):
    with open(path, "rb") as f:
        return f.read(2) == _GZIP_MAGIC


def _read_bytes(path):
    """All bytes of the file, decompressed if it is gzip; corrupt gzip -> ValueError."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        # gzip.BadGzipFile is an OSError, a cut-short stream EOFError, bad deflate data zlib.error
        raise ValueError(f"Invalid IDX file {path}: expected a complete gzip stream, found a "
                         f"corrupt or truncated one ({e}). Delete the file and download it "
                         "again.") from None
