"""Checksummed, atomic downloads of dataset files from a list of mirrors.

:func:`ensure_files` makes a folder hold every file of a dataset, verified:

- A file already there is checksum-verified. A mismatch is an error naming the file, never
  silently used and never deleted for the user (it may be their only copy of something).
- A missing file is fetched from each mirror in turn with ``urllib`` (no extra dependency; ``http``,
  ``https`` and ``file`` URLs all work) into a temporary ``.<name>.<random>.part`` file in the same
  folder, hashed while it streams, and renamed onto its final name (``os.replace``, atomic on one
  file system) only when the MD5 matches. Any failure - HTTP error, refused connection, time-out,
  reset connection, TLS error, wrong checksum - removes the temporary file and moves on to the next
  mirror, so the folder never holds a partial or wrong file under a real name. A local file
  operation that fails (creating, writing or renaming in the folder: no permission, read-only or
  full disk, a file-size limit) is a :class:`~slimkit.writing.WriteFaultError` (an ``OSError``)
  naming the file, the cause and the fix at once, as no mirror would do better; errors are
  classified by the operation that raised them, never by ``errno`` (an ``ssl.SSLError`` carries an
  SSL error code there, 1 for most TLS errors, which is also ``EPERM``).
- If every mirror fails, a :class:`DownloadError` (a ``FileNotFoundError``) says which files to put
  in which folder, with their checksums and each mirror's error: the offline recipe.

Checksums. Each :class:`~slimkit.data.registry.DataFile` pins two MD5s: the published one of the
``.gz`` file, and one of the decompressed IDX bytes. A file matches if either does (the second costs
a decompression, so it is only tried when the first fails). This accepts uncompressed copies and
re-compressed ones: Debian's ``dataset-fashion-mnist`` strips the original file name from each gzip
header (its files are 23-24 bytes shorter, exactly that name), which changes the gzip MD5 but not
the content. For Fashion-MNIST, the published gzip MD5s were checked against Debian's copies:
putting the original gzip header (file name, time stamp 2017-08-31) back around Debian's deflate
streams gives files with exactly the published MD5s
(``tests/data/test_download.py::test_published_fashion_mnist_md5s_match_debians_copy``).

Mirrors. The dataset's own list, unless overridden by the ``mirrors=`` argument or the
``SLIMKIT_MIRRORS`` environment variable (base URLs separated by commas or spaces; ``{name}`` in a
URL is replaced by the dataset name, so one server can hold a whole data root).

Progress. On a terminal, one self-updating line per file; otherwise one line when a download starts
and one when it ends, so CI logs stay readable.
"""

import gzip
import hashlib
import http.client
import os
import pathlib
import sys
import tempfile
import time
import urllib.error
import urllib.request

from slimkit.data.registry import find_file, get_dataset_info
from slimkit.writing import write_fault

TIMEOUT = 60  # seconds without data before a mirror is given up
_CHUNK = 1 << 16


class DownloadError(FileNotFoundError):
    """Every mirror failed for at least one file; the message says where to put which files."""


class ChecksumError(ValueError):
    """A file on disk is not the file it claims to be."""


def file_md5(path):
    """The hex MD5 of a file, read in chunks."""
    md5 = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            md5.update(chunk)
    return md5.hexdigest()


def matches(path, data_file):
    """Whether ``path`` holds ``data_file``: its published MD5, or the MD5 of its content."""
    digest = file_md5(path)
    if digest in (data_file.md5, data_file.raw_md5):
        return True
    with open(path, "rb") as f:
        if f.read(2) != b"\x1f\x8b":
            return False
    try:
        with gzip.open(path, "rb") as f:
            md5 = hashlib.md5()
            for chunk in iter(lambda: f.read(1 << 20), b""):
                md5.update(chunk)
    except (OSError, EOFError, ValueError):  # corrupt gzip stream
        return False
    return md5.hexdigest() == data_file.raw_md5


def verify_files(name, folder):
    """Checks that ``folder`` holds every file of dataset ``name`` with the right checksum.

    Raises:
        ChecksumError: a file is there but is not the right one (a ``ValueError``).
        DownloadError: files are missing (a ``FileNotFoundError``); the message lists them.
    """
    info = get_dataset_info(name)
    missing = []
    for data_file in info.files:
        path = find_file(folder, data_file)
        if path is None:
            missing.append(data_file)
        else:
            _check_existing(path, data_file)
    if missing:
        raise DownloadError(_where_to_put(info, folder, missing, "they are missing and "
                                          "downloading is off"))


