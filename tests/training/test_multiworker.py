"""Two worker processes on 127.0.0.1 train together with MultiWorkerMirroredStrategy.

Each worker gets its own TF_CONFIG (free local ports). They must end with identical weights, equal
to a one-device run on the same global batches, and only the chief may write the logdir.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf

TIMEOUT = 90  # seconds for the whole cluster; a hung collective op fails the test, not CI

# One worker: builds a small CNN under the strategy, trains 2 x 5 steps on global batches of 16
# drawn identically on every worker, saves through CheckpointManager into worker_logdir, and writes
# its final weights and facts to OUT (an .npz file).
_WORKER = """
    import json, os, sys
    import numpy as np
    import keras
    import tensorflow as tf
    from slimkit.training.distribute import (any_worker, chief_decides, distribute_batch, is_chief,
                                             make_strategy, num_workers, same_on_all_workers,
                                             worker_logdir)

    strategy_name, logdir, out = sys.argv[1:4]
    strategy = make_strategy(strategy_name)  # first: collective ops are configured at start-up
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                                  keras.layers.Flatten(), keras.layers.Dense(3)])
        optimizer = keras.optimizers.SGD(0.5)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer)
    save_dir = worker_logdir(logdir, strategy)
    manager = tf.train.CheckpointManager(checkpoint, save_dir, max_to_keep=2)

    @tf.function
    def multi_step(images, labels):
        for i in range(images.shape[0]):
            with tf.GradientTape() as tape:
                per_example = keras.losses.sparse_categorical_crossentropy(
                    labels[i], model(images[i]), from_logits=True)
                loss = tf.reduce_mean(per_example) / strategy.num_replicas_in_sync
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    rng = np.random.default_rng(0)
    for _ in range(2):
        images = rng.random((5, 16, 8, 8, 1), dtype=np.float32)
        labels = rng.integers(0, 3, (5, 16)).astype(np.int32)
        strategy.run(multi_step, args=distribute_batch(strategy, images, labels))
        manager.save()  # every worker saves: the save of mirrored variables is collective
    # Each worker raises a different local flag; all must see the OR of both.
    agreed = any_worker(strategy, is_chief(strategy), not is_chief(strategy), False)
    same = [same_on_all_workers(strategy, '{"batch_size": 16}'),
            same_on_all_workers(strategy, f'{{"batch_size": {16 if is_chief(strategy) else 32}}}')]
    # Only the chief's decision counts (e.g. "best checkpoint so far?" from its logdir's best.json).
    decided = [chief_decides(strategy, is_chief(strategy)),
               chief_decides(strategy, not is_chief(strategy))]
    np.savez(out, *[w.numpy() for w in model.weights],
             facts=json.dumps({"chief": is_chief(strategy), "save_dir": save_dir,
                               "replicas": strategy.num_replicas_in_sync,
                               "workers": num_workers(strategy), "agreed": agreed, "same": same,
                               "decided": decided}))
