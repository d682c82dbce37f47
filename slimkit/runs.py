"""Load a training run: its model with the trained (or EMA) weights, configuration and class names.

    >>> run = load_run("runs/deep-mnist-fast")          # a logdir: its newest checkpoint
    >>> run.global_step, run.checkpoint, run.class_names[:3], run.image_shape
    (704, 'runs/deep-mnist-fast/ckpt-704', ('0', '1', '2'), (28, 28, 1))
    >>> logits = run.model(images)                       # a keras.Model, weights restored

``eval``, ``predict``, ``inspect`` and ``export`` all load runs through :func:`load_run`, so they
read the same things the same way:

- the model is rebuilt from ``config.json`` (model, dropout and weight-decay settings, number of
  classes and image shape of the data it was trained on) in the precision the run trained in: the
  saved one, never ``auto`` re-resolved on this machine (only a logdir saved before precisions
  were resolved holds ``auto``);
- the checkpoint is a logdir's newest, or a kept one named by its prefix (``runs/x/ckpt-500``,
  ``runs/x/best/ckpt-900``; a tab-completed ``ckpt-500.index`` works too);
- the moving-average weights are loaded into the model where the run kept them (``ema_decay``),
  as TF-Slim's ``eval_image_classifier.py --moving_average_decay`` does;
- ``restore(...).expect_partial()`` alone would leave any weight the checkpoint lacks at its
  initial value without a word; here every weight of the model must come from the checkpoint,
  or the error says which model the checkpoint seems to hold.

Every problem is one exception naming the file and the fix (the CLI prints it as one line and
exits 2): no checkpoint, no ``config.json``, a checkpoint of another model, a truncated or
corrupt checkpoint (``PermissionError`` for one this user may not read).

``build_model`` is here too: the training loop builds its model with it, so a run is rebuilt for
evaluation exactly as it was built for training.
"""

import dataclasses
import inspect
import pathlib
import re
import typing

from slimkit.training.data import FOLDER


@dataclasses.dataclass
class Run:
    """A model with the weights of one checkpoint of a training run (or its initial weights).

    Attributes:
        model: The ``keras.Model`` (logits out), weights restored; EMA weights if ``ema``.
        config: The run's :class:`~slimkit.training.config.TrainConfig` from ``config.json``.
        class_names: Names of the classes, index = label.
        image_shape: (H, W, C) of the model's input.
        global_step: The checkpoint's global step (0 with ``at_init``).
        checkpoint: The checkpoint prefix restored, or None (``at_init``).
        logdir: The run's logdir (the folder holding ``config.json``).
        ema: Whether the model holds the moving-average weights.
        precision: ``fp32`` or ``bf16``, as the run trained.
    """

    model: typing.Any
    config: typing.Any
    class_names: tuple
    image_shape: tuple
    global_step: int
    checkpoint: typing.Optional[str]
    logdir: pathlib.Path
    ema: bool
    precision: str
    _ema: typing.Any = dataclasses.field(default=None, repr=False)
    _data: typing.Any = dataclasses.field(default=None, repr=False)

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def mnist_type(self):
        """True for a model of an MNIST-format dataset (28x28 grey digits or clothes)."""
        return self.config.dataset != FOLDER

    def data(self):
        """The run's dataset (:class:`~slimkit.training.data.TrainingData`, no training feed).

        Raises:
            ValueError: If the data found now has other classes or another image shape than the
                run was trained on (e.g. ``--data-dir`` names another folder).
        """
        if self._data is None:
            from slimkit.training.data import load_training_data

            data = load_training_data(self.config, self.image_shape, train_feed=False)
            found = (tuple(data.class_names), tuple(data.image_shape))
            if found != (self.class_names, self.image_shape):
                raise ValueError(
                    f"The data at {self.config.data_dir or self.config.dataset} is not what "
                    f"{self.logdir} was trained on: classes {list(found[0])} of shape "
                    f"{_shape(found[1])}, expected {list(self.class_names)} of shape "
                    f"{_shape(self.image_shape)}. Pass --data-dir with the run's data.")
            self._data = data
        return self._data

    def restore(self, checkpoint):
        """Loads another checkpoint of the run (e.g. a newer one) into :attr:`model`.

        Raises:
            ValueError, PermissionError: As :func:`load_run`.
        """
        self.global_step, self.ema = _restore(self.model, self._ema, checkpoint, self.config,
                                              self.logdir, use_ema=self._ema is not None)
        self.checkpoint = checkpoint


