"""Warm-start a model from a checkpoint, leaving out some scopes, and train only some others.

TF-Slim's fine-tuning recipe, e.g. AlexNet trained on one image folder, re-trained on another
with a new number of classes::

    model = get_model("alexnet", num_classes=5)
    print(restore_for_finetuning(model, "runs/alexnet-flowers", exclude_scopes=["fc8"]))
    variables = select_trainable(model, ["fc7", "fc8"])   # what the optimizer updates

How variables are matched. Neither TensorFlow's object-based checkpoints (keys are object-graph
paths such as ``model/_operations/6/_kernel``) nor Keras' ``.weights.h5`` files (groups such as
``layers/dense_1``, named after layer classes) record layer names. Both record the model's
*structure*, so the checkpoint's layers are aligned with this model's layers in order, and then
named, reported and filtered by this model's layer names (its slim scopes: ``conv1``, ``fc8``...).
The checkpoint must therefore come from the same architecture; layer *shapes* may differ (a new
number of classes), and every variable whose shape differs, or which the checkpoint lacks, is
reported by name unless excluded. A scope matches a variable whose path (``fc8/kernel``) starts
with it, as in TF-Slim, so ``conv3`` covers ``conv3_1``, ``conv3_2`` of a ``slim.repeat``.

Only model variables are restored (weights and batch-norm statistics), not the optimizer's slots
or the global step: fine-tuning starts a new run at step 0.
"""

import os
import re

import numpy as np
import tensorflow as tf

_KERAS_WEIGHTS = (".weights.h5", ".h5")


def restore_for_finetuning(model, path, exclude_scopes=()):
    """Restores ``model``'s variables from ``path``, except those under ``exclude_scopes``.

    Nothing is assigned unless every non-excluded variable can be restored.

    Args:
        model: The freshly built Keras model to warm-start (e.g. from ``slimkit.get_model``).
        path: A slimkit logdir (its latest checkpoint), a checkpoint prefix such as
            ``runs/x/ckpt-1000``, or a Keras weights file ending in ``.weights.h5``.
        exclude_scopes: Scopes (layer-name prefixes, e.g. ``["fc8"]``) whose variables keep their
            fresh initialization.

    Returns:
        A one-line summary of what was restored and what kept its initialization.

    Raises:
        FileNotFoundError: If ``path`` holds no checkpoint.
        ValueError: If a scope matches no variable (the message lists the model's scopes), if
            the checkpoint is of another architecture, or if non-excluded variables are missing
            from the checkpoint or have other shapes (each named with both shapes, and the
            ``--checkpoint-exclude-scopes`` that would leave them out), or if its files are
            corrupt (truncated, or not a checkpoint at all): the message names the file.
        PermissionError: If a file of the checkpoint may not be read by this user (naming it).

    Example:
        >>> model = slimkit.get_model("lenet", num_classes=5)
        >>> restore_for_finetuning(model, "runs/lenet-mnist", exclude_scopes=["fc4"])
        'restored 6 variables (conv1, conv3, fc3) from runs/lenet-mnist/ckpt-2000; kept the fresh initialization of 2 under fc4'
    """
    exclude_scopes = _check_scopes(model, exclude_scopes, "checkpoint_exclude_scopes", model.weights)
    with _readable(path):
        source, pairs = _read_source(model, path)
    restore, excluded, problems = [], [], []
    for variable, entry in pairs:
        name = variable.path
        if any(name.startswith(scope) for scope in exclude_scopes):
            excluded.append(variable)
        elif entry is None:
            problems.append(f"{name} {_shape(variable.shape)} is not in the checkpoint")
        elif tuple(entry[0]) != tuple(variable.shape):
            problems.append(f"{name} has shape {_shape(entry[0])} in the checkpoint but "
                            f"{_shape(variable.shape)} in the model")
        else:
            restore.append((variable, entry[1]))
    if problems:
        scopes = sorted({_top_scope(p.split(" ", 1)[0]) for p in problems})
        raise ValueError(
            f"Cannot warm-start from {source}: {'; '.join(problems)}. Leave these layers' fresh "
            f"initialization with --checkpoint-exclude-scopes {','.join(scopes)} (in Python, "
            f"checkpoint_exclude_scopes={scopes!r}), or use a checkpoint of the same model.")
    with _readable(path):
        values = [(variable, load()) for variable, load in restore]  # all read before any assign
    for variable, value in values:
        variable.assign(value)
    restored_layers = ", ".join(dict.fromkeys(_top_scope(v.path) for v, _ in restore))
    text = f"restored {len(restore)} variables ({restored_layers or 'none'}) from {source}"
    if excluded:
        text += (f"; kept the fresh initialization of {len(excluded)} under "
                 f"{', '.join(exclude_scopes)}")
    return text


