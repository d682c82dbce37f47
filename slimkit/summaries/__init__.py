"""What a run shows in TensorBoard, and the pictures it is made of.

- ``writer``: :class:`Writers` / :class:`SummaryWriter`, TensorBoard run folders whose writes
  never stop a run (a failure is one warning); disabled on non-chief workers.
- ``images``: the picture functions (filters, feature maps, misclassified gallery, confusion
  matrix, weight heat maps, projector sprite), NumPy in, uint8 arrays or PNG bytes out; shared by
  TensorBoard, ``slimkit inspect --png`` and notebooks.

Submodules are imported on use.
"""
