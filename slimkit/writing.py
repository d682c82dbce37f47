"""Write faults told as one line (the file, the cause, what to do), and atomic text files.

Every place slimkit writes - checkpoints, ``config.json``, ``best.json``, the lock file, downloads,
and the TensorBoard summaries, exports and pictures built on top - reports a failed write the same
way. A full disk, a file-size limit, a permission or a read-only file system is the user's to fix,
not a bug, so it becomes a :class:`WriteFaultError`: an ``OSError`` whose ``str`` is one line that
the ``slimkit`` command prints as it is (exit code 2, no traceback). Python raises ``OSError``s
with an ``errno``; TensorFlow raises ``tf.errors.OpError`` subclasses (``ResourceExhaustedError``,
``OutOfRangeError``, ``PermissionDeniedError``, ``FailedPreconditionError``) whose message ends with
the C library's text, e.g. ``.../ckpt-100_temp/part-00000-of-00001.data-00000-of-00001.tempstate12;
File too large [Op:SaveV2]``; :func:`fault_errno` reads the ``errno`` back from either.

API:

- :func:`fault_errno(error) <fault_errno>`: the ``errno`` behind an ``OSError`` or an ``OpError``,
  or None (not a file-system error).
- :func:`write_error_message(error, path, what_to_do) <write_error_message>`: the line, e.g. for a
  warning of a writer that lets training go on.
- :func:`write_fault(error, path, what_to_do) <write_fault>`: the :class:`WriteFaultError` to raise
  (``raise write_fault(e, path, "...") from None``), or None if ``error`` is no file-system error.
- :func:`write_text_atomically(path, text) <write_text_atomically>` and its two-step form
  :func:`replaced_atomically`: a file that is replaced whole or not at all, a failed write leaving
  neither a temporary file nor a half-written one.

Example:
    >>> import errno
    >>> full = OSError(errno.ENOSPC, "No space left on device")
    >>> print(write_error_message(full, "/runs/x/config.json", "Nothing was trained.",
    ...                           instead="use a --logdir elsewhere"))
    Cannot write /runs/x/config.json: no space left on the device. Free space there (`df -h /runs/x` shows what is left) or use a --logdir elsewhere. Nothing was trained.
    >>> fault = write_fault(full, "/runs/x/config.json")
    >>> isinstance(fault, OSError), fault.errno == errno.ENOSPC, fault.filename
    (True, True, '/runs/x/config.json')
    >>> write_fault(ValueError("not a file-system error"), "/runs/x/config.json") is None
    True
"""

import contextlib
import errno
import os
import re
import resource
import uuid

# The C library's texts (strerror), as TensorFlow puts them at the end of its messages.
_ERRNO_OF_TEXT = {os.strerror(code): code for code in sorted(errno.errorcode, reverse=True)}
_TEXTS = "|".join(re.escape(text) for text in sorted(_ERRNO_OF_TEXT, key=len, reverse=True))
_TF_TEXT = re.compile(rf"; ({_TEXTS})(?=$|[\s\[.,;])")


class WriteFaultError(OSError):
    """A file could not be written; ``str(error)`` is the one line naming it, the cause and the fix.

    Attributes:
        errno: The cause (``errno.ENOSPC``, ``EFBIG``, ``EACCES``, ``EROFS``, ...).
        filename: The file (or folder) that could not be written.
    """

    def __init__(self, message, code=None, path=None):
        super().__init__(message)
        self.message = message
        self.errno = code
        self.filename = None if path is None else os.fspath(path)

    def __str__(self):
        return self.message

    def __reduce__(self):  # (OSError's would rebuild it from the message alone)
        return type(self), (self.message, self.errno, self.filename)


def fault_errno(error):
    """The ``errno`` of a failed file operation: an ``OSError``'s, or read from an ``OpError``.

    Returns:
        The code, or None if ``error`` is neither, or a TensorFlow error without one.
    """
    if isinstance(error, WriteFaultError):
        return error.errno
    if isinstance(error, OSError):
        return error.errno
    message = getattr(error, "message", None)
    if isinstance(message, str) and type(error).__module__.startswith("tensorflow"):
        found = _TF_TEXT.findall(message)  # the last one: the innermost error's
        return _ERRNO_OF_TEXT[found[-1]] if found else None
    return None


