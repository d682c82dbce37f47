"""How ``predict``, ``inspect`` and ``export`` write their files: atomically, and a fault is one line.

    >>> write_output("pics/filters_conv1.png", lambda tmp: tmp.write_bytes(png), "--png folder")
    'pics/filters_conv1.png'

Every file or folder these commands produce goes through :func:`write_output` (each command
through one small function of its own that calls it), so that write faults are handled in one
place: the output is written under a temporary name beside its destination and renamed into
place only once complete, so a full disk never leaves half a PNG or half a SavedModel under the
real name; and the fault is one ``OSError`` naming the path, the cause and the fix, which the CLI
prints as one line with exit code 2: no space, a file-size limit, permission denied or a read-only
file system in :mod:`slimkit.writing`'s words (as for checkpoints), a file where a folder belongs
in its own.
"""

import os
import pathlib
import shutil

from slimkit.writing import write_fault


def write_output(path, write, option, errors=(OSError,)):
    """Writes ``path`` (a file or a folder) by ``write(temporary path)``, then renames it into place.

    Args:
        path: The destination; an existing one is replaced once the new one is complete.
        write: ``write(tmp)`` writes the whole output at the ``pathlib.Path`` ``tmp``.
        option: The option that named the destination, for the fix (e.g. ``"--png folder"``).
        errors: The exception types that mean a write fault (e.g. TensorFlow's ``OpError`` for
            a SavedModel as well as ``OSError``).

    Returns:
        ``path`` as a string.

    Raises:
        OSError: One line: ``Cannot write <path>: <cause>. Expected ...``.
    """
    path = pathlib.Path(path)
    # (the suffix stays last: Keras insists that a .keras file's name ends in .keras)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove(tmp)
        write(tmp)
        if path.is_dir() and not path.is_symlink():
            old = path.with_name(f".{path.name}.old{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            _remove(old)
        else:
            os.replace(tmp, path)
    except errors as e:
        _remove(tmp)
        fault = None if isinstance(e, (FileExistsError, NotADirectoryError)) else write_fault(
            e, path, f"Nothing was written to {path}.", instead=f"choose another {option}")
        if fault is not None:  # no space, file too large, permission, read-only: slimkit.writing
            raise fault from None
        if isinstance(e, FileExistsError):  # mkdir: a file stands where a folder must go
            cause = f"{e.filename or path.parent} is a file, not a folder"
        else:
            cause = getattr(e, "strerror", None) or getattr(e, "message", None) or str(e)
            cause = " ".join(str(cause).split())
        raise OSError(f"Cannot write {path}: {cause}. Expected a folder this user can write to, "
                      f"with room for the output: free space, or choose another "
                      f"{option}.") from None
    return os.fspath(path)


def _remove(path):
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
    except OSError:
        pass  # a leftover temporary: harmless, and it must not hide the real error
