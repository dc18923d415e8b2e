"""Building blocks shared by the four networks (Keras layers and keras.ops only)."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from nucseg.config import MIN_STD_GREY_LEVELS  # the floor of per-image standardisation: why, there

IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)


def unit_range(inputs):
    """RGB 0..255 -> -1..1, inside the model, so exported models take raw pixel values."""
    return layers.Rescaling(1 / 127.5, offset=-1.0, name="normalise")(inputs)


@keras.saving.register_keras_serializable(package="nucseg")
class PerImageStandardization(layers.Layer):
    """Each image's channels to mean 0 and standard deviation 1 (over its pixels): the net no
    longer sees how dark or pale a tile's stain is overall, only its contrasts. Written here
    because Keras has no such layer (Normalization uses fixed, learned statistics).

    The mean is exact (a second pass corrects float32's rounding over a million pixels: the
    mean of a flat 512 x 512 image of 255 came out 254.25), and the deviation is floored at
    `min_std` grey levels, so a blank or nearly blank tile stays (nearly) 0 everywhere."""

    def __init__(self, min_std: float = MIN_STD_GREY_LEVELS, **kwargs):
        super().__init__(**kwargs)
        self.min_std = float(min_std)

    def call(self, inputs):
        mean = ops.mean(inputs, axis=(1, 2), keepdims=True)
        mean = mean + ops.mean(inputs - mean, axis=(1, 2), keepdims=True)  # the rounding error of the first pass
        centred = inputs - mean
        std = ops.sqrt(ops.mean(ops.square(centred), axis=(1, 2), keepdims=True))
        return centred / ops.maximum(std, self.min_std)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "min_std": self.min_std}


def normalise_input(inputs, kind: str = "unit"):
    """The model's own input normalisation (`Config.input_norm`): "unit" or "per_image"."""
    if kind == "per_image":
        return PerImageStandardization(name="normalise")(inputs)
    return unit_range(inputs)


def imagenet_caffe(inputs):
    """RGB 0..255 -> BGR minus the ImageNet mean, as VGG16's ImageNet weights expect.

    A frozen 1x1 convolution rather than a Lambda, so that the .keras file needs no code."""
    flip = np.zeros((1, 1, 3, 3), np.float32)
    flip[0, 0, 2, 0] = flip[0, 0, 1, 1] = flip[0, 0, 0, 2] = 1.0
    layer = layers.Conv2D(3, 1, trainable=False, name="normalise_imagenet")
    outputs = layer(inputs)
    layer.set_weights([flip, -np.array(IMAGENET_BGR_MEAN, np.float32)])
    return outputs


@keras.saving.register_keras_serializable(package="nucseg")
class FusedBatchNormalization(layers.BatchNormalization):
    """Keras's BatchNormalization, its training step done by TensorFlow's fused kernel there.

    Written here because Keras 3 computes a training batch's statistics and its normalisation as
    separate operations (moments, then batch_normalization) and differentiates through each one:
    about a quarter of a `cpu`-profile DIST step on 2 CPU cores (measured: 175 ms a step with batch
    norm, 133 without). TensorFlow's FusedBatchNormV3 (oneDNN on a CPU, cuDNN on a GPU) does the
    same arithmetic in one pass forward and one back. The same normalisation (the batch's biased
    variance, Keras's epsilon) and the same moving averages: the fused op returns the batch's
    unbiased variance, which is scaled back to the biased one Keras averages. At inference, under
    another backend, with a mask, on another axis, with renorm or synchronized statistics, it is
    Keras's layer unchanged."""

    def call(self, inputs, training=None, mask=None):
        fusable = training and self.trainable and mask is None and len(inputs.shape) == 4 and self.axis in (-1, 3)
        fusable = fusable and not (self.renorm or self.synchronized)  # options the fused kernel has not
        if not fusable or keras.backend.backend() != "tensorflow":
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        x = tf.cast(inputs, "float32")  # as Keras does: the statistics in float32 under mixed precision
        channels = x.shape[-1]
        gamma = tf.cast(self.gamma, "float32") if self.scale else tf.ones([channels])
        beta = tf.cast(self.beta, "float32") if self.center else tf.zeros([channels])
        outputs, mean, unbiased, *_ = tf.compat.v1.nn.fused_batch_norm(
            x, gamma, beta, epsilon=self.epsilon, data_format="NHWC", is_training=True
        )
        count = tf.cast(tf.reduce_prod(tf.shape(x)[:3]), "float32")
        variance = unbiased * ((count - 1.0) / count)  # n = 1: the op gives 0, as the biased variance is
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return tf.cast(outputs, self.compute_dtype)


def conv_block(
    x, filters: int, n_convs: int, name: str, batch_norm: bool = False, kernel_size: int = 3, separable: bool = False
):
    """n_convs of (3x3 convolution, batch norm if asked, ReLU); layer i is `{name}_conv{i}`.
    separable: depthwise-separable convolutions (a 3x3 per channel, then a 1x1 across channels)."""
    convolution = layers.SeparableConv2D if separable else layers.Conv2D
    for i in range(1, n_convs + 1):
        x = convolution(filters, kernel_size, padding="same", use_bias=not batch_norm, name=f"{name}_conv{i}")(x)
        if batch_norm:
            x = FusedBatchNormalization(name=f"{name}_bn{i}")(x)
        x = layers.Activation("relu", name=f"{name}_relu{i}")(x)
    return x


def score_head(x, name: str = "score"):
    """1x1 convolution to the two classes, then softmax: channel 0 background, 1 nucleus."""
    x = layers.Conv2D(2, 1, name=name)(x)
    return layers.Softmax(axis=-1, dtype="float32", name="probabilities")(x)


def distance_head(x, name: str = "distance"):
    """DIST's output: a 1x1 convolution to one linear channel, the distance to the nucleus border
    in pixels (float32 under mixed precision)."""
    x = layers.Conv2D(1, 1, name=f"{name}_conv")(x)
    return layers.Activation("linear", dtype="float32", name=name)(x)


OUTPUT_HEADS = {"probability": score_head, "distance": distance_head}
OUTPUT_LAYERS = ("probabilities", "distance")  # kept in float32 under mixed precision


@keras.saving.register_keras_serializable(package="nucseg")
class MaxUnpooling2D(layers.Layer):
    """2x2 unpooling with the pooling switches (DeconvNet): each value goes back to the
    position where the max of its 2x2 window was in `before_pooling` (first one on ties)."""

    def call(self, inputs):
        pooled, before_pooling = inputs
        shape = ops.shape(before_pooling)
        height, width, channels = shape[1], shape[2], shape[3]
        windows = ops.reshape(before_pooling, (-1, height // 2, 2, width // 2, 2, channels))
        windows = ops.reshape(ops.transpose(windows, (0, 1, 3, 2, 4, 5)), (-1, height // 2, width // 2, 4, channels))
        switches = ops.one_hot(ops.argmax(windows, axis=3), 4, axis=3, dtype=pooled.dtype)
        unpooled = switches * ops.expand_dims(pooled, 3)
        unpooled = ops.reshape(unpooled, (-1, height // 2, width // 2, 2, 2, channels))
        unpooled = ops.transpose(unpooled, (0, 1, 3, 2, 4, 5))
        return ops.reshape(unpooled, (-1, height, width, channels))

    def compute_output_shape(self, input_shapes):
        return input_shapes[1]
