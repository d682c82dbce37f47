"""TensorBoard end to end: `slimkit train` runs, a real `slimkit board` server, headless Chromium.

Every kind of tag a run writes by default is checked through TensorBoard's own HTTP data
endpoints; the Scalars, Images, Histograms, Graphs, Text, HParams and Projector dashboards are
opened in Debian's Chromium and their slimkit tags must be listed and rendered (screenshots in
``test-artifacts/tensorboard/``). An AlexNet run on a generated image folder shows colour filters.
"""

import gzip
import io
import logging
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tensorboard_tools import (chromium, chromium_missing, page_text, query, screenshot, serve,
                               wait_until)

STEPS = 300


def _train(logdir, *flags):
    command = [sys.executable, "-m", "slimkit", "train", *flags, "--logdir", str(logdir)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory, mnist_dir):
    logdir = tmp_path_factory.mktemp("tb") / "deep_mnist"
    # Heavy summaries at the first summary point (step 100) and at the end only: the time-based
    # triggers are off, so a slow machine does not add points.
    _train(logdir, "deep_mnist", "--steps", str(STEPS), "--batch-size", "64", "--optimizer",
           "adam", "--learning-rate", "0.001", "--data-dir", str(mnist_dir),
           "--histogram-every-n-secs", "0", "--image-every-n-secs", "0")
    return logdir


@pytest.fixture(scope="module")
def board(mnist_run):
    with serve(mnist_run) as board:
        yield board


def _tags(board, plugin):
    return board.json(f"/data/plugin/{plugin}/tags")


def test_every_kind_of_tag_is_served(board, mnist_run):
    active = {name for name, info in board.json("/data/plugins_listing").items()
              if info.get("enabled")}
    assert {"scalars", "images", "histograms", "distributions", "graphs", "text",
            "hparams", "profile"} <= active

    scalars = _tags(board, "scalars")
    train = set(scalars["train"])
    assert {"loss", "total_loss", "regularization_loss", "accuracy", "learning_rate",
            "examples_per_sec", "keep_prob", "gradient_norm"} <= train
    for layer in ("conv1", "conv2", "fc1", "fc2"):
        for variable in ("kernel", "bias"):
            assert {f"{layer}/{variable}/{s}" for s in ("mean", "stddev", "min", "max")} <= train
    for split in ("validation", "test"):
        assert {"accuracy", "loss", "top5_accuracy"} <= set(scalars[split])
    # the evaluation curve: validation at the first summary point and at the end
    curve = board.json("/data/plugin/scalars/scalars?run=validation&tag=accuracy")
    assert [step for _, step, _ in curve] == [100, STEPS]

    histograms = set(_tags(board, "histograms")["train"])
    for layer in ("conv1", "conv2", "fc1", "fc2"):
        assert {f"{layer}/kernel", f"{layer}/bias", f"gradients/{layer}/kernel",
                f"gradients/{layer}/bias", f"activations/{layer}"} <= histograms
    assert {"activations/pool1", "activations/pool2", "activations/dropout"} <= histograms

    images = _tags(board, "images")
    assert {"input", "filters/conv1", "filters/conv2", "feature_maps/conv1", "feature_maps/pool1",
            "feature_maps/conv2", "feature_maps/pool2"} <= set(images["train"])
    for split in ("validation", "test"):
        assert {"confusion_matrix", "misclassified"} <= set(images[split])

    assert board.json("/data/plugin/graphs/info")["train"]["run_graph"] is True
    graph = board.get("/data/plugin/graphs/graph?run=train&conceptual=false").decode()
    for scope in ("conv1", "pool1", "conv2", "pool2", "fc1", "dropout", "fc2"):
        assert f'name: "deep_mnist/{scope}/' in graph  # the layers as name scopes
    assert "gradient_tape" in graph and 'name: "adam' in graph

    assert set(_tags(board, "text")["train"]) == {"config", "model"}
    experiment = board.json("/data/plugin/hparams/experiment", {"experimentName": ""})
    assert {"model", "learning_rate", "batch_size", "optimizer", "precision"} <= {
        h["name"] for h in experiment["hparamInfos"]}
    groups = board.json("/data/plugin/hparams/session_groups", {
        "experimentName": "", "startIndex": 0, "sliceSize": 10, "colParams": [],
        "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE",
                            "STATUS_RUNNING"]})["sessionGroups"]
    assert [g["name"] for g in groups] == ["deep_mnist"]
    assert groups[0]["hparams"]["model"] == "deep_mnist"
    found = {m["name"]["tag"]: m["value"] for m in groups[0]["metricValues"]}
    final = _scalar_value(board, "test", "accuracy")
    assert found["hparams/test_accuracy"] == pytest.approx(final)

    runs = board.json("/data/plugin/projector/runs")
    assert "test" in runs
    for run in runs:  # the embedding comes first in every run, whichever the Projector opens
        info = board.json(f"/data/plugin/projector/info?run={run}")
        first = info["embeddings"][0]
        assert first["tensorName"] == "fc1 (1,000 images)" and first["tensorShape"] == [1000, 1024]
        assert first["sprite"]["singleImageDim"] == [28, 28]
    metadata = board.get("/data/plugin/projector/metadata?run=test&name=fc1%20(1,000%20images)")
    assert metadata.decode().splitlines()[0] == "label\tpredicted\tcorrect"

    assert "train" in _profile_runs(board)
    traces = list((mnist_run / "train" / "plugins" / "profile").glob("*/*.xplane.pb"))
    assert len(traces) == 1  # one trace after warm-up by default


