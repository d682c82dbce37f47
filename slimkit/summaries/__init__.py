"""What a run shows in TensorBoard, and the pictures it is made of.

- ``images``: the picture functions (filters, feature maps, misclassified gallery, confusion
  matrix, weight heat maps, projector sprite), NumPy in, uint8 arrays or PNG bytes out; shared by
  TensorBoard, ``slimkit inspect --png`` and notebooks.

Submodules are imported on use.
"""
