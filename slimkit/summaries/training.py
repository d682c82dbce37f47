"""Everything a training run writes to TensorBoard, behind the one object the loop calls.

    summaries = TrainingSummaries(run, level="default")
    summaries.start(step, progress)                 # text, hparams
    summaries.before_call(step)                     # a profiler trace may start
    result = run.step_fn(*args)
    summaries.after_call(step, clock, images, args, result)   # scalars, heavy summaries
    summaries.evaluation("validation", step, metrics)         # each evaluation of the loop
    summaries.end(step)                                       # last heavy summaries, projector

Levels (``--summaries``):

- ``none``: nothing.
- ``scalars``: at every summary point (``--save-summaries-steps``/``-secs``) the training
  scalars: ``loss`` (cross entropy), ``total_loss``, ``regularization_loss``, batch ``accuracy``,
  ``learning_rate``, ``examples_per_sec``, ``gradient_norm`` (global norm, the call's last step),
  ``keep_prob`` (models with dropout) and, for every trainable variable, its ``mean``,
  ``stddev``, ``min`` and ``max`` (``conv1/kernel/mean``: the tutorial's ``variable_summaries``);
  at every heavy-summary point, an evaluation (the evaluation curve); at the end, the final one.
- ``default`` (the default): the scalars, and at every heavy-summary point histograms (weights
  and biases; every end point's output and every variable's gradient on a fixed probe batch) and
  images (the input batch as the model sees it, the filters of every conv layer, the feature maps
  of every conv/pool end point for three probe images, a softmax regression's weights as heat
  maps, and with each evaluation the confusion matrix and a gallery of misclassified examples);
  once, the graph of the compiled train step, a profiler trace of a few steps after warm-up, the
  configuration and a layer table (Text), the hyperparameters (HParams); at the end, the
  Projector's embedding of up to 1,000 evaluation images.
- ``full``: as ``default``, with the heavy summaries at every summary point.

Heavy-summary points: the first summary point, the end of the run, and in between every
``--histogram-every-n-steps``/``-secs`` (histograms) and ``--image-every-n-steps``/``-secs``
(images); both default to every 120 s, about ten points in a 20-minute run. The evaluation curve
is on the validation split or, without one, on the first 1,000 test images (tags ``sample/*``,
and the run says so). The probe batch is the first images of that split, so it is the same
after a resume, and it never touches the training feed (exact resume).

Cost: the train step is unchanged (it returns two more scalars); the probe, the variable
statistics and the evaluation are their own compiled functions, called only at their points
(``bench/summaries_cost.py`` measures it). Only the chief of a multi-worker run writes.
"""

import logging
import os

import numpy as np

from slimkit.summaries.evaluation import GALLERY_SIZE, write_evaluation
from slimkit.summaries.writer import Writers

log = logging.getLogger("slimkit.summaries")

LEVELS = ("none", "scalars", "default", "full")
SAMPLE_SIZE = 1000  # test images of the evaluation curve when there is no validation split
FEATURE_MAP_IMAGES = 3  # probe images whose feature maps are shown
INPUT_IMAGES = 64  # training images in the input grid (16 of images larger than 64 pixels)


