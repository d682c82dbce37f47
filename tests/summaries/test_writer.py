"""summaries/writer.py's histogram: TensorBoard's buckets and event, without its memory."""

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins.histogram import summary_v2

from slimkit.summaries.writer import SummaryWriter, histogram


@pytest.mark.parametrize("data", [
    np.random.default_rng(0).normal(size=(64, 5, 5, 3)).astype(np.float32),
    np.array([0.0, 1.0, 1.0, 2.0, 3.0]),        # values on the edges, the maximum in the last
    np.full((7, 3), 0.25, np.float32),          # one value
    np.zeros((0,), np.float32),                 # empty
    np.arange(100_000, dtype=np.float32) ** 2,  # float64 needed for the edges
])
def test_buckets_are_tensorboards(tmp_path, data):
    writer = tf.summary.create_file_writer(str(tmp_path))
    with writer.as_default(step=0):
        ours = histogram("h", data).numpy()
    np.testing.assert_allclose(ours, summary_v2._buckets(tf.constant(data)).numpy(), rtol=1e-12)
    assert ours.shape == (30, 3) and ours[:, 2].sum() == data.size


def test_non_finite_values_are_left_out(tmp_path):
    writer = tf.summary.create_file_writer(str(tmp_path))
    with writer.as_default(step=0):
        table = histogram("h", np.array([np.nan, 1.0, np.inf, 3.0, -np.inf])).numpy()
    assert table[:, 2].sum() == 2 and table[0, 0] == 1.0 and table[-1, 1] == 3.0


def test_written_as_the_histograms_plugin_reads_them(tmp_path):
    writer = SummaryWriter(tmp_path / "train")
    weights = tf.Variable(np.linspace(-1, 1, 3_000_000, dtype=np.float32))  # fc1's size
    writer.histograms(5, {"fc1/kernel": weights, "activations/relu": tf.nn.relu(weights)})
    writer.close()
    events = event_accumulator.EventAccumulator(
        str(tmp_path / "train"), size_guidance={event_accumulator.TENSORS: 0})
    events.Reload()
    assert set(events.Tags()["tensors"]) == {"fc1/kernel", "activations/relu"}
    (event,) = events.Tensors("fc1/kernel")
    assert event.step == 5
    table = tf.make_ndarray(event.tensor_proto)
    assert table.shape == (30, 3) and table[:, 2].sum() == 3_000_000
    assert table[0, 0] == -1.0 and table[-1, 1] == 1.0
    metadata = events.SummaryMetadata("fc1/kernel")
    assert metadata.plugin_data.plugin_name == "histograms"