def load_run(path, data_dir=None, at_init=False, use_ema=True):
    """Loads a training run's model, configuration and class names.

    Args:
        path: A logdir (its newest checkpoint) or a checkpoint prefix such as
            ``runs/lenet/ckpt-2000`` or ``runs/lenet/best/ckpt-900``.
        data_dir: Where the run's dataset is now, if it moved (only :meth:`Run.data` reads it).
        at_init: Build the untrained model instead, initialized as training initializes it (the
            run's seed); no checkpoint is read.
        use_ema: Load the moving-average weights where the checkpoint has them.

    Returns:
        A :class:`Run`.

    Raises:
        FileNotFoundError: If ``path`` does not exist, holds no checkpoint or has no
            ``config.json``.
        ValueError: If the checkpoint holds another model than ``config.json`` names, or its
            files are truncated or corrupt; ``config.json`` unreadable.
        PermissionError: If a checkpoint file may not be read by this user.

    Example:
        >>> run = load_run("runs/mnist-softmax-tutorial/ckpt-500")
        >>> run.global_step, run.model.name
        (500, 'softmax_regression')
    """
    from slimkit.training.checkpoints import latest_checkpoint
    from slimkit.training.runtime import choose_precision, precision_policy

    checkpoint, logdir = _locate(pathlib.Path(path), at_init)
    config = _load_config(logdir, data_dir)
    class_names, image_shape = _identity(config, logdir)
    precision = choose_precision(config.precision, config.model)[0]  # `auto`: old logdirs only
    shape = _Shape(len(class_names), image_shape)
    with precision_policy(precision):  # as in training; the caller's policy is left alone
        form = trained_form(logdir, config, checkpoint or latest_checkpoint(logdir), shape)
        if form is not None:  # as the run trained it, whatever the model's defaults are now
            config = dataclasses.replace(config, model_kwargs=form)
        if at_init:  # (after trained_form, whose trial builds draw random numbers)
            import keras

            keras.utils.set_random_seed(config.seed)  # the weights training started from
        model = build_model(config, shape)
    ema = None
    if config.ema_decay and use_ema:
        from slimkit.training.ema import ExponentialMovingAverage

        ema = ExponentialMovingAverage(model, config.ema_decay)
    run = Run(model, config, class_names, image_shape, 0, None, logdir, False, precision, ema)
    if checkpoint is not None:
        run.restore(checkpoint)
    return run


def as_run(run):
    """``run`` itself if it is a :class:`Run`, else :func:`load_run` of it (a path)."""
    return run if isinstance(run, Run) else load_run(run)


def build_model(config, data):
    """Builds ``config.model`` for ``data`` with the run's dropout and weight-decay settings.

    Args:
        config: A :class:`~slimkit.training.config.TrainConfig`.
        data: Anything with ``num_classes`` and ``image_shape`` (H, W, C), e.g. the
            :class:`~slimkit.training.data.TrainingData`.

    ``keep_prob`` goes to the model's ``dropout_keep_prob`` (or ``keep_prob``) argument;
    ``weight_decay`` to its arg scope (0 with ``adamw``, whose decay is the optimizer's).
    """
    from slimkit.models.registry import get_model, get_model_spec
    from slimkit.training.optimizers import decoupled_weight_decay

    spec = get_model_spec(config.model)
    kwargs = dict(config.model_kwargs)
    model_params = inspect.signature(spec.fn).parameters
    if config.keep_prob is not None:
        name = next((p for p in ("dropout_keep_prob", "keep_prob") if p in model_params), None)
        if name is None:
            raise ValueError(f"Invalid setting `keep_prob` for model `{config.model}`: it has no "
                             "dropout. Expected keep_prob unset (None).")
        kwargs[name] = config.keep_prob
    decay = 0.0 if decoupled_weight_decay(config) else config.weight_decay
    scope_params = inspect.signature(spec.arg_scope_fn).parameters if spec.arg_scope_fn else {}
    if decay is not None and "weight_decay" in scope_params:
        kwargs["weight_decay"] = decay
    elif decay:
        raise ValueError(f"Invalid setting `weight_decay` for model `{config.model}`: it has no "
                         "weight regularizers. Expected weight_decay unset, or optimizer 'adamw' "
                         "(decoupled decay).")
    return get_model(config.model, num_classes=data.num_classes, input_shape=data.image_shape,
                     **kwargs)