def _scalar_value(board, run, tag):
    return board.json(f"/data/plugin/scalars/scalars?run={run}&tag={tag}")[-1][2]


def _profile_runs(board):
    data = board.get("/data/plugin/profile/runs")
    if data[:2] == b"\x1f\x8b":  # the profile plugin answers gzip-compressed
        data = gzip.decompress(data)
    return data.decode()


def _image(board, run, tag):
    """(step, uint8 array) of the last image of ``tag`` in ``run``, as TensorBoard serves it."""
    entries = board.json(f"/data/plugin/images/images?run={run}&tag={tag}&sample=0")
    png = board.get("/data/plugin/images/individualImage?" + entries[-1]["query"])
    return entries[-1]["step"], np.asarray(Image.open(io.BytesIO(png)))


def test_served_pictures_are_the_picture_functions(board, mnist_run):
    from slimkit.models.registry import get_model
    from slimkit.summaries.images import filter_grid

    model = get_model("deep_mnist")
    tf.train.Checkpoint(model=model).restore(str(mnist_run / f"ckpt-{STEPS}")).expect_partial()
    for layer in ("conv1", "conv2"):
        step, served = _image(board, "train", f"filters/{layer}")
        assert step == STEPS
        np.testing.assert_array_equal(served, filter_grid(model.get_layer(layer).kernel.numpy())[..., 0])
    _, served = _image(board, "train", "filters/conv2")
    assert served.shape == (32 * 26 + 1, 64 * 26 + 1)  # 32 input channels x 64 filters, 25 px
    _, gallery = _image(board, "test", "misclassified")
    assert gallery.ndim == 3 and gallery.shape[2] == 3