def select_trainable(model, trainable_scopes):
    """The model's trainable variables under ``trainable_scopes`` (all of them if empty).

    Args:
        model: A Keras model.
        trainable_scopes: Scopes (layer-name prefixes, e.g. ``["fc7", "fc8"]``), or None/empty.

    Returns:
        A list of variables, in the model's order.

    Raises:
        ValueError: If a scope matches none of the model's trainable variables; the message
            lists the model's trainable scopes.

    Example:
        >>> [v.path for v in select_trainable(slimkit.get_model("deep_mnist"), ["fc2"])]
        ['fc2/kernel', 'fc2/bias']
    """
    variables = list(model.trainable_variables)
    if not trainable_scopes:
        return variables
    scopes = _check_scopes(model, trainable_scopes, "trainable_scopes", variables)
    return [v for v in variables if any(v.path.startswith(scope) for scope in scopes)]


def _readable(path):
    """Context: a corrupt checkpoint or weights file as one clear ValueError naming it (a file this
    user may not read: a PermissionError; see ``checkpoints.read_errors_reported``)."""
    from slimkit.training.checkpoints import read_errors_reported

    path = os.fspath(path)

    def corrupt(reason):
        if path.endswith(_KERAS_WEIGHTS):
            return (f"Cannot read Keras weights file {path}: {reason}. It is corrupt or not a "
                    "weights file (a cut-off download or copy, another format). Expected a file "
                    "written by model.save_weights('name.weights.h5'); pass an intact one to "
                    "--checkpoint-path.")
        prefix = tf.train.latest_checkpoint(path) if os.path.isdir(path) else path
        return (f"Cannot read checkpoint {prefix}: its files ({prefix}.index, "
                f"{prefix}.data-00000-of-00001) are corrupt or incomplete ({reason}). Expected an "
                "intact TensorFlow checkpoint; pass another to --checkpoint-path (e.g. an earlier "
                "ckpt-N of the same run).")

    return read_errors_reported(path, corrupt)


def _check_scopes(model, scopes, argument, variables):
    if isinstance(scopes, str):
        scopes = [s for s in scopes.split(",") if s]
    scopes = [str(s).strip() for s in scopes or ()]
    known = list(dict.fromkeys(_top_scope(v.path) for v in variables))
    unknown = [s for s in scopes if not any(v.path.startswith(s) for v in variables)]
    if unknown or "" in scopes:
        raise ValueError(f"Invalid value for argument `{argument}`: scope(s) {unknown!r} match no "
                         f"variable of model {model.name!r}. Expected layer-name prefixes among its "
                         f"scopes: {', '.join(known)}.")
    return scopes


def _top_scope(path):
    return path.split("/", 1)[0]


def _shape(shape):
    return "(" + ", ".join(str(d) for d in shape) + (",)" if len(shape) == 1 else ")")


def _read_source(model, path):
    """(description of the source, [(variable, (shape, load_fn) or None)] for every model weight)."""
    path = os.fspath(path)
    if path.endswith(_KERAS_WEIGHTS):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Keras weights file not found: {path}. Expected a file written by "
                                    "model.save_weights('name.weights.h5').")
        return path, _pairs_from_keras_weights(model, path)
    prefix = _checkpoint_prefix(path)
    return prefix, _pairs_from_tf_checkpoint(model, prefix)


