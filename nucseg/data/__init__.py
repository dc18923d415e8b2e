"""Data: data sets on disk, download, per-tile targets and weights, augmentation, tf.data streams."""
