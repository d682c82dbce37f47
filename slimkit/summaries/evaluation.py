"""An evaluation in TensorBoard: accuracy, loss, top-5, the confusion matrix, misclassified examples.

    write_evaluation(writers["validation"], step, metrics, class_names)

``metrics`` is :func:`slimkit.metrics.evaluate_model`'s dict. The training loop writes one at each
evaluation (the evaluation curve, keep-best, the final test) and ``slimkit eval`` one per
checkpoint, so both look the same in TensorBoard.
"""

SCALARS = ("accuracy", "loss", "top5_accuracy")
GALLERY_SIZE = 24  # misclassified examples shown per evaluation


def write_evaluation(writer, step, metrics, class_names, prefix="", about=None, pictures=True):
    """Writes ``metrics`` at ``step``: scalars, confusion matrix and gallery images.

    Args:
        writer: A :class:`~slimkit.summaries.writer.SummaryWriter` (the evaluation run's).
        step: The global step of the evaluated weights.
        metrics: From :func:`slimkit.metrics.evaluate_model`.
        class_names: Names by class id (the confusion matrix's axes, the gallery's captions).
        prefix: Prepended to every tag (e.g. ``"sample/"`` for a sample of the split).
        about: What was evaluated, as the summaries' description (e.g. "the first 1,000 test
            images").
        pictures: Also the confusion matrix and the gallery (False: scalars only).
    """
    from slimkit.summaries.images import confusion_matrix_image, misclassified_gallery

    if not writer.enabled:
        return
    descriptions = {f"{prefix}{k}": about for k in SCALARS} if about else None
    writer.scalars(step, {f"{prefix}{k}": metrics[k] for k in SCALARS if k in metrics},
                   descriptions)
    if not pictures:
        return
    writer.image(f"{prefix}confusion_matrix", step,
                 confusion_matrix_image(metrics["confusion_matrix"], class_names),
                 description=f"true class (rows) by predicted class (columns)"
                             f"{', ' + about if about else ''}")
    missed = metrics.get("misclassified")
    if missed is not None and len(missed["labels"]):
        writer.image(f"{prefix}misclassified", step,
                     misclassified_gallery(missed["images"], missed["labels"],
                                           missed["predictions"], class_names),
                     description=f"the first {len(missed['labels'])} misclassified examples "
                                 "(green: true class, red: predicted)")
