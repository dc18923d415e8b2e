"""The networks and the one entry point that builds them from a Config."""

from __future__ import annotations

import keras

from nucseg.models.losses import masked_mean_squared_error, masked_weighted_cross_entropy
from nucseg.models.blocks import OUTPUT_LAYERS, MaxUnpooling2D, PerImageStandardization
from nucseg.models.nets import SIZE_MULTIPLE, deconvnet, fcn8, pangnet, unet
from nucseg.models.vgg import EncoderWeightsError

__all__ = [
    "build_model",
    "custom_objects",
    "pangnet",
    "fcn8",
    "deconvnet",
    "unet",
    "MaxUnpooling2D",
    "SIZE_MULTIPLE",
    "EncoderWeightsError",
]


def custom_objects() -> dict:
    """What nucseg's `.keras` files name beyond Keras itself; pass it to `keras.models.load_model`."""
    return {
        "nucseg>MaxUnpooling2D": MaxUnpooling2D,
        "nucseg>PerImageStandardization": PerImageStandardization,
        "nucseg>masked_weighted_cross_entropy": masked_weighted_cross_entropy,
        "nucseg>masked_mean_squared_error": masked_mean_squared_error,
    }


def build_model(config) -> keras.Model:
    """The network `config.arch`, in mixed precision when `config.mixed_precision`.

    It changes no global state: no seeding (the caller seeds, as `nucseg.training.train` does from
    config.seed) and no global dtype policy (mixed precision is set on the model's own layers)."""
    builders = {
        "pangnet": lambda: pangnet(config.input_norm),
        "unet": lambda: unet(
            config.base_filters,
            config.unet_depth,
            config.batch_norm,
            config.input_norm,
            grid=config.grid,
            separable=config.separable,
            grid_skip=config.grid_skip,
            separable_from=config.separable_from,
        ),
        "dist": lambda: unet(
            config.base_filters,
            config.unet_depth,
            config.batch_norm,
            config.input_norm,
            output="distance",
            grid=config.grid,
            separable=config.separable,
            grid_skip=config.grid_skip,
            separable_from=config.separable_from,
        ),
        "fcn8": lambda: fcn8(
            config.base_filters, config.fc_filters, config.encoder_weights, config.batch_norm, config.input_norm
        ),
        "deconvnet": lambda: deconvnet(
            config.base_filters, config.fc_filters, config.encoder_weights, config.batch_norm, config.input_norm
        ),
    }
    model = builders[config.arch]()
    return in_mixed_precision(model) if config.mixed_precision else model


def in_mixed_precision(model: keras.Model, policy: str = "mixed_float16") -> keras.Model:
    """The same net with 16-bit compute (`policy`: "mixed_float16" for GPUs, "mixed_bfloat16" for
    CPUs with AVX512_BF16 and TPUs) in every layer but the output (float32 probabilities or
    distance), and the same weights (pretrained encoder and fixed normalisation included)."""

    def mixed(layer):
        config = layer.get_config()
        if layer.name not in OUTPUT_LAYERS:
            config["dtype"] = policy
        return layer.__class__.from_config(config)

    clone = keras.models.clone_model(model, clone_function=mixed)
    clone.set_weights(model.get_weights())
    return clone