def ensure_files(name, folder, mirrors=None):
    """Makes ``folder`` hold every file of dataset ``name``, verified, downloading what is missing.

    Args:
        name: dataset name (``"mnist"``, ``"fashion_mnist"``).
        folder: the folder that holds (or will hold) the files; created if needed.
        mirrors: base URLs to try in order, or None for ``$SLIMKIT_MIRRORS`` or the dataset's list.

    Returns:
        ``folder`` as a ``pathlib.Path``.

    Raises:
        ChecksumError: a file already in ``folder`` has the wrong checksum.
        DownloadError: a file could not be fetched from any mirror.
        PermissionError: ``folder`` cannot be created; the message names it and the fix.
        slimkit.writing.WriteFaultError: A file cannot be written into ``folder`` (an
            ``OSError``: no permission, a read-only or full disk, a file-size limit); the
            message names the file, the cause and the fix.

    Example:
        >>> ensure_files("mnist", "MNIST_data")  # downloads the four files once
        PosixPath('MNIST_data')
    """
    info = get_dataset_info(name)
    folder = pathlib.Path(folder).expanduser()
    missing = []
    for data_file in info.files:
        path = find_file(folder, data_file)
        if path is None:
            missing.append(data_file)
        else:
            _check_existing(path, data_file)
    if not missing:
        return folder

    mirrors = _mirror_list(info, mirrors)
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PermissionError(f"Cannot create the folder {folder} to download {info.name} "
                              f"({e.strerror or e}). Expected a writable folder: pass --data-dir / "
                              f"data_dir= or set SLIMKIT_DATA_DIR to one, or put the files there "
                              f"yourself.") from None
    failed, errors, unreachable = [], [], set()
    try:
        for data_file in missing:
            for mirror in mirrors:
                if mirror in unreachable:  # don't wait for a dead host once per file
                    continue
                url = mirror.rstrip("/") + "/" + data_file.name
                error = _download(url, folder, data_file)
                if error is None:
                    break
                errors.append(f"{url}: {error}")
                if error.startswith("cannot connect"):
                    unreachable.add(mirror)
            else:
                failed.append(data_file)
    except BaseException:  # the folder cannot be written, or an interruption
        _remove_if_empty(folder, created)
        raise
    if failed:
        _remove_if_empty(folder, created)
        details = "; ".join(errors) or "no mirrors given"
        raise DownloadError(_where_to_put(info, folder, failed, "downloading failed") +
                            f" Mirror errors: {details}.")
    return folder


def _remove_if_empty(folder, created):
    """Leaves no empty folder behind a failed first download."""
    if created and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def _check_existing(path, data_file):
    if not matches(path, data_file):
        raise ChecksumError(
            f"Checksum mismatch for {path}: expected MD5 {data_file.md5} (the published "
            f"{data_file.name}) or {data_file.raw_md5} (its uncompressed content), found "
            f"{file_md5(path)}. The file is corrupt or not the original; delete it so that it is "
            f"downloaded again, or replace it with the original.")


def _mirror_list(info, mirrors):
    if mirrors is None:
        env = os.environ.get("SLIMKIT_MIRRORS", "").replace(",", " ").split()
        mirrors = env or list(info.mirrors)
    elif isinstance(mirrors, str):
        mirrors = [mirrors]
    return [m.replace("{name}", info.name) for m in mirrors]


def _where_to_put(info, folder, files, why):
    listing = ", ".join(f"{f.name} (MD5 {f.md5})" for f in files)
    return (f"Dataset {info.name} is incomplete in {folder}: {why}. Put these files in {folder}: "
            f"{listing} (from {info.homepage or 'the dataset homepage'}; uncompressed copies work "
            f"too), or point --data-dir / SLIMKIT_DATA_DIR at a folder that holds them.")


def _unwritable(folder, data_file, error):
    """The error for a download folder that cannot be written (no mirror would do better)."""
    return write_fault(error, folder / data_file.name, instead=(
        "pass --data-dir / data_dir= a writable folder with free space (or set XDG_CACHE_HOME), "
        f"or put the files in {folder} yourself")) or error


