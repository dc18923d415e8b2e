"""The networks and the one entry point that builds them from a Config."""

from __future__ import annotations

import logging

import keras

from nucseg.models.losses import masked_mean_squared_error, masked_weighted_cross_entropy
from nucseg.models.blocks import OUTPUT_LAYERS, FusedBatchNormalization, MaxUnpooling2D, PerImageStandardization
from nucseg.config import SIZE_MULTIPLE
from nucseg.models.nets import deconvnet, fcn8, pangnet, unet
from nucseg.models.vgg import EncoderWeightsError

LOG = logging.getLogger(__name__)

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
        "nucseg>FusedBatchNormalization": FusedBatchNormalization,
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
            config.deconvnet_filters or config.base_filters,
            config.fc_filters,
            config.encoder_weights,
            config.batch_norm,
            config.input_norm,
        ),
    }
    model = builders[config.arch]()
    return in_mixed_precision(model, mixed_policy()) if config.mixed_precision else model


def mixed_policy() -> str:
    """What `mixed_precision` trains in here: float16 on a GPU; bfloat16 on a CPU, where float16
    has no hardware (a `cpu` DIST training step took over 25 s in float16 against 0.20 in float32
    on an AMX Xeon, and 0.16 in bfloat16). A CPU without native bfloat16 emulates it: warned."""
    from nucseg.hardware import cpu_name, keras_sees_gpu, native_bfloat16

    if keras_sees_gpu():
        return "mixed_float16"
    if not native_bfloat16():
        LOG.warning(
            f"mixed_precision on a CPU without native bfloat16 ({cpu_name()}: no AVX512_BF16 or AMX): "
            "it is emulated, and slower than float32 here (a cpu-profile DIST step 9 times slower on an "
            "AVX2-only AMD EPYC)"
        )
    return "mixed_bfloat16"


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
