"""The configuration a logdir holds (``config.json``), and the checks a later run must pass against it.

A run writes its resolved :class:`~slimkit.training.config.TrainConfig` to ``<logdir>/config.json``
once its checkpoint is restored (or warm-started), never before: a run refused at start-up leaves
the logdir's file as it was. Beside the settings the file records the identity of the data the
checkpoints were trained on (``data_identity``: dataset, number and names of the classes, image
shape, number of training examples), because the settings alone do not pin it: ``--data-dir`` may
name another copy of the same files on another machine, or another image folder altogether. The
number of training examples matters because a checkpoint's data position ``(epoch, offset)``
points into the training array: another ``--validation-size`` makes it another array.

A later run in the logdir is refused, before anything is written, if it names another model or
dataset (:func:`check_compatible`) or another form of the model (:func:`check_same_form`), before
the data is loaded, or brings other data (:func:`check_same_data`, once it is loaded)::

    check_compatible(config, logdir)
    check_same_form(config, logdir)
    data = load_training_data(config, ...)
    check_same_data(config, data, logdir)
    ...  # restore
    save_config(config, logdir, data)
"""

import dataclasses
import json
import pathlib
import types

from slimkit.writing import write_text_atomically

CONFIG_NAME = "config.json"
DATA_KEY = "data_identity"  # not a TrainConfig field: dropped by load_saved_config
FORM_KEY = "model_form"  # the model's arguments, defaults included (registry.model_form); ditto
# Settings a logdir's checkpoints depend on: resuming with other values is refused.
IDENTITY_KEYS = ("model", "dataset")


def data_identity(config, data):
    """What the checkpoints depend on in ``data`` (a ``slimkit.training.data.TrainingData``)."""
    return {"dataset": config.dataset, "num_classes": int(data.num_classes),
            "class_names": [str(name) for name in data.class_names],
            "image_shape": [int(d) for d in data.image_shape], "num_train": int(data.num_train)}


def save_config(config, logdir, data=None, notes=None):
    """Writes ``config``, the model's whole form (``model_form``: its arguments with their defaults,
    so that its checkpoints rebuild if the defaults change) and the identity of ``data`` (if
    given) to ``<logdir>/config.json``.

    Args:
        config: The run's :class:`~slimkit.training.config.TrainConfig` (its precision resolved).
        logdir: The logdir.
        data: The loaded data, whose identity is recorded (``data_identity``).
        notes: More keys to record that are not settings (e.g. ``precision_reason``); a later run
            ignores them.

    The file is replaced atomically, so a reader never sees half of it.

    Raises:
        slimkit.writing.WriteFaultError: If it cannot be written (full disk, permission,
            read-only file system, ...): the old file stays as it was, and the message names the
            cause, the fix and the checkpoint the logdir resumes from.
    """
    from slimkit.models.registry import model_form
    from slimkit.training.checkpoints import resume_sentence

    logdir = pathlib.Path(logdir)
    logdir.mkdir(parents=True, exist_ok=True)
    values = config.to_dict()
    values[FORM_KEY] = model_form(config.model, config.model_kwargs)
    if data is not None:
        values[DATA_KEY] = data_identity(config, data)
    values.update(notes or {})
    write_text_atomically(logdir / CONFIG_NAME, json.dumps(values, indent=2, sort_keys=True) + "\n",
                          f"Training did not start and no checkpoint changed: "
                          f"{resume_sentence(logdir)}", instead="use a --logdir elsewhere")


def read_saved(logdir):
    """Everything in ``<logdir>/config.json`` (settings and ``data_identity``), or None.

    Raises:
        ValueError: If the file is not a JSON object; the message names it and says how to fix it.
    """
    path = pathlib.Path(logdir) / CONFIG_NAME
    if not path.is_file():
        return None
    try:
        values = json.loads(path.read_text())
        problem = None if isinstance(values, dict) else f"it holds a {type(values).__name__}"
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        problem = f"it is not valid JSON ({e})"
    if problem:
        raise ValueError(f"Cannot read {path}: {problem}. Expected the JSON object of TrainConfig "
                         "settings that `slimkit train` saved there. Repair the file, or remove "
                         "it to train on in this logdir with this run's settings (they are saved "
                         "anew), or use another --logdir.")
    return values


def load_saved_config(logdir):
    """The TrainConfig keys saved in ``<logdir>/config.json`` (a dict), or None if there is none.

    Raises:
        ValueError: If the file is corrupt (see :func:`read_saved`).
    """
    from slimkit.training.config import field_names

    values = read_saved(logdir)
    if values is None:
        return None
    # A config saved by a newer slimkit may hold keys this one lacks: keep what it knows.
    known = field_names()
    return {k: v for k, v in values.items() if k in known}