@pytest.mark.skipif(chromium_missing() is not None, reason=str(chromium_missing()))
def test_dashboards_render_in_chromium(board):
    with chromium() as browser:
        def open_dashboard(name, wanted, tag_filter=None):
            browser.get("about:blank")
            browser.get(board.url + "#" + name)
            if tag_filter:  # TensorBoard opens the first categories only: show these
                box = wait_until(lambda: [i for i in query(browser, "tf-tag-filterer", "input")
                                          if i.is_displayed()], what=f"{name}'s tag filter")
                box[0].send_keys(tag_filter)
            return wait_until(lambda: _all_in(page_text(browser), wanted),
                              what=f"{name}: {wanted}")

        scalars = ["conv1/kernel/mean", "fc1/bias/stddev", "gradient_norm", "keep_prob",
                   "regularization_loss", "total_loss", "examples_per_sec", "top5_accuracy"]
        open_dashboard("scalars", scalars, "|".join(scalars))
        wait_until(lambda: len(query(browser, "vz-line-chart2", "svg path")) > 20,
                   what="scalar charts drawn")
        screenshot(browser, "scalars")

        images = ["filters/conv1", "filters/conv2", "feature_maps/pool2", "input",
                  "confusion_matrix", "misclassified"]
        open_dashboard("images", images, "|".join(images))
        wait_until(lambda: _loaded_images(browser) >= 8, what="images loaded")
        screenshot(browser, "images")

        histograms = ["activations/conv1", "gradients/fc1/kernel", "conv2/kernel"]
        open_dashboard("histograms", histograms, "|".join(histograms))
        wait_until(lambda: len(query(browser, "vz-histogram-timeseries", "svg path")) > 10,
                   what="histograms drawn")
        screenshot(browser, "histograms")

        open_dashboard("graphs", ["Main Graph", "deep_mnist", "adam", "gradient_tape"])
        wait_until(lambda: len(query(browser, "tf-graph", "g.node")) > 10, what="graph nodes drawn")
        screenshot(browser, "graphs")

        open_dashboard("text", ["conv1", "parameters", "learning_rate"])
        screenshot(browser, "text")

        open_dashboard("hparams", ["learning_rate", "deep_mnist"])
        screenshot(browser, "hparams")

        browser.get("about:blank")
        browser.get(board.url + "#projector")
        # the Projector is a page in a page: TensorBoard's plugin frame holds its own frame
        wait_until(lambda: query(browser, "iframe"), what="the projector's frame")
        browser.switch_to.frame(query(browser, "iframe")[0])
        wait_until(lambda: query(browser, "iframe"), what="the projector's inner frame")
        browser.switch_to.frame(query(browser, "iframe")[0])
        wait_until(lambda: _points(page_text(browser)) == "1000" and
                   "fc1 (1,000 images)" in page_text(browser),
                   what="the projector's 1,000 points of fc1")
        wait_until(lambda: query(browser, "canvas"), what="the projector's canvas")
        browser.switch_to.default_content()
        screenshot(browser, "projector")


def _points(text):
    """The number the Projector shows after "Points:" (None before it does)."""
    after = text.split("Points:", 1)[1:] or [""]
    words = after[0].split()
    return words[0] if words else None


def _all_in(text, wanted):
    return text if all(w in text for w in wanted) else None


def _loaded_images(browser):
    return sum(1 for img in query(browser, "tf-image-loader", "img")
               if browser.execute_script("return arguments[0].complete && "
                                         "arguments[0].naturalWidth > 0", img))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for label, name in enumerate(["daisy", "rose", "tulip"]):
        (root / name).mkdir()
        for i in range(10):
            image = rng.integers(0, 80, (72, 80, 3), dtype=np.uint8)
            image[..., label] += 120
            Image.fromarray(image).save(root / name / f"{i}.jpg")
    return root


def test_alexnet_on_an_image_folder_shows_colour_filters(tmp_path, folder):
    logdir = tmp_path / "alexnet"
    _train(logdir, "alexnet", "--dataset", "folder", "--data-dir", str(folder), "--image-size",
           "64", "--batch-size", "8", "--steps", "6", "--steps-per-call", "2",
           "--save-summaries-steps", "2", "--optimizer", "momentum", "--learning-rate", "0.001")
    with serve(logdir) as board:
        images = _tags(board, "images")
        conv = {f"filters/conv{i}" for i in range(1, 6)}
        assert conv <= set(images["train"])
        assert {"feature_maps/conv1", "feature_maps/lrn1", "feature_maps/pool5"} <= set(
            images["train"])
        assert "confusion_matrix" in images["validation"]
        _, conv1 = _image(board, "train", "filters/conv1")
        assert conv1.shape == (10 * 34 + 1, 10 * 34 + 1, 3)  # 96 colour tiles, 11 px x 3
        _, conv2 = _image(board, "train", "filters/conv2")
        assert conv2.ndim == 2 and conv2.shape[0] == 96 * 6 + 1  # a row per input channel
        scalars = _tags(board, "scalars")
        assert {"accuracy", "loss"} <= set(scalars["validation"])
        assert "top5_accuracy" not in scalars["validation"]  # 3 classes: no top-5
        if chromium_missing() is None:
            with chromium() as browser:
                browser.get(board.url + "#images")
                box = wait_until(lambda: [i for i in query(browser, "tf-tag-filterer", "input")
                                          if i.is_displayed()], what="the tag filter")
                box[0].send_keys("filters/")
                wait_until(lambda: _all_in(page_text(browser), ["filters/conv1", "filters/conv5"]),
                           what="AlexNet's filters listed")
                wait_until(lambda: _loaded_images(browser) >= 4, what="images loaded")
                screenshot(browser, "alexnet_images")