def write_error_message(error, path, what_to_do="", *, action="write",
                        instead="write it elsewhere"):
    """The one line for a failed write of ``path``: ``Cannot <action> <path>: <cause>. <fix> ...``.

    Args:
        error: The ``OSError`` or TensorFlow ``OpError`` (see :func:`fault_errno`).
        path: The file that could not be written, as the user knows it; or a folder (that of
            TensorBoard event files, say), whose own free space and permissions the fix is about.
        what_to_do: Sentences added at the end: what happened to the run and how to go on.
        action: What could not be done to ``path`` (``"write the checkpoint"``).
        instead: The way round the fault where it cannot be fixed in place (``"use a --logdir
            elsewhere"``); completes "Free space there or ...".

    Returns:
        The message, on one line.
    """
    path = os.fspath(path)
    # The folder where the fix applies, named as the user named the path.
    folder = path if os.path.isdir(path) else (os.path.dirname(path) or ".")
    code = fault_errno(error)
    if code in (errno.ENOSPC, errno.EDQUOT):
        quota = code == errno.EDQUOT
        cause = "the disk quota is exhausted" if quota else "no space left on the device"
        fix = (f"Free space {'within the quota' if quota else 'there'} (`df -h {folder}` shows "
               f"what is left) or {instead}.")
    elif code == errno.EFBIG:
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if limit != resource.RLIM_INFINITY:
            cause = (f"file too large for this process's file-size limit of {limit} bytes "
                     "(`ulimit -f`)")
            fix = "Raise the limit (`ulimit -f unlimited` in the shell that starts slimkit)."
        else:
            cause = "file too large for its file system"
            fix = f"Use a file system that allows larger files: {instead}."
    elif code in (errno.EACCES, errno.EPERM):
        cause = "permission denied"
        fix = (f"Let this user write in {folder} (`chmod`/`chown` it, or run as its owner) or "
               f"{instead}.")
    elif code == errno.EROFS:
        cause = "the file system is read-only"
        fix = f"Remount it read-write or {instead}."
    else:
        text = getattr(error, "strerror", None) or (os.strerror(code) if code else None)
        cause = (text or " ".join(str(error).split()) or type(error).__name__)
        cause = cause[:1].lower() + cause[1:]
        fix = ""
    return " ".join(part for part in (f"Cannot {action} {path}: {cause}.", fix, what_to_do) if part)


def write_fault(error, path, what_to_do="", **kwargs):
    """The :class:`WriteFaultError` for ``error`` (see :func:`write_error_message`), or None.

    None means ``error`` is no file-system error (a bug, not the user's disk): re-raise it.
    """
    if isinstance(error, WriteFaultError):
        return error
    code = fault_errno(error)
    if code is None:
        return None
    return WriteFaultError(write_error_message(error, path, what_to_do, **kwargs), code, path)


def _raise_fault(error, path, what_to_do, **kwargs):
    fault = write_fault(error, path, what_to_do, **kwargs)
    if fault is None:
        raise error
    raise fault from None


@contextlib.contextmanager
def replaced_atomically(path, text, what_to_do="", **kwargs):
    """Context: ``text`` is written beside ``path`` first, and renamed onto it when the block ends.

    Writing first and renaming last lets a caller write something else in between that must
    agree with the file (``best.json`` and the best checkpoint): a full disk shows before
    anything was replaced. The temporary file (``.<name>.<random>.tmp``, in the same folder so the
    rename is atomic) is removed if the write or the block fails.

    Args:
        path: The file to replace (or create).
        text: Its new content (``bytes``: written as they are).
        what_to_do, **kwargs: For the message of a failed write (:func:`write_error_message`).

    Raises:
        WriteFaultError: If the temporary file cannot be written or renamed; ``path`` is then as
            it was.
    """
    path = os.fspath(path)
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        try:
            # Mode 0o666 less the umask, as open() gives: mkstemp's 0o600 would hide config.json
            # from the other workers of a multi-worker run.
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            binary = isinstance(text, bytes)
            with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())  # a full disk may show only here (delayed allocation, NFS)
        except OSError as e:
            _raise_fault(e, path, what_to_do, **kwargs)
        yield
        try:
            os.replace(tmp, path)
        except OSError as e:
            _raise_fault(e, path, what_to_do, **kwargs)
    finally:
        with contextlib.suppress(OSError):
            if os.path.lexists(tmp):
                os.remove(tmp)


def write_text_atomically(path, text, what_to_do="", **kwargs):
    """Replaces ``path`` by ``text`` whole or not at all (see :func:`replaced_atomically`).

    Raises:
        WriteFaultError: If it cannot be written; ``path`` is then as it was, and no temporary
            file is left.

    Example:
        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp(), "config.json")
        >>> write_text_atomically(path, '{"steps": 100}\\n')
        >>> path.read_text(), sorted(p.name for p in path.parent.iterdir())
        ('{"steps": 100}\\n', ['config.json'])
    """
    with replaced_atomically(path, text, what_to_do, **kwargs):
        pass


def write_bytes_atomically(path, data, what_to_do="", **kwargs):
    """:func:`write_text_atomically` for ``bytes``: written as they are.

    Example:
        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp(), "pixels.u8")
        >>> write_bytes_atomically(path, bytes([0, 255]))
        >>> path.read_bytes()
        b'\\x00\\xff'
    """
    with replaced_atomically(path, bytes(data), what_to_do, **kwargs):
        pass