def check_compatible(config, logdir):
    """Refuses to train into a logdir whose saved run has another model or dataset.

    Raises:
        ValueError: Naming the differing keys and the two ways out (another logdir, or the same
            settings).
    """
    saved = load_saved_config(logdir)
    if saved is None:
        return
    differ = [k for k in IDENTITY_KEYS if saved.get(k) != getattr(config, k)]
    if differ:
        what = ", ".join(f"{k}={saved.get(k)!r} (this run: {getattr(config, k)!r})" for k in differ)
        raise ValueError(f"Logdir {str(logdir)!r} holds a run with {what}; its checkpoints cannot "
                         "be resumed by this run. Use another --logdir, or the same "
                         f"{' and '.join(differ)} to resume it.")


def check_same_data(config, data, logdir):
    """Refuses to resume a logdir's run on other data (other classes, image shape or training set).

    ``--data-dir`` itself may differ (the same files elsewhere); the classes, image shape and
    number of training examples may not. A logdir saved before the data identity was recorded is
    not checked, nor one saved before ``num_train`` was recorded for that key.

    Raises:
        ValueError: Naming what differs, what the logdir holds, and the fix (another --logdir).
    """
    from slimkit.training.data import FOLDER

    saved = read_saved(logdir)
    if not saved or not isinstance(saved.get(DATA_KEY), dict):
        return
    before, now = saved[DATA_KEY], data_identity(config, data)
    differ = [k for k in ("num_classes", "class_names", "image_shape") if before.get(k) != now[k]]
    if "num_train" in before and before["num_train"] != now["num_train"]:  # (older logdirs lack it)
        differ.append("num_train")
    if not differ:
        return
    names = {"num_classes": "number of classes", "class_names": "class names",
             "image_shape": "image shape", "num_train": "number of training examples"}
    what = "; ".join(f"{names[k]} {_show(before.get(k))} (this run's data: {_show(now[k])})"
                     for k in differ)
    fix = ""
    if differ == ["image_shape"]:
        fix = " (or --image-size of the logdir's run)"
    elif differ == ["num_train"] and config.dataset != FOLDER and "validation_size" in saved:
        fix = f" (or its --validation-size {saved['validation_size']})"
    where = f" (it was trained with --data-dir {saved['data_dir']})" if saved.get("data_dir") else ""
    raise ValueError(f"Logdir {str(logdir)!r} holds a run trained on other data: {what}. Its "
                     f"checkpoints cannot be resumed on this data{where}. Use another --logdir for "
                     f"this data, or the data the logdir's run was trained on{fix} to resume it.")


def _show(value):
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return "x".join(str(v) for v in value)  # an image shape: 28x28x3
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)


def check_same_form(config, logdir):
    """Refuses to train on in a logdir whose checkpoints hold another form of the model.

    The form is the model function's own arguments (``slimkit.models.registry.model_form``): the
    one ``config.json`` records, or, for a ``config.json`` written before the record began, the
    earlier form of the model its checkpoint holds (``slimkit.runs.trained_form``). A logdir with
    neither (no record, and a model whose defaults never changed) is not checked here.

    Raises:
        ValueError: Naming both forms, the ``--model-kwargs`` that resume the logdir's run, and
            that nothing was changed.
    """
    from slimkit.models.registry import get_model_spec, model_form
    from slimkit.runs import trained_form
    from slimkit.training.checkpoints import latest_checkpoint

    path = latest_checkpoint(logdir)
    saved = read_saved(logdir) if path is not None else None
    if not saved or saved.get("model") != config.model:
        return  # nothing to resume (or another model: check_compatible says so)
    identity = saved.get(DATA_KEY) if isinstance(saved.get(DATA_KEY), dict) else {}
    given = saved.get("model_kwargs") if isinstance(saved.get("model_kwargs"), dict) else {}
    spec = get_model_spec(config.model)
    data = types.SimpleNamespace(  # what build_model needs of the data
        num_classes=int(identity.get("num_classes") or spec.num_classes),
        image_shape=tuple(identity.get("image_shape") or spec.input_shape))
    kwargs = trained_form(logdir, dataclasses.replace(config, model_kwargs=dict(given)), path, data)
    if kwargs is None:
        return
    theirs, ours = model_form(config.model, kwargs), model_form(config.model, config.model_kwargs)
    if theirs == ours:
        return
    differ = [k for k in sorted(set(theirs) | set(ours)) if theirs.get(k) != ours.get(k)]
    defaults = model_form(config.model)
    flags = ",".join(f"{k}={_flag_value(v)}" for k, v in sorted(theirs.items())
                     if defaults.get(k) != v)
    how = f"Pass --model-kwargs {flags}" if flags else "Leave out --model-kwargs"
    raise ValueError(
        f"Cannot resume from {path}: it holds `{config.model}` with "
        f"{', '.join(f'{k}={_flag_value(theirs.get(k))}' for k in differ)}, and this run builds "
        f"it with {', '.join(f'{k}={_flag_value(ours.get(k))}' for k in differ)}. {how} to train "
        "on in this logdir, or use another --logdir. Nothing in the logdir was changed.")


def _flag_value(value):
    """A model argument as ``--model-kwargs`` reads it back (strings bare, the rest JSON)."""
    return value if isinstance(value, str) else json.dumps(value)
