"""The losses, in keras.ops (any backend): the paper's masked, weighted cross-entropy for the
four binary nets, and DIST's masked mean squared error on the distance map.

    L = -(1 / sum_ij w_ij) * sum_ij w_ij * log p_ij(true class)
    L_dist = (1 / sum_ij w_ij) * sum_ij w_ij * (d_ij - target_ij)**2

Pixels of weight 0 (brought in by rotations and warps, or masked on purpose) add nothing to
the value or to the gradient; an all-masked batch gives 0, not NaN.
"""

from __future__ import annotations

import keras
from keras import ops

EPSILON = 1e-7


@keras.saving.register_keras_serializable(package="nucseg")
def masked_weighted_cross_entropy(y_true, y_pred):
    """y_true: (..., 2) target (0/1) and weight; y_pred: (..., 2) class probabilities."""
    y_pred = ops.cast(y_pred, "float32")
    target = ops.cast(y_true[..., 0], "int32")
    weight = ops.cast(y_true[..., 1], "float32")
    true_probability = ops.sum(y_pred * ops.one_hot(target, 2, dtype="float32"), axis=-1)
    log_likelihood = ops.log(ops.clip(true_probability, EPSILON, 1.0))
    total_weight = ops.sum(weight)
    return -ops.sum(weight * log_likelihood) / ops.maximum(total_weight, EPSILON)


@keras.saving.register_keras_serializable(package="nucseg")
def masked_mean_squared_error(y_true, y_pred):
    """y_true: (..., 2) target distance and weight; y_pred: (..., 1) predicted distance."""
    error = ops.cast(y_pred[..., 0], "float32") - ops.cast(y_true[..., 0], "float32")
    weight = ops.cast(y_true[..., 1], "float32")
    return ops.sum(weight * error * error) / ops.maximum(ops.sum(weight), EPSILON)
