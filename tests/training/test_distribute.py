"""Strategies by name, TF_CONFIG checks, chief logic, and the global-batch split.

MirroredStrategy over two logical CPUs runs in a subprocess: logical devices must be configured
before TensorFlow initializes, which has happened long before in the pytest process.
"""

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import types

import numpy as np
import pytest
import tensorflow as tf

from slimkit.training import distribute
from slimkit.training.distribute import (any_worker, configure_logical_cpus, distribute_batch,
                                         is_chief, make_strategy, num_workers, parse_tf_config,
                                         same_on_all_workers, worker_logdir)

TIMEOUT = 90  # seconds; a subprocess that hangs (e.g. in a collective op) fails the test


def run_python(code, env=None, timeout=TIMEOUT):
    """Runs `code` in a fresh interpreter; returns its last stdout line parsed as JSON."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    try:
        out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=full_env,
                             capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:  # subprocess.run kills the child before raising
        pytest.fail(f"subprocess timed out after {timeout} s:\n{e.stderr}")
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_unknown_strategy_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"Unknown distribution strategy 'mirror'\. Expected one of: "
                       r"auto, one-device, mirrored, multi-worker\."):
        make_strategy("mirror")


def test_multi_worker_without_tf_config_explains_the_expected_json(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match=r"--strategy multi-worker needs the TF_CONFIG environment "
                       r'variable, which is not set\. Expected TF_CONFIG to hold JSON like \{"cluster": '
                       r'\{"worker": \["host1:12345", "host2:12345"\]\}, "task": \{"type": "worker", '
                       r'"index": 0\}\}'):
        make_strategy("multi-worker")


@pytest.mark.parametrize("value, problem", [
    ("not json", r"TF_CONFIG is not valid JSON"),
    ("[1, 2]", r"Invalid TF_CONFIG: it has no `cluster` object"),
    ('{"cluster": {"worker": "h:1"}, "task": {"type": "worker", "index": 0}}',
     r'every job in `cluster` must be a list of "host:port" strings'),
    ('{"cluster": {"worker": ["h1"]}, "task": {"type": "worker", "index": 0}}',
     r'every job in `cluster` must be a list of "host:port" strings'),
    ('{"cluster": {"ps": ["h:1"]}, "task": {"type": "ps", "index": 0}}',
     r"`cluster` has no `worker` \(or `chief`\) job"),
    ('{"cluster": {"worker": ["h:1", "h:2"]}}', r"it has no `task` object with `type` and `index`"),
    ('{"cluster": {"worker": ["h:1"]}, "task": {"type": "chief", "index": 0}}',
     r"task type 'chief' is not a job in `cluster` \(worker\)"),
    ('{"cluster": {"worker": ["h:1", "h:2"]}, "task": {"type": "worker", "index": 2}}',
     r"task index 2 is not an index into the 2 'worker' address\(es\)"),
])
def test_malformed_tf_config_is_a_clear_error(monkeypatch, value, problem):
    monkeypatch.setenv("TF_CONFIG", value)
    with pytest.raises(ValueError, match=problem + r".*Expected TF_CONFIG to hold JSON like .*"
                       r"Received TF_CONFIG="):
        make_strategy("multi-worker")
    # `auto` also refuses a TF_CONFIG it cannot read rather than silently training alone.
    with pytest.raises(ValueError, match=problem):
        make_strategy("auto")


def test_valid_tf_config_is_parsed(monkeypatch):
    config = {"cluster": {"chief": ["a:1"], "worker": ["b:2", "c:3"]}, "task": {"type": "worker", "index": 1}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    assert parse_tf_config() == config
    monkeypatch.delenv("TF_CONFIG")
    assert parse_tf_config(required=False) is None


@pytest.mark.skipif(len(tf.config.list_physical_devices("GPU")) > 1, reason="auto picks mirrored")
def test_auto_is_one_device_without_cluster_or_gpus(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert isinstance(make_strategy("auto"), tf.distribute.OneDeviceStrategy)
    # A one-task cluster is not worth the collective-ops machinery either.
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["localhost:1"]}, '
                       '"task": {"type": "worker", "index": 0}}')
    assert isinstance(make_strategy("auto"), tf.distribute.OneDeviceStrategy)


def fake_multi_worker(cluster, task_type, task_id):
    """A stand-in with the one attribute is_chief/worker_logdir read from a real MWMS."""
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(cluster), task_type=task_type, task_id=task_id)
    return types.SimpleNamespace(cluster_resolver=resolver)


@pytest.mark.parametrize("cluster, task_type, task_id, chief", [
    ({"worker": ["a:1", "b:1"]}, "worker", 0, True),
    ({"worker": ["a:1", "b:1"]}, "worker", 1, False),
    ({"chief": ["c:1"], "worker": ["a:1", "b:1"]}, "chief", 0, True),
    ({"chief": ["c:1"], "worker": ["a:1", "b:1"]}, "worker", 0, False),
])
def test_is_chief_follows_tensorflow_convention(cluster, task_type, task_id, chief):
    assert is_chief(fake_multi_worker(cluster, task_type, task_id)) is chief


def test_single_machine_strategies_are_chief_and_write_the_logdir(tmp_path):
    strategy = make_strategy("one-device")
    assert is_chief(strategy)
    assert worker_logdir(str(tmp_path), strategy) == str(tmp_path)


def test_single_machine_is_one_worker_whose_flags_need_no_agreement():
    strategy = make_strategy("one-device")
    assert num_workers(strategy) == 1
    assert any_worker(strategy, 1, None, "SIGTERM", 0) == (True, False, True, False)
    assert same_on_all_workers(strategy, "anything")


def test_num_workers_counts_chief_and_workers():
    assert num_workers(fake_multi_worker({"chief": ["c:1"], "worker": ["a:1", "b:1"]}, "worker", 1)) == 3


def test_non_chief_worker_writes_to_a_private_temporary_dir(tmp_path):
    worker = fake_multi_worker({"worker": ["a:1", "b:1"]}, "worker", 1)
    path = worker_logdir(str(tmp_path), worker)
    try:
        assert os.path.isdir(path)
        assert not path.startswith(str(tmp_path))
        assert "worker1" in os.path.basename(path)
        assert worker_logdir(str(tmp_path), worker) == path  # stable within the process
    finally:
        os.rmdir(path)


def test_stale_scratch_dirs_of_dead_workers_are_removed_live_ones_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs (a worker killed with SIGKILL leaves such a dir)
    stale = tmp_path / f"slimkit-worker1-{dead.pid}"
    (stale / "ckpt").mkdir(parents=True)
    live = tmp_path / f"slimkit-worker1-{os.getppid()}"  # our parent process is alive
    other_task = tmp_path / f"slimkit-worker2-{dead.pid}"
    for d in (live, other_task):
        d.mkdir()
    path = worker_logdir(str(tmp_path / "run"), fake_multi_worker({"worker": ["a:1", "b:1", "c:1"]},
                                                                  "worker", 1))
    assert path == str(tmp_path / f"slimkit-worker1-{os.getpid()}") and os.path.isdir(path)
    assert not stale.exists() and live.is_dir() and other_task.is_dir()


def test_distribute_batch_one_device_passes_the_batch_through():
    strategy = make_strategy("one-device")
    images = np.random.default_rng(0).random((3, 4, 28, 28, 1), dtype=np.float32)
    labels = np.arange(12, dtype=np.int32).reshape(3, 4)
    got_images, got_labels = distribute_batch(strategy, images, labels)
    np.testing.assert_array_equal(got_images.numpy(), images)
    np.testing.assert_array_equal(got_labels.numpy(), labels)


def test_distribute_batch_checks_shapes():
    with pytest.raises(ValueError, match=r"expects `images` of shape \(k, B, \.\.\.\) and `labels` of "
                       r"shape \(k, B, \.\.\.\) with the same k and B\. Received images\.shape=\(2, 4, 3\), "
                       r"labels\.shape=\(2, 5\)\."):
        distribute_batch(make_strategy("one-device"), np.zeros((2, 4, 3)), np.zeros((2, 5)))


def test_configure_logical_cpus_rejects_bad_counts():
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match=r"Invalid value for argument `n` of configure_logical_cpus\. "
                           r"Expected a strictly positive integer"):
            configure_logical_cpus(bad)


def test_configure_logical_cpus_after_initialization_says_when_to_call_it():
    tf.constant(1.0)  # TensorFlow's devices are initialized now
    n = len(tf.config.list_logical_devices("CPU")) + 1
    with pytest.raises(RuntimeError, match=rf"Cannot split the CPU into {n} logical devices: "
                       r"TensorFlow has already initialized its devices.*before creating any tensor"):
        configure_logical_cpus(n)


def test_mirrored_on_two_logical_cpus_splits_the_global_batch():
    result = run_python("""
        import json
        import numpy as np
        from slimkit.training.distribute import distribute_batch, make_strategy
        strategy = make_strategy("mirrored")  # SLIMKIT_LOGICAL_CPUS=2 in the environment
        images = np.arange(2 * 6 * 2, dtype=np.float32).reshape(2, 6, 2, 1, 1)  # (k=2, B=6, ...)
        labels = np.arange(12, dtype=np.int32).reshape(2, 6)
        per_images, per_labels = distribute_batch(strategy, images, labels)
        local = strategy.experimental_local_results
        try:
            distribute_batch(strategy, images[:, :5], labels[:, :5])
            error = None
        except ValueError as e:
            error = str(e)
        print(json.dumps({"replicas": strategy.num_replicas_in_sync,
                          "labels": [t.numpy().tolist() for t in local(per_labels)],
                          "image_shapes": [t.shape.as_list() for t in local(per_images)],
                          "devices": [t.device for t in local(per_images)],
                          "error": error}))
    """, env={"SLIMKIT_LOGICAL_CPUS": "2"})
    assert result["replicas"] == 2
    assert result["labels"] == [[[0, 1, 2], [6, 7, 8]], [[3, 4, 5], [9, 10, 11]]]
    assert result["image_shapes"] == [[2, 3, 2, 1, 1]] * 2
    assert [d.rsplit(":", 2)[-2:] for d in result["devices"]] == [["CPU", "0"], ["CPU", "1"]]
    assert result["error"] == ("Invalid global batch size 5 for 2 replicas: it must be divisible by the "
                               "number of replicas so each gets the same share. Use a batch size that "
                               "is a multiple of 2, e.g. --batch-size 4.")


# Trains the same small CNN from the same initial weights on the same global batches, once with
# one device and once mirrored over two logical CPUs; prints the largest weight difference.
_MIRRORED_VS_ONE = """
    import json
    import numpy as np
    import keras
    import tensorflow as tf
    from slimkit.training.distribute import configure_logical_cpus, distribute_batch, make_strategy

    configure_logical_cpus(2)

    def build():
        keras.utils.set_random_seed(0)
        return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                                 keras.layers.Flatten(), keras.layers.Dense(3)])

    def train(strategy, batches):
        with strategy.scope():
            model, optimizer = build(), keras.optimizers.SGD(0.5)

        @tf.function
        def multi_step(images, labels):  # (k, B/R, 8, 8, 1), (k, B/R)
            for i in range(images.shape[0]):
                with tf.GradientTape() as tape:
                    per_example = keras.losses.sparse_categorical_crossentropy(
                        labels[i], model(images[i]), from_logits=True)
                    # Mean over the replica's share, divided by the replica count: the replicas'
                    # gradients then sum to the gradient of the mean over the global batch.
                    loss = tf.reduce_mean(per_example) / strategy.num_replicas_in_sync
                grads = tape.gradient(loss, model.trainable_variables)
                optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return loss

        for images, labels in batches:
            strategy.run(multi_step, args=distribute_batch(strategy, images, labels))
        return [w.numpy() for w in model.weights]

    rng = np.random.default_rng(0)
    batches = [(rng.random((5, 16, 8, 8, 1), dtype=np.float32), rng.integers(0, 3, (5, 16)).astype(np.int32))
               for _ in range(2)]  # 2 calls x 5 steps, global batch 16
    one = train(make_strategy("one-device"), batches)
    mirrored_strategy = make_strategy("mirrored")
    mirrored = train(mirrored_strategy, batches)
    initial = [w.numpy() for w in build().weights]
    print(json.dumps({"replicas": mirrored_strategy.num_replicas_in_sync,
                      "max_diff": max(float(np.abs(a - b).max()) for a, b in zip(one, mirrored)),
                      "moved": min(float(np.abs(a - b).max()) for a, b in zip(one, initial))}))