def test_summary_levels(tmp_path, mnist_dir):
    from slimkit.training.config import TrainConfig
    from slimkit.training.loop import train

    def run(level):
        logdir = tmp_path / level
        train(TrainConfig(model="softmax_regression", data_dir=str(mnist_dir), logdir=str(logdir),
                          learning_rate=0.5, batch_size=100, steps=100, summaries=level,
                          save_summaries_steps=50), log_stream=io.StringIO())
        return logdir

    none = run("none")
    assert not [n for _, _, names in os.walk(none) for n in names if "tfevents" in n]
    scalars = run("scalars")
    plugins = _plugins(scalars / "train")
    assert plugins == {"scalars"}
    assert _plugins(scalars / "validation") == {"scalars"}
    default = run("default")
    assert {"scalars", "histograms", "images", "text"} <= _plugins(default / "train")
    # softmax regression's weights as ten heat maps, and no conv filters to show
    tags = _tags_of(default / "train")
    assert "weights/logits" in tags and not [t for t in tags if t.startswith("filters/")]


def _plugins(folder):
    return {v.metadata.plugin_data.plugin_name for f in os.listdir(folder) if "tfevents" in f
            for e in tf.compat.v1.train.summary_iterator(str(folder / f)) for v in e.summary.value}


def _tags_of(folder):
    return {v.tag for f in os.listdir(folder) if "tfevents" in f
            for e in tf.compat.v1.train.summary_iterator(str(folder / f)) for v in e.summary.value}


def test_summaries_that_cannot_be_written_warn_and_training_finishes(tmp_path, mnist_dir, caplog):
    from slimkit.training.config import TrainConfig
    from slimkit.training.loop import train

    logdir = tmp_path / "run"
    logdir.mkdir()
    for run in ("train", "validation", "test"):
        (logdir / run).write_text("a file where the run folder belongs\n")  # fails as a full disk
    with caplog.at_level(logging.WARNING, logger="slimkit.summaries"):
        metrics = train(TrainConfig(model="softmax_regression", data_dir=str(mnist_dir),
                                    logdir=str(logdir), learning_rate=0.5, batch_size=100,
                                    steps=200, save_summaries_steps=50), log_stream=io.StringIO())
    assert metrics["global_step"] == 200 and metrics["test_accuracy"] > 0.85
    assert (logdir / "ckpt-200.index").is_file()
    warnings = [r.getMessage() for r in caplog.records if r.name == "slimkit.summaries"]
    for run in ("train", "validation", "test"):
        about = [w for w in warnings if f"to {logdir / run}: not a directory." in w]
        assert len(about) == 1, warnings  # once per folder and cause, not at every step
        assert about[0].startswith("Cannot write TensorBoard ")
    assert all(w.endswith("training goes on") or w.endswith("Training goes on without them.")
               for w in warnings), warnings


def test_a_full_disk_under_the_summaries_warns_and_training_finishes(tmp_path, mnist_dir, caplog):
    """ENOSPC from a really full file system (a small tmpfs as the run folder ``train/``)."""
    from fault_injection import PAGE, fill, tmpfs

    from slimkit.training.config import TrainConfig
    from slimkit.training.loop import train

    logdir = tmp_path / "run"
    with tmpfs(logdir / "train", 64 * PAGE) as folder:
        fill(folder, leave=8 * PAGE)  # room for the first events, not for the run's pictures
        with caplog.at_level(logging.WARNING, logger="slimkit.summaries"):
            metrics = train(TrainConfig(model="softmax_regression", data_dir=str(mnist_dir),
                                        logdir=str(logdir), learning_rate=0.5, batch_size=100,
                                        steps=200, save_summaries_steps=20),
                            log_stream=io.StringIO())
        assert metrics["global_step"] == 200 and (logdir / "ckpt-200.index").is_file()
        full = [r.getMessage() for r in caplog.records if f"{folder}:" in r.getMessage()]
        assert len(full) == 1, full  # one warning, however many summaries followed
        assert "no space left on the device. Free space there" in full[0]
        assert full[0].endswith("Training goes on without them.")
        assert _tags_of(logdir / "test") >= {"accuracy", "loss"}  # other runs unaffected
