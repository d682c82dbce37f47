"""slimkit.writing: the cause of a failed write read from Python's and TensorFlow's errors, the one
line it becomes, and files replaced whole or not at all (on a really full file system)."""

import doctest
import errno
import os
import resource

import pytest
import tensorflow as tf

from fault_injection import PAGE, fill, tmpfs
from slimkit import writing
from slimkit.writing import WriteFaultError, fault_errno, write_error_message, write_fault

# TensorFlow's messages as they reach Python (the first from issue 11's traceback).
_TF_ERRORS = [
    (tf.errors.OutOfRangeError, "{{function_node __wrapped__SaveV2_dtypes_8_device_/job:localhost/"
     "replica:0/task:0/device:CPU:0}} /r/ckpt-100_temp/part-00000-of-00001.data-00000-of-00001."
     "tempstate2872424489095363975; File too large [Op:SaveV2]", errno.EFBIG),
    (tf.errors.ResourceExhaustedError, "{{function_node __wrapped__MergeV2Checkpoints_device_/job:"
     "localhost/replica:0/task:0/device:CPU:0}} /r/ckpt-2.index; No space left on device "
     "[Op:MergeV2Checkpoints]", errno.ENOSPC),
    (tf.errors.PermissionDeniedError, "Failed to create a directory: /r/ckpt-5_temp; Permission "
     "denied", errno.EACCES),
    (tf.errors.FailedPreconditionError, "/r/checkpoint.tmp0f3a; Read-only file system",
     errno.EROFS),
    (tf.errors.InvalidArgumentError, "Cannot assign a device for operation; no file involved", None),
]


def test_docstring_examples():
    result = doctest.testmod(writing)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("error_type, message, code", _TF_ERRORS)
def test_the_errno_is_read_from_tensorflows_message(error_type, message, code):
    assert fault_errno(error_type(None, None, message)) == code


def test_the_errno_of_python_errors():
    assert fault_errno(PermissionError(errno.EACCES, "Permission denied", "/r/x")) == errno.EACCES
    assert fault_errno(ValueError("No space left on device")) is None  # not a file-system error
    assert write_fault(ValueError("x"), "/r/x") is None
    assert write_fault(tf.errors.InvalidArgumentError(None, None, "bad shape"), "/r/x") is None


@pytest.mark.parametrize("code, line", [
    (errno.ENOSPC, "Cannot write /r/run/config.json: no space left on the device. Free space there "
                   "(`df -h /r/run` shows what is left) or train elsewhere. Then run it again."),
    (errno.EDQUOT, "Cannot write /r/run/config.json: the disk quota is exhausted. Free space "
                   "within the quota (`df -h /r/run` shows what is left) or train elsewhere. Then "
                   "run it again."),
    (errno.EACCES, "Cannot write /r/run/config.json: permission denied. Let this user write in "
                   "/r/run (`chmod`/`chown` it, or run as its owner) or train elsewhere. Then run "
                   "it again."),
    (errno.EROFS, "Cannot write /r/run/config.json: the file system is read-only. Remount it "
                  "read-write or train elsewhere. Then run it again."),
    (errno.ENOENT, "Cannot write /r/run/config.json: no such file or directory. Then run it again."),
])
def test_one_line_names_the_file_the_cause_and_the_fix(code, line):
    error = OSError(code, os.strerror(code))
    assert write_error_message(error, "/r/run/config.json", "Then run it again.",
                               instead="train elsewhere") == line
    fault = write_fault(error, "/r/run/config.json", "Then run it again.", instead="train elsewhere")
    assert isinstance(fault, OSError) and (str(fault), fault.errno) == (line, code)
    assert fault.filename == "/r/run/config.json"


def test_file_too_large_without_a_file_size_limit_is_the_file_systems():
    if resource.getrlimit(resource.RLIMIT_FSIZE)[0] != resource.RLIM_INFINITY:
        pytest.skip("this process runs under a file-size limit")
    error = tf.errors.OutOfRangeError(None, None, _TF_ERRORS[0][1])
    assert write_error_message(error, "/r/ckpt-100", action="write the checkpoint",
                               instead="use a --logdir elsewhere") == (
        "Cannot write the checkpoint /r/ckpt-100: file too large for its file system. Use a file "
        "system that allows larger files: use a --logdir elsewhere.")


def test_a_full_disk_leaves_the_old_file_and_no_temporary(tmp_path):
    with tmpfs(tmp_path / "disk", 16 * PAGE) as disk:
        path = disk / "config.json"
        writing.write_text_atomically(path, "old\n")
        assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())  # as open() makes it
        filler = fill(disk)
        with pytest.raises(WriteFaultError) as raised:
            writing.write_text_atomically(path, "new\n", "Nothing else changed.")
        assert str(raised.value) == (
            f"Cannot write {path}: no space left on the device. Free space there (`df -h {disk}` "
            "shows what is left) or write it elsewhere. Nothing else changed.")
        assert raised.value.errno == errno.ENOSPC
        assert path.read_text() == "old\n"
        assert sorted(p.name for p in disk.iterdir()) == ["config.json", filler.name]
        filler.unlink()
        writing.write_text_atomically(path, "new\n")
        assert path.read_text() == "new\n"


def test_bytes_are_written_as_they_are(tmp_path):
    path = tmp_path / "pixels.u8"
    writing.write_bytes_atomically(path, bytes(range(256)))
    assert path.read_bytes() == bytes(range(256))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pixels.u8"]


def test_replaced_atomically_renames_only_if_the_block_succeeds(tmp_path):
    path = tmp_path / "best.json"
    path.write_text("old\n")
    with pytest.raises(RuntimeError):
        with writing.replaced_atomically(path, "new\n"):
            assert path.read_text() == "old\n"  # written beside it, not yet renamed
            raise RuntimeError("the checkpoint it describes failed")
    assert path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["best.json"]
    with writing.replaced_atomically(path, "new\n"):
        pass
    assert path.read_text() == "new\n"


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_folder_is_where_the_fix_applies(tmp_path):
    """A writer of several files in a folder (TensorBoard's) names the folder."""
    error = OSError(errno.EACCES, "Permission denied")
    assert write_error_message(error, tmp_path / "train", "Training goes on without them.",
                               action="write TensorBoard summaries to") == (
        f"Cannot write TensorBoard summaries to {tmp_path}/train: permission denied. Let this user "
        f"write in {tmp_path} (`chmod`/`chown` it, or run as its owner) or write it elsewhere. "
        "Training goes on without them.")
    (tmp_path / "train").mkdir()
    assert f"Let this user write in {tmp_path}/train (" in write_error_message(
        error, tmp_path / "train", action="write TensorBoard summaries to")


def test_tensorboards_own_error_on_a_full_disk_is_read(tmp_path):
    """The summary writer's real error (FlushSummaryWriter, once its buffer cannot be written)."""
    with tmpfs(tmp_path / "disk", 16 * PAGE) as disk:
        writer = tf.summary.create_file_writer(str(disk / "train"))
        filler = fill(disk)
        with pytest.raises(tf.errors.OpError) as raised:
            for step in range(1000):
                with writer.as_default(step=step):
                    tf.summary.histogram("weights", tf.zeros([1000]))
                writer.flush()
        assert fault_errno(raised.value) == errno.ENOSPC
        assert write_error_message(raised.value, disk / "train", action="write summaries to") == (
            f"Cannot write summaries to {disk}/train: no space left on the device. Free space "
            f"there (`df -h {disk}/train` shows what is left) or write it elsewhere.")
        filler.unlink()
        writer.close()
