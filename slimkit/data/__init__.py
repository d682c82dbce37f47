"""Datasets: where files come from, how they are checked, and how they are fed.

- :mod:`~slimkit.data.registry`: named datasets (``mnist``, ``fashion_mnist``), where their files
  are looked for, ``load_arrays`` into uint8 NHWC arrays with the tutorial's split.
- :mod:`~slimkit.data.idx`: the strict IDX (MNIST format) parser.
- :mod:`~slimkit.data.download`: checksummed, atomic downloads from a list of mirrors.
- :mod:`~slimkit.data.mnist`: the tutorials' ``read_data_sets`` / ``next_batch``.
- :mod:`~slimkit.data.feed`: ``ArrayFeed``, the fast, resumable in-memory training feed.
- :mod:`~slimkit.data.image_folder`: ``ImageFolder``, class folders to a tf.data pipeline.

Only ``image_folder`` uses TensorFlow; the rest is NumPy and the standard library, so listing and
checking data (``slimkit datasets``) starts instantly.
"""