@dataclasses.dataclass
class _Shape:
    num_classes: int
    image_shape: tuple


# ---------------------------------------------------------------------------- finding the files
def _locate(path, at_init):
    """``(checkpoint prefix or None, logdir)`` of a logdir or checkpoint path."""
    from slimkit.training.checkpoints import BEST_DIR, latest_checkpoint

    name = path.name
    for suffix in (".index", ".data-00000-of-00001"):  # a tab-completed file of the checkpoint
        if name.endswith(suffix) and path.is_file():
            path = path.with_name(name[:-len(suffix)])
    if not path.is_dir() and not pathlib.Path(f"{path}.index").is_file():
        near = _checkpoints_in(path.parent) if path.parent.is_dir() else []
        hint = f" Checkpoints in {path.parent}: {', '.join(near)}." if near else ""
        raise FileNotFoundError(f"No checkpoint found at {path}: no such logdir or checkpoint. "
                                "Expected a logdir written by `slimkit train` or a checkpoint "
                                f"prefix such as runs/lenet/ckpt-2000.{hint}")
    folder = path if path.is_dir() else path.parent
    if folder.name == BEST_DIR and not (folder / "config.json").is_file():
        folder = folder.parent  # runs/x/best/ckpt-N: the run's config is in runs/x
    if at_init:
        return None, folder
    checkpoint = latest_checkpoint(path)
    if checkpoint is None:
        raise FileNotFoundError(f"No checkpoint found in {path}. Expected a logdir that "
                                "`slimkit train` has saved a checkpoint into (a `checkpoint` file "
                                f"and ckpt-N.index files): train first (`slimkit train --logdir "
                                f"{path}`), or name a checkpoint prefix such as "
                                "runs/lenet/ckpt-2000.")
    return checkpoint, folder


def _checkpoints_in(folder):
    return sorted((p.name[:-len(".index")] for p in folder.glob("ckpt-*.index")),
                  key=lambda name: _number(name))


def _number(path):
    tail = str(path).rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def _load_config(logdir, data_dir):
    from slimkit.training.config import TrainConfig
    from slimkit.training.saved_config import load_saved_config

    saved = load_saved_config(logdir)
    if saved is None:
        raise FileNotFoundError(f"No config.json in {logdir}: it is needed to rebuild the model. "
                                "Expected the logdir of a `slimkit train` run, which writes it "
                                "beside its checkpoints; copy the run's config.json there.")
    if data_dir is not None:
        saved["data_dir"] = str(data_dir)
    return TrainConfig(**saved)


def _identity(config, logdir):
    """``(class names, image shape)`` the run was trained on: from ``config.json``, else the data."""
    from slimkit.training.saved_config import DATA_KEY, read_saved

    identity = (read_saved(logdir) or {}).get(DATA_KEY)
    if isinstance(identity, dict) and identity.get("class_names") and identity.get("image_shape"):
        return tuple(identity["class_names"]), tuple(int(d) for d in identity["image_shape"])
    if config.dataset != FOLDER:  # a logdir saved before the identity was recorded
        from slimkit.data.registry import get_dataset_info

        info = get_dataset_info(config.dataset)
        return tuple(info.class_names), tuple(info.image_shape)
    from slimkit.models.registry import get_model_spec
    from slimkit.training.data import load_training_data

    data = load_training_data(config, get_model_spec(config.model).input_shape, train_feed=False)
    return tuple(data.class_names), tuple(data.image_shape)