"""


def test_mirrored_over_two_logical_cpus_matches_one_device():
    """Same global batch, same start: the weights after 10 SGD steps agree to float32 round-off.

    Tolerance 1e-5 absolute: the only difference is the order in which the two halves' gradients
    are summed (all-reduce vs. one reduction), a few ulps per step on weights of order 0.1-1.
    """
    result = run_python(_MIRRORED_VS_ONE)
    assert result["replicas"] == 2
    assert result["moved"] > 1e-3  # the training really changed every weight tensor
    assert result["max_diff"] < 1e-5


# ------------------------------------------------------------------ through `slimkit train`
def slimkit_train(logdir, strategy, *extra):
    """Runs `slimkit train` (MNIST softmax, 30 steps) in a fresh process with 2 logical CPUs."""
    command = [sys.executable, "-m", "slimkit", "train", "softmax_regression", "--steps", "30",
               "--batch-size", "100", "--learning-rate", "0.5", "--precision", "fp32", "--seed", "0",
               "--logdir", str(logdir), "--strategy", strategy, "--json", *extra]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "SLIMKIT_LOGICAL_CPUS": "2"}
    env.pop("TF_CONFIG", None)
    try:
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"slimkit train timed out after {TIMEOUT} s:\n{e.stderr}")


def test_slimkit_train_mirrored_matches_one_device(tmp_path, mnist_dir):
    """30 steps on real MNIST, global batch 100: mirrored over two logical CPUs (2 x 50) ends with
    the weights of one device (100), to 1e-5 (float32 summation order; measured ~6e-8)."""
    runs = {}
    for strategy in ("one-device", "mirrored"):
        done = slimkit_train(tmp_path / strategy, strategy)
        assert done.returncode == 0, done.stderr[-3000:]
        runs[strategy] = json.loads(done.stdout.strip().splitlines()[-1])
        replicas = 2 if strategy == "mirrored" else 1
        assert f"{replicas} replica(s)" in done.stderr
    one, mirrored = runs["one-device"], runs["mirrored"]
    assert one["global_step"] == mirrored["global_step"] == 30
    assert abs(one["test_accuracy"] - mirrored["test_accuracy"]) <= 2e-4  # at most 2 of 10,000 flip
    weights = [tf.train.load_checkpoint(str(tmp_path / s / "ckpt-30")) for s in runs]
    keys = [k for k in weights[0].get_variable_to_shape_map()
            if k.startswith(("model/", "optimizer/_trainable_variables/"))]
    assert keys
    for key in keys:
        np.testing.assert_allclose(weights[1].get_tensor(key), weights[0].get_tensor(key), atol=1e-5,
                                   err_msg=key)


def test_slimkit_train_refuses_a_batch_the_replicas_cannot_share(tmp_path, mnist_dir):
    """Refused as soon as the strategy is known: before data, model or logdir are made."""
    done = slimkit_train(tmp_path / "odd", "mirrored", "--batch-size", "101",
                         "--data-dir", str(tmp_path / "no-data-here"))  # not loaded yet
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "slimkit train: error: Invalid global batch size 101 for 2 replicas: it must be divisible by "
        "the number of replicas so each gets the same share. Use a batch size that is a multiple of "
        "2, e.g. --batch-size 100.")
    assert not (tmp_path / "odd").exists()
