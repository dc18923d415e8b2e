"""The four networks and the one entry point that builds them from a Config."""

from __future__ import annotations

import keras

from nucseg.models.blocks import MaxUnpooling2D
from nucseg.models.nets import SIZE_MULTIPLE, deconvnet, fcn8, pangnet, unet
from nucseg.models.vgg import EncoderWeightsError

__all__ = ["build_model", "pangnet", "fcn8", "deconvnet", "unet", "MaxUnpooling2D", "SIZE_MULTIPLE", "EncoderWeightsError"]


def build_model(config) -> keras.Model:
    """The network `config.arch`, in mixed precision when `config.mixed_precision`."""
    builders = {
        "pangnet": lambda: pangnet(),
        "unet": lambda: unet(config.base_filters, config.unet_depth, config.batch_norm),
        "fcn8": lambda: fcn8(config.base_filters, config.fc_filters, config.encoder_weights, config.batch_norm),
        "deconvnet": lambda: deconvnet(config.base_filters, config.fc_filters, config.encoder_weights, config.batch_norm),
    }
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16" if config.mixed_precision else "float32")
    try:
        keras.utils.set_random_seed(config.seed)
        return builders[config.arch]()
    finally:
        keras.config.set_dtype_policy(previous)