class TrainingSummaries:
    """The TensorBoard output of one training run (see the module docstring).

    Args:
        run: The loop's run: ``model``, ``data``, ``config``, ``loss_fn``, ``step_fn``, ``chief``,
            ``out_dir``, ``evaluate(split, step, limit=None)``, ``averaged_weights()``,
            ``learning_rate_now()``.
        level: One of ``LEVELS``.
    """

    def __init__(self, run, level="default"):
        from slimkit.summaries.graph import Tracer

        self.run, self.level = run, level
        self.writers = Writers(run.out_dir, enabled=run.chief and level != "none")
        self.heavy = level in ("default", "full")
        self.tracer = Tracer(self.writers["train"],
                             run.config.trace_every_n_steps if self.heavy else 0)
        self.progress = None
        self._last_images = None
        self._stats = self._probe = None
        self._graph_written = not self.heavy
        self._heavy_at = None  # the step of the last heavy summaries
        self._written = set()  # (split, step) of the evaluations written
        self._failed = set()

    @property
    def enabled(self):
        return self.writers.enabled

    # ------------------------------------------------------------------ the loop's calls
    def start(self, step, progress):
        """Text (configuration, layers) and the HParams session; says what the curve evaluates."""
        from slimkit.summaries.run_info import write_hparams, write_text

        self.progress = progress
        if not self.enabled:
            return
        config = self.run.config.to_dict()
        config["precision"] = self.run.precision
        config["steps"] = self.run.total_steps
        if self.heavy:
            write_text(self.writers["train"], step, config, self.run.model)
            write_hparams(self.writers["."], config, trial_id=os.path.basename(
                os.path.abspath(self.run.config.resolved_logdir())))
        split, limit = self._curve_split()
        if split == "test":
            progress.message(f"no validation split: the evaluation curve in TensorBoard is on the "
                             f"first {limit:,} test images (test/sample/*)")

    def before_call(self, step):
        if self.enabled:
            self.tracer.before_call(step)

    def after_call(self, step, clock, images, args, result):
        """After a call that ended at ``step``: scalars and heavy summaries when they are due."""
        if not self.enabled:
            return
        self._last_images = images  # (a reference) for the end-of-run input picture
        if not self._graph_written:
            from slimkit.summaries.graph import write_graph

            self._graph_written = True
            self._safely("graph", lambda: write_graph(self.writers["train"], self.run.step_fn, args,
                                                      self.run.model))
        self.tracer.after_call(step)
        summary = clock.due("summary", step)
        if summary:
            self._scalars(step, result)
        histograms, pictures = clock.due("histogram", step), clock.due("image", step)
        if summary and (self._heavy_at is None or self.level == "full"):
            histograms = pictures = True  # the first summary point has them all
        if histograms or pictures:
            self._heavy_summaries(step, images, histograms, pictures)

    def evaluation(self, split, step, metrics, prefix="", about=None):
        """Writes an evaluation of the loop (once per split and step)."""
        from slimkit.summaries.run_info import hparam_metrics

        if self.enabled and (split, step, prefix) not in self._written:
            self._written.add((split, step, prefix))
            self._safely(f"{split} evaluation", lambda: write_evaluation(
                self.writers[split], step, metrics, self.run.data.class_names, prefix, about,
                pictures=self.heavy))
            if self.heavy and not prefix:  # the HParams dashboard's results (run_info)
                self.writers["."].scalars(step, hparam_metrics(split, metrics))

    def end(self, step, train_metrics=None):
        """At the end of a run: the last heavy summaries and the Projector's embeddings.

        Args:
            step: The final global step.
            train_metrics: ``{"loss", "accuracy"}`` of the last training call (for HParams).
        """
        from slimkit.summaries.run_info import hparam_metrics

        self.tracer.stop(step)
        if not self.enabled:
            return
        if self.heavy and train_metrics:
            self.writers["."].scalars(step, hparam_metrics("train", train_metrics))
        if self._heavy_at != step:
            self._heavy_summaries(step, self._last_images, True, True)
        if self.heavy and self.run.data.eval_splits:
            self._safely("projector", lambda: self._projector(step))

    def close(self):
        self.tracer.stop()
        self.writers.close()

    # ------------------------------------------------------------------ what is written
    def _scalars(self, step, result):
        from slimkit.summaries.variables import VariableStats

        n = max(1, int(result["steps"]))
        total, data = float(result["loss_sum"]) / n, _get(result, "cross_entropy_sum", n)
        values = {"loss": data if data is not None else total, "total_loss": total,
                  "accuracy": float(result["accuracy_sum"]) / n,
                  "learning_rate": self.run.learning_rate_now(),
                  "examples_per_sec": self.progress.examples_per_sec()}
        if data is not None:
            values["regularization_loss"] = total - data
        if "gradient_norm" in result:
            values["gradient_norm"] = float(result["gradient_norm"])
        keep_prob = _keep_prob(self.run.model)
        if keep_prob is not None:
            values["keep_prob"] = keep_prob
        if self._stats is None:
            self._stats = VariableStats(self.run.model.trainable_variables)
        values.update(self._stats())
        self.writers["train"].scalars(step, values)

    def _heavy_summaries(self, step, images, histograms, pictures):
        """Histograms and/or images at ``step`` (``images``: the last training batches)."""
        self._heavy_at = step
        if self.heavy:
            self._safely("histograms and images", lambda: self._probe_summaries(
                step, images, histograms, pictures))
        self._curve(step)

    def _probe_summaries(self, step, images, histograms, pictures):
        from slimkit.summaries import images as pics
        from slimkit.summaries.variables import variable_tag

        model, writer = self.run.model, self.writers["train"]
        probe = self._get_probe()
        activations, gradients = probe() if probe is not None else ({}, {})
        if histograms:
            values = {variable_tag(v): v for v in model.trainable_variables}
            values.update((f"activations/{name}", v) for name, v in activations.items())
            values.update((f"gradients/{tag}", g) for tag, g in gradients.items())
            writer.histograms(step, values)
        if not pictures:
            return
        if images is not None:
            batch = np.asarray(images)[-1]  # the last batch, as the model saw it
            batch = batch[:INPUT_IMAGES if batch.shape[1] <= 64 else INPUT_IMAGES // 4]
            writer.image("input", step, pics.tile_grid(pics.display_images(batch) / 255.0),
                         description=f"{len(batch)} training images of the batch at step "
                                     f"{step}, as the model sees them (after augmentation)")
        for layer in model.layers:
            kernel = getattr(layer, "kernel", None)
            if kernel is not None and len(kernel.shape) == 4:
                writer.image(f"filters/{layer.name}", step, pics.filter_grid(np.asarray(kernel)),
                             description=_FILTERS_ABOUT)
            elif kernel is not None and _on_pixels(kernel, model):
                writer.image(f"weights/{layer.name}", step, pics.weight_heatmaps(
                    np.asarray(kernel), model.input.shape[1:], self.run.data.class_names),
                             description="the weights of each class on the pixels (red: "
                                         "positive, blue: negative)")
        for name, value in activations.items():
            if len(value.shape) == 4:
                maps = [pics.feature_map_grid(v) for v in value[:FEATURE_MAP_IMAGES].numpy()]
                writer.image(f"feature_maps/{name}", step, np.stack(maps),
                             description=f"the {value.shape[-1]} channels of {name} for "
                                         f"{len(maps)} probe images", max_outputs=len(maps))

    def _curve(self, step):
        """The evaluation curve: validation, or a fixed sample of the test split."""
        split, limit = self._curve_split()
        if split is None:
            return
        metrics = self.run.evaluate(split, step, limit=limit)
        if limit:
            self.evaluation(split, step, metrics, prefix="sample/",
                            about=f"the first {limit:,} {split} images")
        else:
            self.evaluation(split, step, metrics)

    def _curve_split(self):
        splits = self.run.data.eval_splits
        if "validation" in splits:
            return "validation", None
        return ("test", SAMPLE_SIZE) if "test" in splits else (None, None)

    def _get_probe(self):
        """The probe (built on first use): the curve split's first images, else training's."""
        from slimkit.summaries.probe import Probe, probe_batch_size

        if self._probe is None:
            split = self._curve_split()[0] or (self.run.data.eval_splits or [None])[-1]
            if split is None:
                log.warning("no evaluation split: TensorBoard gets no feature maps, activation or "
                            "gradient histograms (they need a fixed probe batch)")
                self._probe = False
                return None
            n = probe_batch_size(self.run.model)
            images, labels = next(iter(self.run.data.eval_batches(split, n)))
            self._probe = Probe(self.run.model, self.run.loss_fn, self.run.model.trainable_variables,
                                np.asarray(images), np.asarray(labels))
        return self._probe or None

    def _projector(self, step):
        import keras

        from slimkit.summaries.projector import MAX_POINTS, embedding_layer, write_projector

        model, split = self.run.model, self.run.data.eval_splits[-1]
        name = embedding_layer(model)
        if name is None:
            return
        batches = first_examples(self.run.data.eval_batches(split, 250), MAX_POINTS)
        features = keras.Model(model.input, [model.end_points[name], model.output])
        images, labels, embeddings, predictions = [], [], [], []
        with self.run.averaged_weights():  # the weights the final evaluation used
            for batch, batch_labels in batches:
                embedding, logits = features(batch, training=False)
                images.append(np.asarray(batch))
                labels.append(np.asarray(batch_labels))
                embeddings.append(np.asarray(embedding, np.float32).reshape(len(batch), -1))
                predictions.append(np.argmax(np.asarray(logits), axis=-1))
        logdir = self.writers.logdir
        runs = [split] + [run for run in _runs(logdir) if run != split]
        with self.writers[split].guard("projector"):
            write_projector(logdir, runs, np.concatenate(embeddings), np.concatenate(labels),
                            np.concatenate(predictions), self.run.data.class_names,
                            np.concatenate(images), name=name)

    def _safely(self, what, fn):
        """Runs ``fn``; an error is one warning (per kind), and training goes on (STYLE rule 8)."""
        try:
            fn()
        except Exception as e:  # a picture must never end a run
            if what not in self._failed:
                self._failed.add(what)
                log.warning("could not write the TensorBoard %s (%s: %s); training goes on",
                            what, type(e).__name__, e)


_FILTERS_ABOUT = ("one tile per filter (a colour tile for an RGB input), else one grey tile per "
                  "(input channel, filter): input channels in rows, filters in columns; each tile "
                  "stretched to the full grey range on its own")


def _runs(logdir):
    """The logdir's TensorBoard runs: ``"."`` and every sub-folder holding an event file."""
    runs = ["."]
    for entry in sorted(os.scandir(logdir), key=lambda e: e.name):
        if entry.is_dir() and any("tfevents" in n for n in os.listdir(entry.path)):
            runs.append(entry.name)
    return runs


def _get(result, key, n):
    return float(result[key]) / n if key in result else None


def _keep_prob(model):
    """The keep probability of the model's first dropout layer, or None without dropout."""
    for layer in model.layers:
        if type(layer).__name__.endswith("Dropout") and hasattr(layer, "rate"):
            return 1.0 - float(layer.rate)
    return None


def _on_pixels(kernel, model):
    """Whether a dense kernel reads the input pixels directly (softmax regression's)."""
    return len(kernel.shape) == 2 and kernel.shape[0] == int(np.prod(model.input.shape[1:]))


def first_examples(batches, limit):
    """The batches holding the first ``limit`` examples (the last one cut)."""
    seen = 0
    for images, labels in batches:
        if seen >= limit:
            return
        take = min(len(labels), limit - seen)
        seen += take
        yield images[:take], labels[:take]