# ---------------------------------------------------------------------------- restoring
def _restore(model, ema, checkpoint, config, logdir, use_ema):
    """Restores ``checkpoint`` into ``model`` (every weight); returns ``(global step, ema used)``."""
    import tensorflow as tf

    from slimkit.training.checkpoints import has_object, read_errors_reported

    with read_errors_reported(checkpoint, lambda reason: _corrupt_message(checkpoint, reason)):
        with_ema = bool(use_ema and ema is not None and has_object(checkpoint, "ema"))
        global_step = tf.Variable(0, dtype=tf.int64)
        objects = {"model": model, "global_step": global_step}
        if with_ema:
            objects["ema"] = ema
        try:
            status = tf.train.Checkpoint(**objects).restore(checkpoint)
        except ValueError as e:  # a weight of another shape ("Received incompatible tensor ...")
            raise ValueError(_other_model_message(checkpoint, config, logdir, model,
                                                  f"its weights have other shapes ({_line(e)})"))
        status.expect_partial()  # the optimizer, data position, ... are not needed here
        try:
            status.assert_existing_objects_matched()
        except AssertionError as e:  # TF names the unmatched variables: <Variable path=conv1/kernel
            named = set(re.findall(r"path=([^,>\s]+)", str(e)))
            missing = [w.path for w in model.weights if w.path in named]  # in the model's order
            count = re.search(r"Found (\d+) Python objects", str(e))
            what = f"{count.group(1)} of the model's weights" if count else "model weights"
            listed = f" ({', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''})" \
                if missing else ""
            raise ValueError(_other_model_message(checkpoint, config, logdir, model,
                                                  f"{what}{listed} have no value in it")) from None
    if with_ema:  # the averages become the model's weights (Slim's variables_to_restore)
        from slimkit.training.ema import averaged_variables

        for variable, shadow in zip(averaged_variables(model), ema.shadows):
            variable.assign(shadow)
    return int(global_step.numpy()), with_ema


def trained_form(logdir, config, checkpoint, data):
    """The ``model_kwargs`` that rebuild the model a logdir's run trained, or None.

    A run records its model's whole form in ``config.json`` (``model_form``, see
    ``slimkit.models.registry.model_form``): that is it, whatever the model's defaults are now.
    A ``config.json`` without it (written before 2026-12-06 12:04 UTC, when the record began)
    holds only the ``model_kwargs`` given; for a model whose defaults have changed since
    (``ModelSpec.earlier_forms``) the run trained an earlier form: the newest one whose weight
    shapes are ``checkpoint``'s, with those ``model_kwargs`` over it. (Shapes cannot tell apart
    forms that differ only in a stride: a mnist_speedrun run of 2026-12-06 11:37-12:04 UTC, the
    new defaults without the record, given ``conv2`` but not ``conv1_stride``, is read as the
    earlier form.)

    Args:
        logdir: The run's logdir (its ``config.json``).
        config: The run's :class:`~slimkit.training.config.TrainConfig` as saved there.
        checkpoint: A checkpoint prefix of the run, or None if it has none.
        data: Anything with ``num_classes`` and ``image_shape``, as for :func:`build_model`.

    Returns:
        A dict for ``config.model_kwargs`` (the given ones, the form over them); None if
        ``config.json`` records no form and none of the model's earlier forms is the checkpoint's
        (or there is no checkpoint to tell).

    Example:
        >>> trained_form("runs/speedrun-2026-12-01", config, "runs/speedrun-2026-12-01/ckpt-469",
        ...              data)
        {'conv1_stride': 1, 'conv2': 64}
    """
    import tensorflow as tf

    from slimkit.models.registry import get_model_spec
    from slimkit.training.saved_config import FORM_KEY, read_saved

    saved = read_saved(logdir) or {}
    if isinstance(saved.get(FORM_KEY), dict):
        return {**config.model_kwargs, **saved[FORM_KEY]}
    forms = get_model_spec(config.model).earlier_forms
    if not forms or checkpoint is None:
        return None
    try:
        shapes = sorted(_model_shapes(checkpoint))
    except (tf.errors.OpError, ValueError, KeyError, StopIteration, IndexError, OSError):
        return None  # unreadable: restoring it reports why
    for _, kwargs in forms:
        kwargs = {**kwargs, **config.model_kwargs}
        try:
            candidate = build_model(dataclasses.replace(config, model_kwargs=kwargs), data)
        except (ValueError, TypeError):  # e.g. an input too small for that form's pools
            continue
        if _float_shapes(candidate) == shapes:
            return kwargs
    return None


