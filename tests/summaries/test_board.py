"""`slimkit board`: a real TensorBoard, its one-line errors, and a parent folder of several runs."""

import io
import socket
import subprocess
import sys

import pytest

from tensorboard_tools import serve

from slimkit.training.config import TrainConfig
from slimkit.training.loop import train


def _board(*args):
    return subprocess.run([sys.executable, "-m", "slimkit", "board", *args], capture_output=True,
                          text=True, timeout=120)


def test_a_port_in_use_is_one_line_that_suggests_another(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _board(str(tmp_path), "--port", str(port))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"slimkit board: error: Port {port} on 127.0.0.1 is already in use (another TensorBoard?). "
        f"Expected a free port: pass another one, e.g. --port {port + 1}, or stop the program that "
        "holds it.")
    assert "Traceback" not in done.stderr


def test_a_parent_folder_compares_its_runs(tmp_path, mnist_dir):
    for name, rate in (("lr_0.5", 0.5), ("lr_0.05", 0.05)):
        train(TrainConfig(model="softmax_regression", data_dir=str(mnist_dir),
                          logdir=str(tmp_path / name), learning_rate=rate, batch_size=100,
                          steps=100, save_summaries_steps=50), log_stream=io.StringIO())
    with serve(tmp_path) as board:
        runs = set(board.json("/data/plugin/scalars/tags"))
        assert {"lr_0.5/train", "lr_0.5/test", "lr_0.05/train", "lr_0.05/test"} <= runs
        groups = board.json("/data/plugin/hparams/session_groups", {
            "experimentName": "", "startIndex": 0, "sliceSize": 10, "colParams": [],
            "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE",
                                "STATUS_RUNNING"]})["sessionGroups"]
    rows = {g["name"]: g for g in groups}
    assert set(rows) == {"lr_0.5", "lr_0.05"}
    for name, rate in (("lr_0.5", 0.5), ("lr_0.05", 0.05)):
        assert rows[name]["hparams"]["learning_rate"] == pytest.approx(rate)
        metrics = {m["name"]["tag"] for m in rows[name]["metricValues"]}
        assert {"hparams/test_accuracy", "hparams/validation_accuracy",
                "hparams/train_loss"} <= metrics
