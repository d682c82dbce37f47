"""Dropout under tf.distribute: every replica draws its own mask, deterministically.

Keras 3's Dropout draws its seed from one SeedGenerator state that all replicas of a
MirroredStrategy share, so without slimkit's fix example i and example i + B/2 of a global batch
get the same mask. MirroredStrategy over two logical CPUs runs in a subprocess: logical devices
must be configured before TensorFlow initializes, which has happened long before in pytest.
"""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import slimkit as slim

TIMEOUT = 90  # seconds

_TWO_REPLICAS = """
    import json
    import keras
    import numpy as np
    import tensorflow as tf
    import slimkit as slim
    from slimkit.training.checkpoints import seed_states
    from slimkit.training.distribute import configure_logical_cpus, make_strategy

    configure_logical_cpus(2)
    strategy = make_strategy("mirrored")
    with strategy.scope():
        x = keras.Input((1000,))
        model = keras.Model(x, [slim.dropout(x, 0.7, seed=1, scope="follows_training"),
                                slim.dropout(x, 0.7, is_training=True, seed=2, scope="fixed")])
    states = seed_states(model)

    @tf.function
    def masks():
        ones = tf.ones((4, 1000))  # each replica's share of a global batch of 8
        return strategy.run(lambda: model(ones, training=True))

    def run():  # -> [layer][replica] output arrays
        outputs = masks()
        return [[t.numpy() for t in strategy.experimental_local_results(o)] for o in outputs]

    start = [s.numpy() for s in states]
    first = run()
    for state, value in zip(states, start):
        state.assign(value)
    again, following = run(), run()
    layers = []
    for i in range(2):
        a, b = first[i]
        layers.append({
            "replicas_equal": bool(np.array_equal(a != 0, b != 0)),
            "replicas_agreement": float(((a != 0) == (b != 0)).mean()),
            "repeatable": all(np.array_equal(x, y) for x, y in zip(first[i], again[i])),
            "advances": not np.array_equal(first[i][0], following[i][0]),
            "kept": [float((r != 0).mean()) for r in first[i]],
            "values": sorted({round(float(v), 5) for r in first[i] for v in np.unique(r)}),
        })
    print(json.dumps({"replicas": strategy.num_replicas_in_sync, "layers": layers}))
"""


def test_replicas_draw_different_deterministic_masks_at_the_right_rate():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    try:
        done = subprocess.run([sys.executable, "-c", textwrap.dedent(_TWO_REPLICAS)], env=env,
                              capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"subprocess timed out after {TIMEOUT} s:\n{e.stderr}")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    for name, layer in zip(["is_training=None", "is_training=True"], result["layers"]):
        assert not layer["replicas_equal"], name
        # Independent masks with keep_prob 0.7 agree on 0.7^2 + 0.3^2 = 58% of 4,000 elements.
        assert abs(layer["replicas_agreement"] - 0.58) < 0.04, (name, layer)
        assert layer["repeatable"], name          # same seed state -> same masks on every replica
        assert layer["advances"], name            # the next call draws a new mask
        for kept in layer["kept"]:                # 4,000 draws: 3 sigma is 0.022
            assert abs(kept - 0.7) < 0.03, (name, layer["kept"])
        assert layer["values"] == [0.0, round(1 / 0.7, 5)], name


def test_single_device_masks_are_keras_own():
    """One device: the same masks as keras.layers.Dropout with the same seed (checkpoints made
    before the distributed fix resume to the same training)."""
    x = np.ones((64, 100), np.float32)
    ours = slim.dropout(keras.Input((100,)), 0.6, seed=7)._keras_history.operation
    theirs = keras.layers.Dropout(0.4, seed=7)
    for _ in range(2):  # the seed state advances identically too
        np.testing.assert_array_equal(ours(x, training=True), theirs(x, training=True))
    fixed = slim.dropout(keras.Input((100,)), 0.6, seed=7, is_training=True)._keras_history.operation
    theirs = keras.layers.Dropout(0.4, seed=7)
    np.testing.assert_array_equal(fixed(x), theirs(x, training=True))
