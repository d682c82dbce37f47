"""train() under MirroredStrategy (two logical CPUs) matches one device with the same global batch.

Covers what the step does per replica: loss scaled by 1/replicas, gradient clipping by the global
norm of the *summed* gradient, momentum, EMA and global step in cross-replica context. Tolerance
1e-5: the two halves' gradients are summed by an all-reduce instead of inside one reduction, which
changes float32 round-off (measured: 4.5e-8 after 20 steps). Not Adam: it divides by the root of
the squared-gradient average, so for a weight whose gradient is ~0 (a dead ReLU) round-off noise
becomes an update of size ~lr (measured 7e-4 with lr 1e-3). Dropout is off (keep_prob 1): each
replica draws its own mask for its half of the batch, so with dropout the runs legitimately differ.
"""

import json
import os
import subprocess
import sys
import textwrap

_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    from slimkit.training.config import TrainConfig
    from slimkit.training.loop import train

    def run(strategy):
        logdir = f"{sys.argv[1]}/{strategy}"
        train(TrainConfig(model="lenet", strategy=strategy, logdir=logdir, data_dir=sys.argv[2],
                          steps=20, batch_size=16, optimizer="momentum", learning_rate=0.01,
                          keep_prob=1.0, clip_gradient_norm=0.5, ema_decay=0.9,
                          precision="fp32"), log_stream=sys.stderr)
        reader = tf.train.load_checkpoint(f"{logdir}/ckpt-20")
        return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
                if k != "_CHECKPOINTABLE_OBJECT_GRAPH"}

    mirrored, one = run("mirrored"), run("one-device")
    print(json.dumps({"keys_equal": sorted(mirrored) == sorted(one),
                      "max_diff": max(float(np.abs(mirrored[k].astype(np.float64) - one[k]).max())
                                      for k in one)}))
""")


def test_mirrored_two_logical_cpus_matches_one_device(tmp_path, mnist_dir):
    env = dict(os.environ, SLIMKIT_LOGICAL_CPUS="2", TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path), str(mnist_dir)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "MirroredStrategy, 2 replica(s)" in done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["keys_equal"]
    assert result["max_diff"] < 1e-5