"""


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _communicate_all(procs, timeout=TIMEOUT):
    """(stdout, stderr) of every process; kills all and fails the test if one outlives timeout."""
    try:
        return [p.communicate(timeout=timeout) for p in procs]
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        errs = [p.communicate()[1][-2000:] for p in procs]
        pytest.fail(f"workers did not finish within {timeout} s:\n" + "\n---\n".join(errs))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def run_cluster(script, args_per_worker, envs, timeout=TIMEOUT):
    """Starts one process per env, waits for all; kills all and fails on error or timeout."""
    procs = [subprocess.Popen([sys.executable, str(script), *args], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for args, env in zip(args_per_worker, envs)]
    outputs = _communicate_all(procs, timeout)
    for p, (_, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]
    return outputs


def tf_config_envs(n):
    workers = [f"127.0.0.1:{port}" for port in free_ports(n)]
    base = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return [{**base, "TF_CONFIG": json.dumps({"cluster": {"worker": workers},
                                              "task": {"type": "worker", "index": i}})}
            for i in range(n)]


def load(path):
    data = np.load(path)
    facts = json.loads(str(data["facts"]))
    return [data[f"arr_{i}"] for i in range(len(data.files) - 1)], facts


def test_two_workers_train_in_sync_and_only_the_chief_writes_the_logdir(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(_WORKER))
    logdir = tmp_path / "logdir"
    outs = [tmp_path / f"worker{i}.npz" for i in range(2)]
    run_cluster(script, [["multi-worker", str(logdir), str(out)] for out in outs], tf_config_envs(2))
    (w0, chief), (w1, other) = load(outs[0]), load(outs[1])
    try:
        assert (chief["chief"], other["chief"]) == (True, False)
        assert chief["replicas"] == other["replicas"] == 2
        assert chief["workers"] == other["workers"] == 2
        assert chief["agreed"] == other["agreed"] == [True, True, False]
        assert chief["same"] == other["same"] == [True, False]
        assert chief["decided"] == other["decided"] == [True, False]
        # Synchronized: bit-identical weights on both workers.
        for a, b in zip(w0, w1):
            np.testing.assert_array_equal(a, b)
        # Only the chief wrote the logdir; the other worker saved into its own temporary directory.
        assert chief["save_dir"] == str(logdir)
        assert sorted(p.name for p in logdir.iterdir()) == [
            "checkpoint", "ckpt-1.data-00000-of-00001", "ckpt-1.index",
            "ckpt-2.data-00000-of-00001", "ckpt-2.index"]
        assert not other["save_dir"].startswith(str(logdir))
        assert os.path.exists(os.path.join(other["save_dir"], "checkpoint"))
    finally:
        shutil.rmtree(other["save_dir"], ignore_errors=True)

    # The two workers together computed what one device computes on the same global batches.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TF_CONFIG", None)
    run_cluster(script, [["one-device", str(tmp_path / "single"), str(tmp_path / "one.npz")]], [env])
    single, _ = load(tmp_path / "one.npz")
    for a, b in zip(w0, single):
        np.testing.assert_allclose(a, b, atol=1e-5)  # float32 summation order only


# ------------------------------------------------------------------ through `slimkit train`
TRAIN = ["softmax_regression", "--batch-size", "100", "--learning-rate", "0.5", "--precision", "fp32",
         "--seed", "0", "--save-every-n-steps", "10", "--json"]


def slimkit_train(*args):
    return [sys.executable, "-m", "slimkit", "train", *TRAIN, *args]


def cluster_train(logdir, steps, *args):
    """`slimkit train --strategy multi-worker` on two local workers; returns their JSON metrics."""
    envs = tf_config_envs(2)
    procs = [subprocess.Popen(slimkit_train("--strategy", "multi-worker", "--logdir", str(logdir),
                                            "--steps", str(steps), *args),
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for env in envs]
    outputs = _wait_all(procs)
    return [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]


def _wait_all(procs, timeout=TIMEOUT):
    outputs = _communicate_all(procs, timeout)
    for p, (_, err) in zip(procs, outputs):
        assert p.returncode in (0, 143), err[-3000:]
    return outputs


def model_weights(checkpoint):
    reader = tf.train.load_checkpoint(str(checkpoint))
    keys = sorted(k for k in reader.get_variable_to_shape_map()
                  if k.startswith(("model/", "optimizer/_trainable_variables/")))
    return {k: reader.get_tensor(k) for k in keys}


def test_slimkit_train_on_two_workers_stays_in_sync_and_resumes(tmp_path, mnist_dir):
    """Two `slimkit train --strategy multi-worker` processes: same metrics, only the chief writes
    the logdir, and a resumed cluster ends where one uninterrupted single-device run ends. With
    --keep-best: after the resume the non-chief's scratch dir has no best.json, so only the
    chief's decision (agreed on every worker) keeps the saves collective."""
    logdir = tmp_path / "cluster"
    chief, other = cluster_train(logdir, 20, "--keep-best")
    assert chief["global_step"] == other["global_step"] == 20
    # Synchronized weights: both workers evaluate the whole test set to the same loss.
    assert chief["test_loss"] == other["test_loss"] and chief["train_loss"] == other["train_loss"]
    assert chief["checkpoint"] == str(logdir / "ckpt-20")
    written = sorted(p.name for p in logdir.iterdir())
    assert [n for n in written if n.startswith("ckpt-")] == [
        "ckpt-10.data-00000-of-00001", "ckpt-10.index", "ckpt-20.data-00000-of-00001", "ckpt-20.index"]
    assert "config.json" in written and "slimkit.lock" not in written
    # The non-chief's own saves went to a scratch dir it deleted; it reports the chief's checkpoint.
    assert other["checkpoint"] == chief["checkpoint"]

    best = json.loads((logdir / "best" / "best.json").read_text())
    assert best["step"] in (10, 20)

    # Resume: every worker must restore the chief's checkpoint (step 20), then train to 30.
    chief, other = cluster_train(logdir, 30, "--keep-best")
    assert chief["global_step"] == other["global_step"] == 30
    assert other["checkpoint"] == chief["checkpoint"] == str(logdir / "ckpt-30")
    assert chief["test_loss"] == other["test_loss"]
    assert json.loads((logdir / "best" / "best.json").read_text())["step"] in (best["step"], 30)
    # Already done: every worker names the logdir's checkpoint it restored.
    chief, other = cluster_train(logdir, 30)
    assert chief["stopped"] == other["stopped"] == "already_done"
    assert other["checkpoint"] == chief["checkpoint"] == str(logdir / "ckpt-30")

    single = tmp_path / "single"
    subprocess.run(slimkit_train("--strategy", "one-device", "--logdir", str(single), "--steps", "30"),
                   check=True, capture_output=True, timeout=TIMEOUT,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    resumed, straight = model_weights(logdir / "ckpt-30"), model_weights(single / "ckpt-30")
    assert resumed.keys() == straight.keys() and resumed
    for key in straight:
        np.testing.assert_allclose(resumed[key], straight[key], atol=1e-5, err_msg=key)


def test_sigterm_to_one_worker_stops_the_whole_cluster_at_one_step(tmp_path, mnist_dir):
    """A machine being shut down sends SIGTERM to its worker only: every worker must checkpoint
    and stop at the same step (instead of the others waiting for it in the next all-reduce)."""
    logdir = tmp_path / "cluster"
    logs = [tmp_path / f"worker{i}.err" for i in range(2)]
    procs = []
    for env, log in zip(tf_config_envs(2), logs):
        with open(log, "w") as err:
            procs.append(subprocess.Popen(
                slimkit_train("--strategy", "multi-worker", "--logdir", str(logdir), "--steps",
                              "100000000", "--log-every-n-steps", "20"),
                env=env, stdout=subprocess.PIPE, stderr=err, text=True))
    try:
        deadline = time.monotonic() + TIMEOUT
        while "step " not in logs[0].read_text():  # the chief reports progress: training runs
            assert time.monotonic() < deadline and procs[0].poll() is None, logs[0].read_text()[-2000:]
            time.sleep(0.2)
        procs[1].send_signal(signal.SIGTERM)  # the non-chief worker only
        outputs = _wait_all(procs)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    chief, other = (json.loads(out.strip().splitlines()[-1]) for out, _ in outputs)
    assert [p.returncode for p in procs] == [143, 143]
    assert chief["stopped"] == other["stopped"] == "SIGTERM"
    assert chief["global_step"] == other["global_step"] > 0
    assert chief["checkpoint"] == other["checkpoint"] == str(logdir / f"ckpt-{chief['global_step']}")
    assert tf.train.latest_checkpoint(str(logdir)) == chief["checkpoint"]
    assert not (logdir / "slimkit.lock").exists()


def test_two_workers_agree_on_precision_auto(tmp_path, mnist_dir):
    """With `auto`, every worker joins one more collective (a measuring worker takes the chief's
    choice); both must get through it and train in the same, saved precision."""
    from slimkit.training.runtime import choose_precision

    logdir = tmp_path / "run"
    chief, other = cluster_train(logdir, 10, "--precision", "auto")
    assert chief["global_step"] == other["global_step"] == 10
    expected = choose_precision("auto", "softmax_regression")[0]  # excluded from bf16: no probe
    assert chief["precision"] == other["precision"] == expected
    assert json.loads((logdir / "config.json").read_text())["precision"] == expected


def _refused_on_both_workers(tmp_path, per_worker_args, messages, per_worker_env=({}, {})):
    """Starts two workers with their own extra flags and environment; both must exit 2 with their
    message (one for both, or one each)."""
    messages = (messages, messages) if isinstance(messages, str) else messages
    procs = [subprocess.Popen(slimkit_train("--strategy", "multi-worker", "--logdir", str(tmp_path / "run"),
                                            "--steps", "20", *args),
                              env={**env, **extra}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
             for env, args, extra in zip(tf_config_envs(2), per_worker_args, per_worker_env)]
    outputs = _communicate_all(procs)
    for p, (_, err), message in zip(procs, outputs, messages):
        assert p.returncode == 2, err[-2000:]
        assert err.strip().splitlines()[-1].startswith(f"slimkit train: error: {message}"), err[-2000:]
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_workers_started_with_different_settings_are_refused(tmp_path, mnist_dir):
    _refused_on_both_workers(tmp_path, (["--batch-size", "100"], ["--batch-size", "50"]),
                             "The workers of this multi-worker run have different settings")


def test_a_worker_without_its_data_files_stops_the_cluster_with_the_reason(tmp_path, mnist_dir):
    """Worker 1's --data-dir is empty and no mirror answers: it says which files to put where, and
    worker 0 says another worker refused (not that a worker was lost)."""
    empty = tmp_path / "empty"
    empty.mkdir()
    _refused_on_both_workers(
        tmp_path, ([], ["--data-dir", str(empty)]),
        ("Another worker of this multi-worker run refused to start (its error says why)",
         f"Dataset mnist is incomplete in {empty}: downloading failed. Put these files in {empty}"),
        per_worker_env=({}, {"SLIMKIT_MIRRORS": "http://127.0.0.1:9/"}))  # port 9: refused at once


def test_startup_delay_steps_is_refused_by_every_worker_of_a_synchronous_cluster(tmp_path,
                                                                                 mnist_dir):
    """TF-Slim's startup delay holds back non-chief workers of asynchronous training; here every
    worker takes part in every step, so a real two-worker cluster refuses it, on both workers."""
    _refused_on_both_workers(tmp_path, (["--startup-delay-steps", "5"],) * 2,
                             "Invalid value for `startup_delay_steps` with synchronous "
                             "multi-worker training: every worker takes part in every step")


def test_workers_with_different_data_are_refused_together(tmp_path):
    """--data-dir may differ between workers, the data may not: on other class lists the workers
    would build other models (and hang); every worker refuses with one clear line instead."""
    from test_refused_runs import _make_folder

    folders = [_make_folder(tmp_path / "fA", ["blue", "red"]),
               _make_folder(tmp_path / "fB", ["blue", "green", "red"])]
    procs = [subprocess.Popen(
        [sys.executable, "-m", "slimkit", "train", "lenet", "--dataset", "folder", "--data-dir",
         str(folder), "--image-size", "28", "--batch-size", "4", "--steps", "2", "--precision",
         "fp32", "--strategy", "multi-worker", "--logdir", str(tmp_path / "new" / "run")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for env, folder in zip(tf_config_envs(2), folders)]
    outputs = _communicate_all(procs)
    for i, (p, (_, err), folder, n) in enumerate(zip(procs, outputs, folders, (2, 3))):
        assert p.returncode == 2, err[-2000:]
        line = err.strip().splitlines()[-1]
        assert line.startswith(f"slimkit train: error: The workers' data differ: worker {i} loaded "
                               f"folder at {folder} with {n} classes ("), line
        assert line.endswith("Expected the same files on every worker (only --data-dir may "
                             "differ): copy the same dataset to every machine, then restart all "
                             "workers."), line
    assert not (tmp_path / "new").exists()  # the chief removed the directories it created


@pytest.mark.parametrize("victim", [1, 0], ids=["non-chief-killed", "chief-killed"])
def test_a_killed_worker_stops_the_other_with_one_clear_line(tmp_path, mnist_dir, victim):
    """SIGKILL of one worker (a lost machine): the survivor's next all-reduce fails; it must exit 1
    with one line (what happened, the intact checkpoint, restart all workers), no traceback."""
    logdir = tmp_path / "cluster"
    logs = [tmp_path / f"worker{i}.err" for i in range(2)]
    procs = []
    for env, log in zip(tf_config_envs(2), logs):
        with open(log, "w") as err:
            procs.append(subprocess.Popen(
                slimkit_train("--strategy", "multi-worker", "--logdir", str(logdir), "--steps",
                              "100000000", "--log-every-n-steps", "20"),
                env=env, stdout=subprocess.PIPE, stderr=err, text=True))
    survivor = procs[1 - victim]
    try:
        deadline = time.monotonic() + TIMEOUT
        while "saved " not in logs[0].read_text():  # the chief has written a checkpoint
            assert time.monotonic() < deadline and procs[0].poll() is None, logs[0].read_text()[-2000:]
            time.sleep(0.2)
        procs[victim].kill()
        survivor.communicate(timeout=TIMEOUT)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    err = logs[1 - victim].read_text()
    assert survivor.returncode == 1, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    last = err.strip().splitlines()[-1]
    latest = tf.train.latest_checkpoint(str(logdir))
    assert latest is not None and model_weights(latest)  # the logdir's checkpoint is readable
    assert re.fullmatch(
        r"slimkit train: error: Lost contact with another worker of this multi-worker run "
        r"\(\w+Error: .+\); every step needs all workers, so this one stopped too\. The last "
        r"checkpoint in the logdir, (\S+), is intact \(a checkpoint is listed only once it is "
        r"complete\)\. To resume, restart all workers with the same command; they continue from "
        r"that checkpoint\.", last), last
    # The chief may have saved once more before it noticed; the message names one of its checkpoints.
    named = re.search(r"the logdir, (\S+), is intact", last).group(1)
    assert os.path.dirname(named) == str(logdir) and os.path.exists(named + ".index")


# Runs `slimkit` as a CPU with AVX512_BF16 but no AMX would: its hardware does not decide bfloat16,
# so `precision auto` takes the measured choice cached for this machine (the test writes each
# worker's cache). Only the hardware answer is simulated; the CLI, the cluster and the collective
# that hands the chief's choice to the other worker are real.
_UNDECIDED_CPU = """
    import runpy, sys
    import slimkit.training.runtime as rt
    rt.fast_bf16_hardware = lambda: (None, "the CPU has AVX512_BF16 but no AMX (the test says so)")
    sys.argv = ["slimkit", *sys.argv[1:]]
    runpy.run_module("slimkit", run_name="__main__")
"""


def test_two_measuring_workers_that_disagree_train_in_the_chiefs_precision(tmp_path, mnist_dir):
    """Worker 0 (the chief) has bf16 cached as faster, worker 1 fp32 (timings on either side of
    the threshold): both train in bf16, the chief's choice, and that is what the logdir saves."""
    from slimkit.training.config import TrainConfig
    from slimkit.training.precision_probe import CACHE_NAME, cache_key

    wrapper = tmp_path / "undecided_cpu.py"
    wrapper.write_text(textwrap.dedent(_UNDECIDED_CPU))
    key = cache_key(TrainConfig(model="lenet", batch_size=100), 50)  # 2 replicas: 50 each
    caches = []
    for index, (fp32_s, bf16_s) in enumerate([(0.02, 0.01), (0.01, 0.02)]):
        entry = {"fp32_s": fp32_s, "bf16_s": bf16_s, "model": "lenet", "batch": 50,
                 "choice": "bf16" if fp32_s > bf16_s else "fp32", "measured": "by the test"}
        cache = tmp_path / f"cache{index}"
        (cache / "slimkit").mkdir(parents=True)
        (cache / "slimkit" / CACHE_NAME).write_text(json.dumps({key: entry}))
        caches.append(cache)
    logdir = tmp_path / "run"
    command = [sys.executable, str(wrapper), "train", "lenet", "--batch-size", "100",
               "--learning-rate", "0.01", "--precision", "auto", "--seed", "0", "--steps", "4",
               "--strategy", "multi-worker", "--logdir", str(logdir), "--json"]
    procs = [subprocess.Popen(command, env={**env, "XDG_CACHE_HOME": str(cache)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for env, cache in zip(tf_config_envs(2), caches)]
    outputs = _wait_all(procs)
    chief, other = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert chief["global_step"] == other["global_step"] == 4
    assert chief["precision"] == other["precision"] == "bf16"  # worker 1's own cache said fp32
    saved = json.loads((logdir / "config.json").read_text())
    assert saved["precision"] == "bf16"
    assert f"cached in {caches[0] / 'slimkit' / CACHE_NAME}" in saved["precision_reason"]
    assert re.search(r"^precision: bf16 \(auto: the CPU has AVX512_BF16 but no AMX .*one lenet step "
                     r"at batch 50 takes 10 ms in bfloat16, 20 ms in float32 \(cached in ",
                     outputs[0][0] + outputs[0][1], re.MULTILINE)
    # Nothing was measured again: each worker's cache is as the test wrote it.
    assert json.loads((caches[1] / "slimkit" / CACHE_NAME).read_text())[key]["choice"] == "fp32"
