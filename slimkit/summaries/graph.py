"""The Graphs and Profile dashboards: the compiled train step's graph, and traces of a few steps.

    write_graph(writers["train"], step_fn, args)   # once, after the first call traced it
    tracer = Tracer(writers["train"], every_n_steps=None)   # None: one trace after warm-up
    tracer.before_call(step, calls); ...; tracer.after_call(step)

The graph is that of one training step as TensorFlow runs it inside the compiled ``tf.function``
of ``k`` steps (forward pass, loss, gradients, the optimizer's update, EMA and global step);
Keras opens a name scope per layer, so the nodes are grouped as ``conv1``, ``pool1``, ... Traces are TensorFlow's profiler (``tf.profiler.experimental``), written to
``<run>/plugins/profile/`` where TensorBoard's Profile tab (the ``tensorboard-plugin-profile``
package) shows them: a trace viewer of every op, the input pipeline, op statistics.
"""

import logging
import re

log = logging.getLogger("slimkit.summaries")

TRACE_STEPS = 3  # a trace covers whole calls until at least this many steps
WARMUP_CALLS = 3  # the default trace starts after this many calls (compiled, caches warm)


def write_graph(writer, step_fn, args, model=None):
    """Writes the graph of ``step_fn`` (a ``tf.function``) for ``args`` to ``writer``'s run.

    With ``model``, its name scopes are shown as the layers are named: inside a ``tf.function``
    Keras 3 opens each layer's scope a second time, so TensorFlow names them ``deep_mnist_1``,
    ``conv1_1``, ...; the ``_1`` is dropped where that names no other scope.

    Returns:
        True if written; False if ``step_fn`` is not a ``tf.function`` (a custom step: logged).
    """
    import tensorflow as tf

    if not hasattr(step_fn, "get_concrete_function"):
        log.info("no graph for TensorBoard: the train step is not a tf.function")
        return False
    # ``make_train_step``'s function has ``one_step``: one iteration of its loop, whose graph has
    # the layers at the top (conv1, pool1, ..., then the gradients and the optimizer's update)
    # instead of inside the ``while`` loop's body function.
    fn = getattr(step_fn, "one_step", step_fn)
    with writer.at_step(0, "graph") as on:
        if on:
            graph = fn.get_concrete_function(*args).graph.as_graph_def()
            if model is not None:
                graph = tidy_scopes(graph, {layer.name for layer in model.layers} | {model.name})
            tf.summary.graph(graph)
    return True


def tidy_scopes(graph_def, names):
    """``graph_def`` with the scopes ``<name>_1`` of ``names`` renamed ``<name>``, unless that
    would give two nodes one name (then it is returned as it is)."""
    if not names:
        return graph_def
    pattern = re.compile(r"(^|/|\^)(" + "|".join(map(re.escape, sorted(names))) + r")_1(?=/)")

    def rename(text):
        return pattern.sub(r"\1\2", text)

    renamed = [rename(node.name) for node in graph_def.node]
    if len(set(renamed)) != len(renamed) or set(renamed) & (
            {n.name for n in graph_def.node} - set(renamed)):
        return graph_def
    tidy = type(graph_def)()
    tidy.CopyFrom(graph_def)
    for node, name in zip(tidy.node, renamed):
        node.name = name
        node.input[:] = [rename(i) for i in node.input]
    return tidy


class Tracer:
    """Profiler traces of a few steps: every ``every_n_steps`` steps, or once after warm-up.

    Args:
        writer: The run's :class:`~slimkit.summaries.writer.SummaryWriter` (traces go to its folder).
        every_n_steps: Trace every N steps; None: once, after ``WARMUP_CALLS`` calls; 0: never.
    """

    def __init__(self, writer, every_n_steps=None):
        self.writer = writer
        self.every = every_n_steps
        self.active_since = None  # the step the current trace started at
        self.traced = 0  # traces written
        self._calls = 0
        self._next = every_n_steps or None

    def due(self, step):
        if not self.writer.enabled or self.every == 0:
            return False
        if self.every is None:
            return self.traced == 0 and self._calls >= WARMUP_CALLS
        return step >= self._next

    def before_call(self, step):
        """Starts a trace if one is due before the call that begins at ``step``."""
        import tensorflow as tf

        if self.active_since is None and self.due(step):
            with self.writer.guard("profiler trace"):
                tf.profiler.experimental.start(self.writer.folder)
                self.active_since = step
        self._calls += 1

    def after_call(self, step):
        """Stops the trace once it covers ``TRACE_STEPS`` steps (call after the host sync)."""
        if self.active_since is not None and step - self.active_since >= TRACE_STEPS:
            self.stop(step)

    def stop(self, step=None):
        import tensorflow as tf

        if self.active_since is None:
            return
        with self.writer.guard("profiler trace"):
            tf.profiler.experimental.stop()
            self.traced += 1
        self.active_since = None
        if self.every:
            while step is not None and self._next <= step:
                self._next += self.every
