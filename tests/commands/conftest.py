"""Trained runs that the tests of eval, predict, inspect and export share (each trained once).

- ``softmax_run``: the tutorial's softmax regression (SGD 0.5, batch 100), 300 steps, checkpoints
  at 100, 200 and 300;
- ``deep_run``: the Deep MNIST CNN with EMA weights (Adam 1e-3, batch 50), 200 steps, checkpoints
  at 100 and 200;
- ``alexnet_run``: AlexNet on a small generated image folder (3 classes of coloured shapes,
  64x64 input), 4 steps: enough to have a checkpoint, not to learn.

Each is ``(logdir, metrics that training returned)``; the tests must not write into the logdirs
(copy one with ``shutil.copytree`` to damage or change it).
"""

import io

import numpy as np
import pytest

from slimkit.training.config import TrainConfig
from slimkit.training.loop import train


def _train(logdir, **settings):
    config = TrainConfig(logdir=str(logdir), precision="fp32", **settings)
    return logdir, train(config, log_stream=io.StringIO())


@pytest.fixture(scope="session")
def softmax_run(tmp_path_factory, mnist_dir):
    return _train(tmp_path_factory.mktemp("softmax"), model="softmax_regression",
                  data_dir=str(mnist_dir), optimizer="sgd", learning_rate=0.5, batch_size=100,
                  steps=300, save_every_n_steps=100)


@pytest.fixture(scope="session")
def deep_run(tmp_path_factory, mnist_dir):
    return _train(tmp_path_factory.mktemp("deep"), model="deep_mnist", data_dir=str(mnist_dir),
                  optimizer="adam", learning_rate=1e-3, batch_size=50, steps=200,
                  save_every_n_steps=100, ema_decay=0.99)


@pytest.fixture(scope="session")
def shapes_folder(tmp_path_factory):
    """3 classes x 8 images: a red disc, a green bar, a blue cross on noisy grey, 80x72 PNGs."""
    from PIL import Image, ImageDraw

    root = tmp_path_factory.mktemp("shapes")
    rng = np.random.default_rng(0)
    for name in ("bar", "cross", "disc"):
        (root / name).mkdir()
        for i in range(8):
            image = Image.fromarray(rng.integers(90, 140, (72, 80, 3), dtype=np.uint8))
            draw = ImageDraw.Draw(image)
            x, y = rng.integers(20, 50), rng.integers(20, 40)
            if name == "disc":
                draw.ellipse([x - 15, y - 15, x + 15, y + 15], fill=(220, 30, 30))
            elif name == "bar":
                draw.rectangle([x - 20, y - 5, x + 20, y + 5], fill=(30, 200, 40))
            else:
                draw.line([x - 15, y - 15, x + 15, y + 15], fill=(30, 40, 220), width=6)
                draw.line([x - 15, y + 15, x + 15, y - 15], fill=(30, 40, 220), width=6)
            image.save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="session")
def alexnet_run(tmp_path_factory, shapes_folder):
    return _train(tmp_path_factory.mktemp("alexnet"), model="alexnet", dataset="folder",
                  data_dir=str(shapes_folder), image_size=64, batch_size=4, steps=4,
                  optimizer="sgd", learning_rate=1e-3, keep=1)