def _float_shapes(model):
    import tensorflow as tf

    return sorted(tuple(w.shape) for w in model.weights if tf.as_dtype(w.dtype).is_floating)


def _other_model_message(checkpoint, config, logdir, model, why):
    guess = _guess_model(checkpoint, config, model)
    return (f"Checkpoint {checkpoint} does not hold the `{config.model}` model that "
            f"{pathlib.Path(logdir) / 'config.json'} names: {why}. {guess}Expected a checkpoint "
            "of the run that config.json describes: pass the logdir the checkpoint was trained "
            "in, or put that run's config.json beside it.")


def _guess_model(checkpoint, config, model):
    """'It seems to hold a `lenet` model. ' (a registered model whose weights match), or ''."""
    import tensorflow as tf

    from slimkit.models.registry import get_model, list_models

    try:
        shapes = sorted(_model_shapes(checkpoint))
    except (tf.errors.OpError, ValueError, KeyError):
        return ""
    if not shapes:
        return "It holds no model weights at all. "
    image_shape = tuple(model.input.shape[1:])
    matches = []
    for name in list_models():
        if name == config.model:
            continue
        try:
            candidate = get_model(name, num_classes=int(model.output.shape[-1]),
                                  input_shape=image_shape)
        except (ValueError, TypeError):  # e.g. AlexNet cannot take 28x28 images
            continue
        if _float_shapes(candidate) == shapes:
            matches.append(name)
    if matches:  # (deep_mnist and lenet have the same weights: either may be it)
        return f"It seems to hold a `{'` or `'.join(matches)}` model. "
    total = sum(int(_product(s)) for s in shapes)
    return (f"It holds {len(shapes)} weight tensors ({total:,} parameters) that match no "
            f"registered model for {_shape(image_shape)} images. ")


def _model_shapes(checkpoint):
    """Shapes of the variables the checkpoint holds under its ``model`` object."""
    import tensorflow as tf
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    reader = tf.train.load_checkpoint(checkpoint)
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    root = next(c.node_id for c in graph.nodes[0].children if c.local_name == "model")
    shapes, seen, todo = reader.get_variable_to_shape_map(), set(), [root]
    found = []
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        for attribute in graph.nodes[node].attributes:
            if attribute.name == "VARIABLE_VALUE" and \
                    reader.get_variable_to_dtype_map()[attribute.checkpoint_key].is_floating:
                found.append(tuple(shapes[attribute.checkpoint_key]))
        todo.extend(c.node_id for c in graph.nodes[node].children)
    return found


def _product(shape):
    result = 1
    for d in shape:
        result *= d
    return result


def _corrupt_message(checkpoint, reason):
    from slimkit.training.checkpoints import logdir_checkpoints

    folder = pathlib.Path(checkpoint).parent
    earlier = [p for p in logdir_checkpoints(folder) if _number(p) < _number(checkpoint)
               and pathlib.Path(f"{p}.index").is_file()]
    fix = (f"Name an earlier checkpoint instead, e.g. {earlier[-1]}" if earlier else
           f"There is no earlier checkpoint in {folder}: train again to write a new one")
    return (f"Cannot read checkpoint {checkpoint}: its files are corrupt or incomplete "
            f"({reason}). {fix}; nothing was changed or deleted.")


def _line(error):
    return " ".join(str(error).split())[:300]


def _shape(shape):
    return "x".join(str(d) for d in shape)
