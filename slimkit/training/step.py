"""The compiled train step: k optimizer steps per call, no host synchronization between them.

    step = make_train_step(model, loss_fn, optimizer, strategy, StepOptions(global_step=gs))
    images, labels = feed.next_batches(10)               # (10, B, 28, 28, 1), (10, B)
    result = step(*distribute_batch(strategy, images, labels))
    result["loss_sum"] / result["steps"]                 # mean loss of the steps that ran

One call runs a ``tf.range`` loop over the ``k`` stacked batches inside one ``tf.function``, so a
small model (MNIST softmax: ~0.1 ms of arithmetic per step) is not dominated by Python and
host-device round trips. Each step, for every replica of the ``tf.distribute`` strategy:

1. forward pass with ``training=True`` (dropout on), loss = cross entropy (optionally label-smoothed)
   + the model's regularization losses (weight decay), scaled by ``1 / replicas`` because the
   optimizer sums the replicas' gradients;
2. gradients of the trainable variables (all, or those of ``trainable_scopes``);
3. a finiteness check of loss and gradients over all replicas: a non-finite step is *not applied*
   and ends the call early (``steps`` < k), so the weights in memory stay the last good ones;
4. clipping by global norm (of the gradient summed over replicas), the optimizer's update, then the
   EMA shadows and ``global_step``.

Under mixed bfloat16 the model computes in bfloat16 with float32 variables and returns float32
logits; the loss and everything after it are float32.
"""

import dataclasses
import typing

import tensorflow as tf


@dataclasses.dataclass
class StepOptions:
    """What the step does besides forward, backward and update.

    Attributes:
        global_step: An int64 ``tf.Variable`` incremented once per applied step (required by
            :func:`make_train_step`; the loop creates it under the strategy's scope).
        trainable_variables: The variables to train (default: ``model.trainable_variables``).
        clip_gradient_norm: Clip the gradient to this global norm (0: no clipping).
        ema: An :class:`~slimkit.training.ema.ExponentialMovingAverage` to update, or None.
        jit_compile: Compile each step's forward and backward pass with XLA (a nested
            ``tf.function(jit_compile=True)``); the loop over a call's steps, the update and the
            EMA stay TensorFlow ops.
    """

    global_step: typing.Any = None
    trainable_variables: typing.Optional[list] = None
    clip_gradient_norm: float = 0.0
    ema: typing.Any = None
    jit_compile: bool = False


def make_loss_fn(num_classes, label_smoothing=0.0):
    """The per-batch loss ``loss_fn(logits, labels) -> scalar float32`` (mean over the batch).

    Args:
        num_classes: Number of classes (for one-hot labels when smoothing).
        label_smoothing: 0 for the plain sparse cross entropy, else the smoothing amount.

    Example:
        >>> loss_fn = make_loss_fn(10)
        >>> float(loss_fn(tf.zeros([2, 10]), tf.constant([3, 4])))   # log(10)
        2.3025851
    """
    from slimkit import losses

    if label_smoothing:
        def loss_fn(logits, labels):
            onehot = tf.one_hot(labels, num_classes, dtype=tf.float32)
            return losses.softmax_cross_entropy(logits, onehot, label_smoothing=label_smoothing)
    else:
        def loss_fn(logits, labels):
            return losses.sparse_softmax_cross_entropy(logits, labels)
    return loss_fn