def _checkpoint_prefix(path):
    if os.path.isdir(path):
        prefix = tf.train.latest_checkpoint(path)
        if prefix is None:
            raise FileNotFoundError(f"No checkpoint in {path}: expected a slimkit logdir with a "
                                    "`checkpoint` file, a checkpoint prefix such as "
                                    f"{os.path.join(path, 'ckpt-1000')}, or a .weights.h5 file.")
        return prefix
    if not os.path.exists(path + ".index"):
        raise FileNotFoundError(f"No checkpoint at {path}: expected a slimkit logdir, a checkpoint "
                                f"prefix (a file {path}.index beside {path}.data-00000-of-00001), or "
                                "a Keras .weights.h5 file.")
    return path


def _pairs_from_tf_checkpoint(model, prefix):
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    reader = tf.train.load_checkpoint(prefix)
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    nodes = graph.nodes

    def child(node_id, name):
        return next((c.node_id for c in nodes[node_id].children if c.local_name == name), None)

    model_node = child(0, "model")
    layers_node = child(model_node, "_operations") if model_node is not None else None
    if layers_node is None:
        raise ValueError(f"{prefix} is not a checkpoint of a Keras functional model: it has no "
                         "`model/_operations` (top-level objects: "
                         f"{', '.join(c.local_name for c in nodes[0].children)}). Expected a slimkit "
                         "checkpoint (tf.train.Checkpoint(model=model, ...)) or a .weights.h5 file.")
    saved_layers = {c.local_name: c.node_id for c in nodes[layers_node].children}
    view = tf.train.TrackableView(model)
    operations = view.children(model)["_operations"]
    ours = view.children(operations)
    if len(saved_layers) != len(ours):
        raise _architecture_error(prefix, len(saved_layers), len(ours))
    shapes = reader.get_variable_to_shape_map()
    found = {}  # id(variable) -> (shape, load)
    for index, layer in ours.items():
        # Follow the saved object paths (e.g. _kernel, bias) through this model's layer.
        stack = [(saved_layers[index], layer)]
        while stack:
            node_id, obj = stack.pop()
            values = [a.checkpoint_key for a in nodes[node_id].attributes if a.name == "VARIABLE_VALUE"]
            if values and isinstance(obj, (tf.Variable, _keras_variable_type())):
                key = values[0]
                found[id(obj)] = (shapes[key], lambda key=key: reader.get_tensor(key))
                continue
            children = view.children(obj) if obj is not None else {}
            for c in nodes[node_id].children:
                stack.append((c.node_id, children.get(c.local_name)))
    return [(v, found.get(id(v))) for v in model.weights]


def _pairs_from_keras_weights(model, path):
    import h5py

    found = {}
    with h5py.File(path, "r") as f:
        saved = f.get("layers")
        if saved is None:
            raise ValueError(f"{path} is not a Keras 3 weights file of a functional model (no `layers` "
                             "group). Expected a file written by model.save_weights('name.weights.h5').")
        keys = _keras_layer_keys(model)
        if len(saved) != len(keys):
            raise _architecture_error(path, len(saved), len(keys))
        for layer, key in zip(model.layers, keys):
            group = saved.get(f"{key}/vars")
            if group is None:
                raise _architecture_error(path, None, None, detail=f"it has no layer group {key!r}, "
                                          f"which this model's layer {layer.name!r} would be saved as")
            own = {}
            layer.save_own_variables(own)  # index -> variable, Keras' own order for this layer
            for index, variable in own.items():
                if index in group:
                    array = np.asarray(group[index])
                    found[id(variable)] = (array.shape, lambda array=array: array)
    return [(v, found.get(id(v))) for v in model.weights]


def _keras_layer_keys(model):
    """The group names Keras' saving library gives model.layers: class names, numbered if repeated."""
    used, keys = {}, []
    for layer in model.layers:
        name = _snake_case(type(layer).__name__)
        if name in used:
            used[name] += 1
            name = f"{name}_{used[name]}"
        else:
            used[name] = 0
        keys.append(name)
    return keys


def _snake_case(name):  # as keras.src.utils.naming.to_snake_case
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _architecture_error(source, saved, ours, detail=None):
    detail = detail or f"it holds {saved} layers where this model has {ours}"
    return ValueError(f"{source} was saved from another architecture: {detail}. Layers are matched in "
                      "order (checkpoints do not record layer names), so warm-start from a "
                      "checkpoint of the same model; its number of classes may differ.")


def _keras_variable_type():
    import keras

    return keras.Variable