class _FolderError(Exception):
    """An ``OSError`` of a local file operation, kept apart from the network's ``OSError``s.

    Errors are told apart by where they are raised, not by ``errno``: an ``ssl.SSLError``'s errno is
    an SSL error code (``SSL_ERROR_SSL`` is 1, like ``EPERM``), and a reset connection is an
    ``OSError`` too.
    """

    def __init__(self, error):
        super().__init__(error)
        self.error = error


def _local(operation, *args, **kwargs):
    """Runs a local file operation; its ``OSError`` becomes a :class:`_FolderError`."""
    try:
        return operation(*args, **kwargs)
    except OSError as e:
        raise _FolderError(e) from e


def _download(url, folder, data_file):
    """Fetches one file to a temporary name, renamed when the MD5 matches; None or an error.

    Raises:
        OSError: the folder cannot be written (permission, read-only or full disk); see
            :func:`_unwritable`. Network errors are returned, so the next mirror is tried.
    """
    tmp = out = None
    try:
        fd, tmp = _local(tempfile.mkstemp, dir=folder, prefix=f".{data_file.name}.",
                         suffix=".part")
        out = os.fdopen(fd, "wb")
        md5 = hashlib.md5()
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            total = int(response.headers.get("Content-Length") or 0)
            progress = _Progress(data_file.name, url, total)
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                _local(out.write, chunk)
                md5.update(chunk)
                progress.update(len(chunk))
        _local(out.close)  # flushes: a full disk may only show here
        if total and progress.done_bytes != total:  # the server hung up early
            progress.done(f"incomplete: {progress.done_bytes} of {total} bytes")
            return f"incomplete download ({progress.done_bytes} of {total} bytes)"
        digest = md5.hexdigest()
        if digest != data_file.md5 and not (digest == data_file.raw_md5 or
                                            _local(matches, tmp, data_file)):
            progress.done(f"rejected: MD5 {digest}, expected {data_file.md5}")
            return f"wrong checksum (MD5 {digest}, expected {data_file.md5})"
        _local(os.replace, tmp, os.path.join(folder, data_file.name))
        tmp = None
        progress.done("MD5 ok")
        return None
    except _FolderError as e:
        raise _unwritable(folder, data_file, e.error) from None
    except (OSError, ValueError, http.client.HTTPException) as e:
        return _network_error(e)
    finally:
        if out is not None and not out.closed:
            try:
                out.close()
            except OSError:
                pass  # the partial file is removed below; the first error is the one reported
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)


def _network_error(error):
    """What went wrong with a mirror, for the list of mirror errors (the next one is tried)."""
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP error {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        reason = error.reason
        return f"cannot connect ({getattr(reason, 'strerror', None) or reason})"
    # time-out, reset connection, TLS error, cut-short body (IncompleteRead), malformed URL
    return f"{type(error).__name__}: {error}"


class _Progress:
    """A one-line progress bar on a terminal; start and end lines otherwise."""

    def __init__(self, name, url, total, stream=None):
        self.name, self.total, self.done_bytes = name, total, 0
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.last = 0.0
        if not self.tty:
            print(f"Downloading {url} ({_mb(total)})", file=self.stream, flush=True)

    def update(self, n):
        self.done_bytes += n
        now = time.monotonic()
        if self.tty and (now - self.last > 0.1 or self.done_bytes == self.total):
            self.last = now
            if self.total:
                frac = min(self.done_bytes / self.total, 1.0)
                bar = "#" * int(30 * frac)
                text = f"{bar:<30} {100 * frac:3.0f}% of {_mb(self.total)}"
            else:
                text = f"{_mb(self.done_bytes)}"
            self.stream.write(f"\r{self.name}: {text}")
            self.stream.flush()

    def done(self, status):
        end = f"{self.name}: {_mb(self.done_bytes)}, {status}"
        if self.tty:
            self.stream.write(f"\r{end:<70}\n")
            self.stream.flush()
        else:
            print(end, file=self.stream, flush=True)


def _mb(n):
    return f"{n / 1e6:.1f} MB" if n else "size unknown"
