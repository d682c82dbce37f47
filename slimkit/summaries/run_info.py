"""What a run is: its configuration and layers (Text dashboard) and hyperparameters (HParams).

    write_text(writers["train"], step, config_dict, model)
    write_hparams(writers["."], config_dict, precision, total_steps)

HParams: the session is the logdir itself (a small event file in its top folder, TensorBoard's run
``.``), so ``slimkit board runs/`` over several logdirs lists one row per logdir with its settings
and results. The results are scalars of that top-level run, ``hparams/test_accuracy``,
``hparams/validation_accuracy``, ... (:func:`hparam_metrics`), written at each evaluation: a
session's metrics must be in its own run or below it, and TensorBoard does not find
``./test`` when the session is the top folder ``.`` itself. Every slimkit run declares the same
hyperparameters and metrics, so the one experiment description TensorBoard reads fits them all.
"""

import json

# TrainConfig fields shown as hyperparameters (scalars only; unset ones are left out of a run).
HPARAMS = ("model", "preset", "dataset", "optimizer", "learning_rate", "lr_schedule", "batch_size",
           "steps", "epochs", "keep_prob", "weight_decay", "label_smoothing", "ema_decay",
           "augment", "precision", "seed")
METRICS = ("test_accuracy", "test_loss", "validation_accuracy", "validation_loss", "train_accuracy",
           "train_loss")
_INTEGERS = ("batch_size", "steps", "seed")
_FLOATS = ("learning_rate", "epochs", "keep_prob", "weight_decay", "label_smoothing", "ema_decay")


def layer_table(model):
    """A Markdown table of the model's layers: name, type, output shape, parameters."""
    rows = ["| layer | type | output shape | parameters |", "|---|---|---|---|"]
    for layer in model.layers:
        shape = getattr(getattr(layer, "output", None), "shape", None)
        rows.append(f"| {layer.name} | {type(layer).__name__} | {_shape(shape)} | "
                    f"{layer.count_params():,} |")
    rows.append(f"| **total** | | | **{model.count_params():,}** |")
    return "\n".join(rows)


def _shape(shape):
    if shape is None:
        return ""
    return "(" + ", ".join("N" if d is None else str(d) for d in shape) + ")"


def write_text(writer, step, config, model):
    """The resolved configuration (JSON) and the layer table, as text summaries."""
    text = "```\n" + json.dumps(config, indent=2, sort_keys=True, default=str) + "\n```"
    writer.text("config", step, text)
    writer.text("model", step, f"**{model.name}**: {model.count_params():,} parameters\n\n"
                               + layer_table(model))


def hparam_values(config):
    """The run's hyperparameters: the ``HPARAMS`` fields of ``config`` (a dict) that are set."""
    values = {}
    for key in HPARAMS:
        value = config.get(key)
        if isinstance(value, (bool, int, float, str)):
            values[key] = value
    return values


def write_hparams(writer, config, trial_id):
    """The HParams session of this run (``writer``: the logdir's top-level run)."""
    from tensorboard.plugins.hparams import api as hp

    def domain(key):
        if key in _INTEGERS:
            return hp.IntInterval(0, 2**31 - 1)
        return hp.RealInterval(0.0, 1e9) if key in _FLOATS else None

    values = hparam_values(config)
    with writer.at_step(0, "hparams") as on:
        if on:
            hp.hparams_config(hparams=[hp.HParam(k, domain(k)) for k in HPARAMS],
                              metrics=[hp.Metric(f"hparams/{name}",
                                                 display_name=name.replace("_", " "))
                                       for name in METRICS])
            hp.hparams(values, trial_id=trial_id)


def hparam_metrics(split, metrics):
    """The top-level run's scalars for an evaluation of ``split``: ``{"hparams/test_accuracy": ..}``."""
    return {f"hparams/{split}_{key}": metrics[key] for key in ("accuracy", "loss") if key in metrics}