def make_train_step(model, loss_fn, optimizer, strategy=None, options=None):
    """Builds the compiled multi-step train function.

    Args:
        model: A Keras model (built under ``strategy.scope()``) returning float32 logits.
        loss_fn: ``loss_fn(logits, labels) -> scalar``, the mean data loss of a batch; the model's
            regularization losses are added by ``slimkit.losses.get_total_loss``.
        optimizer: A Keras optimizer (built under ``strategy.scope()``).
        strategy: A ``tf.distribute.Strategy`` (default: the current one).
        options: A :class:`StepOptions` with at least ``global_step``.

    Returns:
        ``step(images, labels) -> dict`` for images ``(k, B, ...)`` and labels ``(k, B)`` (plain
        arrays or tensors, or per-replica values from
        ``slimkit.training.distribute.distribute_batch``). The dict holds float32 ``loss_sum``,
        ``cross_entropy_sum`` and ``accuracy_sum`` (sums over the steps that ran of each step's
        mean total loss, data loss without regularization, and batch accuracy),
        ``gradient_norm`` (the global norm of the last step's gradient; with several replicas the
        mean of each replica's) and int32 ``steps`` (how many ran: fewer than k only if a step's
        loss or gradient was not finite; that step was not applied).

    Example:
        >>> gs = tf.Variable(0, dtype=tf.int64)
        >>> step = make_train_step(model, make_loss_fn(10), keras.optimizers.SGD(0.5),
        ...                        options=StepOptions(global_step=gs))
        >>> step(images, labels)["steps"]           # images: (10, 100, 28, 28, 1)
        <tf.Tensor: shape=(), dtype=int32, numpy=10>
    """
    from slimkit.losses import get_total_loss

    strategy = strategy or tf.distribute.get_strategy()
    options = options or StepOptions()
    if options.global_step is None:
        raise ValueError("make_train_step needs `options.global_step`, an int64 tf.Variable created "
                         "under the strategy's scope, e.g. StepOptions(global_step=tf.Variable(0, "
                         "dtype=tf.int64)).")
    variables = list(options.trainable_variables or model.trainable_variables)
    if not variables:
        raise ValueError("Nothing to train: the selected trainable variables are empty. Check "
                         "--trainable-scopes against the model's layer names.")
    replicas = strategy.num_replicas_in_sync
    clip_norm = float(options.clip_gradient_norm or 0.0)
    ema, global_step = options.ema, options.global_step
    mean, total = tf.distribute.ReduceOp.MEAN, tf.distribute.ReduceOp.SUM

    def forward_backward(images, labels, i):
        """Replica context: losses, accuracy, gradients and their norm of batch ``i``."""
        images, labels = images[i], labels[i]  # (b, H, W, C), (b,)
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            data_loss = tf.cast(loss_fn(logits, labels), tf.float32)
            loss = tf.cast(get_total_loss(model, data_loss), tf.float32)
            scaled = loss / replicas  # the optimizer sums the replicas' gradients
        grads = tape.gradient(scaled, variables)
        correct = tf.equal(tf.argmax(logits, axis=-1, output_type=labels.dtype), labels)
        # One read of each gradient gives both the non-finite guard and the norm: L2Loss
        # (sum(g**2) / 2, one kernel per gradient). A NaN or an infinity anywhere makes the total
        # non-finite, and so does a sum of squares that overflows float32 (a norm above 1.8e19: the
        # run has diverged). A separate global_norm would read every gradient a second time.
        halves = [tf.nn.l2_loss(tf.cast(g, tf.float32)) for g in grads if g is not None]
        half_squares = tf.add_n(halves) if halves else tf.constant(0.0)
        finite = tf.logical_and(tf.math.is_finite(loss), tf.math.is_finite(half_squares))
        norm = tf.sqrt(2.0 * half_squares) * replicas  # of this replica's unscaled gradient
        return (loss, data_loss, tf.reduce_mean(tf.cast(correct, tf.float32)),
                tf.cast(finite, tf.int32), grads, norm)

    def apply(grads):
        """Replica context: clip (by the norm of the replicas' summed gradient) and update."""
        if clip_norm > 0:
            context = tf.distribute.get_replica_context()
            summed = context.all_reduce(total, grads) if replicas > 1 else grads
            clipped, _ = tf.clip_by_global_norm(summed, clip_norm)
            # The optimizer sums again over replicas: hand it each replica's share.
            grads = [g / replicas for g in clipped] if replicas > 1 else clipped
        optimizer.apply(grads, variables)

    # XLA compiles one step's forward and backward pass (each replica's); the loop over the call's
    # steps, the update and the EMA stay TensorFlow ops. With the whole loop compiled, a float32
    # Deep MNIST step at batch 256 took 16 s on a 2-core AMX Xeon (0.1 s without XLA); compiled
    # per step it is 2-6x slower than without there (bench/results/train_throughput_amx.md).
    replica_step = (tf.function(forward_backward, jit_compile=True) if options.jit_compile
                    else forward_backward)

    @tf.function(reduce_retracing=True)
    def train_steps(images, labels):
        k = tf.shape(strategy.experimental_local_results(labels)[0])[0]
        loss_sum, data_loss_sum, accuracy_sum = tf.constant(0.0), tf.constant(0.0), tf.constant(0.0)
        gradient_norm = tf.constant(0.0)
        steps = tf.constant(0)
        for i in tf.range(k):
            loss, data_loss, accuracy, finite, grads, norm = strategy.run(
                replica_step, args=(images, labels, i))
            # Every replica must agree before anyone applies (the update all-reduces).
            if strategy.reduce(total, finite, axis=None) < replicas:
                break
            strategy.run(apply, args=(grads,))
            global_step.assign_add(1)
            if ema is not None:
                ema.update(global_step)
            loss_sum += strategy.reduce(mean, loss, axis=None)
            data_loss_sum += strategy.reduce(mean, data_loss, axis=None)
            accuracy_sum += strategy.reduce(mean, accuracy, axis=None)
            gradient_norm = strategy.reduce(mean, norm, axis=None)
            steps += 1
        return {"loss_sum": loss_sum, "cross_entropy_sum": data_loss_sum,
                "accuracy_sum": accuracy_sum, "gradient_norm": gradient_norm, "steps": steps}

    def one_step(images, labels):
        """What one iteration of ``train_steps`` computes (its graph shows in TensorBoard)."""
        loss, _, _, finite, grads, _ = strategy.run(forward_backward, args=(images, labels, 0))
        strategy.run(apply, args=(grads,))
        global_step.assign_add(1)
        if ema is not None:
            ema.update(global_step)
        return strategy.reduce(mean, loss, axis=None)

    # Traced for TensorBoard's Graphs dashboard only, never run: the layers' name scopes are at
    # the top of its graph, while in ``train_steps`` they are inside the ``while`` loop's body.
    train_steps.one_step = tf.function(one_step)
    return train_steps
