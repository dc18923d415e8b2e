"""The VGG16 encoder of FCN-8s and DeconvNet, with optional ImageNet weights."""

from __future__ import annotations

import keras

from nucseg.errors import InputError
from nucseg.models.blocks import conv_block

VGG16_BLOCKS = ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3))  # (block, convolutions)
NO_TOP_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
NO_TOP_URL = "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/" + NO_TOP_FILE


class EncoderWeightsError(InputError):
    pass


def vgg16_encoder(x, base_filters: int = 64, batch_norm: bool = False):
    """Returns {block: features before its pooling} and the pooled output of each block.

    Layers are named as in keras.applications.VGG16 (block1_conv1 ... block5_pool), so that
    its weights load by name. Widths base_filters * (1, 2, 4, 8, 8)."""
    before_pool, pooled = {}, {}
    for block, n_convs in VGG16_BLOCKS:
        filters = base_filters * min(2 ** (block - 1), 8)
        x = conv_block(x, filters, n_convs, name=f"block{block}", batch_norm=batch_norm)
        before_pool[block] = x
        x = keras.layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
        pooled[block] = x
    return before_pool, pooled


def reference_vgg16(weights):
    """keras.applications.VGG16 without its top; `weights`: "imagenet" or a local file."""
    try:
        return keras.applications.VGG16(include_top=False, weights=weights, input_shape=(None, None, 3))
    except Exception as err:  # the download raises several kinds of errors when offline
        if weights == "imagenet":
            raise EncoderWeightsError(
                f"could not get the VGG16 ImageNet weights ({err}). Offline? Download {NO_TOP_URL} on a "
                f"machine with internet, copy it here and pass its path: encoder_weights=/path/to/{NO_TOP_FILE} "
                f"(CLI: --set encoder_weights=/path/to/{NO_TOP_FILE}), or train from scratch with encoder_weights=None."
            ) from err
        raise EncoderWeightsError(
            f"cannot load VGG16 weights from {weights}: {err}. Pass the no-top VGG16 file {NO_TOP_FILE} or a "
            ".weights.h5 saved from keras.applications.VGG16(include_top=False)."
        ) from err


def load_encoder_weights(model: keras.Model, weights) -> None:
    """Copy VGG16's conv weights into the layers of `model` that have the same names."""
    reference = reference_vgg16(weights)
    for block, n_convs in VGG16_BLOCKS:
        for i in range(1, n_convs + 1):
            name = f"block{block}_conv{i}"
            model.get_layer(name).set_weights(reference.get_layer(name).get_weights())
