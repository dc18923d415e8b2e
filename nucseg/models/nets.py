"""The networks of the study. Each builder returns a functional Keras model that maps RGB
tiles with values 0..255, of any height and width divisible by 32, to per-pixel probabilities
(channel 0 background, channel 1 nucleus); U-Net with output="distance" is DIST, which maps them
to one channel, each nucleus's distance map. U-Net needs sides divisible by 2**depth (32 at most)."""

from __future__ import annotations

import keras
from keras import layers

from nucseg.models.blocks import OUTPUT_HEADS, MaxUnpooling2D, conv_block, imagenet_caffe, normalise_input, score_head
from nucseg.models.vgg import VGG16_BLOCKS, EncoderWeightsError, load_encoder_weights, vgg16_encoder


def _inputs():
    return keras.Input(shape=(None, None, 3), name="image")


def pangnet(input_norm: str = "unit") -> keras.Model:
    """Pang et al.'s net (the paper's "BaochuanNet"): three 3x3 convolutions of 8 maps, 1x1 scores."""
    inputs = _inputs()
    x = conv_block(normalise_input(inputs, input_norm), 8, 3, name="pang")
    return keras.Model(inputs, score_head(x), name="pangnet")


def unet(
    base_filters: int = 64,
    depth: int = 4,
    batch_norm: bool = True,
    input_norm: str = "unit",
    output: str = "probability",
    grid: int = 1,
    separable: bool = False,
    grid_skip: bool = False,
    separable_from: int = 1,
) -> keras.Model:
    """Ronneberger et al.'s U-Net: base_filters * 2**level, `depth` poolings, skip concatenations.
    output="distance": the same net with DIST's head (one linear channel) instead of the class scores.

    Cheaper variants (issue 20's options, measured in results/measured/speed/): grid=2 runs the
    whole U-Net at half resolution, after one full-resolution 3x3 convolution and a 2x2 pooling,
    and upsamples its features 2x before the head (StarDist's grid): about a quarter of the multiply-adds.
    grid_skip=True (with grid=2): the full-resolution convolution's features join the upsampled
    ones, and one more 3x3 convolution at full resolution mixes them before the head (sharper
    borders for about 3.5 GMAC per megapixel more).
    separable=True: depthwise-separable 3x3 convolutions in the blocks of levels `separable_from`
    (1: every block but the first) and deeper, and in the bottom block."""
    inputs = _inputs()
    x, skips = normalise_input(inputs, input_norm), []
    if grid == 2:
        x = full_resolution = conv_block(x, max(base_filters // 2, 4), 1, name="grid", batch_norm=batch_norm)
        x = layers.MaxPooling2D(2, name="grid_pool")(x)
    for level in range(depth):
        x = conv_block(
            x,
            base_filters * 2**level,
            2,
            name=f"down{level}",
            batch_norm=batch_norm,
            separable=separable and level >= separable_from,
        )
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"down{level}_pool")(x)
    x = conv_block(x, base_filters * 2**depth, 2, name="bottom", batch_norm=batch_norm, separable=separable)
    for level in reversed(range(depth)):
        filters = base_filters * 2**level
        x = layers.Conv2DTranspose(filters, 2, strides=2, name=f"up{level}_upsample")(x)
        x = layers.Concatenate(name=f"up{level}_concat")([skips[level], x])
        x = conv_block(
            x, filters, 2, name=f"up{level}", batch_norm=batch_norm, separable=separable and level >= separable_from
        )
    if grid == 2:
        # learned 2x upsampling: Keras's bilinear UpSampling2D cannot be exported with free image sides
        x = layers.Conv2DTranspose(base_filters, 2, strides=2, name="grid_upsample")(x)
        if grid_skip:
            x = layers.Concatenate(name="grid_concat")([full_resolution, x])
            x = conv_block(x, base_filters, 1, name="grid_refine", batch_norm=batch_norm)
    return keras.Model(inputs, OUTPUT_HEADS[output](x), name="unet" if output == "probability" else "dist")


def _vgg_start(base_filters: int, encoder_weights, batch_norm: bool, input_norm: str):
    """Input, normalisation and encoder; a pretrained encoder keeps VGG16's exact layout (and
    its ImageNet normalisation)."""
    inputs = _inputs()
    if encoder_weights is None:
        return inputs, vgg16_encoder(normalise_input(inputs, input_norm), base_filters, batch_norm)
    if base_filters != 64:
        raise EncoderWeightsError(f"VGG16 weights need base_filters=64, not {base_filters}")
    return inputs, vgg16_encoder(imagenet_caffe(inputs), 64, batch_norm=False)


def _fully_convolutional_head(x, fc_filters: int, dropout: float = 0.5):
    """fc6 (7x7) and fc7 (1x1) of VGG16 as convolutions."""
    x = layers.Conv2D(fc_filters, 7, padding="same", activation="relu", name="fc6")(x)
    x = layers.Dropout(dropout, name="fc6_dropout")(x)
    x = layers.Conv2D(fc_filters, 1, activation="relu", name="fc7")(x)
    return layers.Dropout(dropout, name="fc7_dropout")(x)


def fcn8(
    base_filters: int = 64,
    fc_filters: int = 4096,
    encoder_weights=None,
    batch_norm: bool = False,
    input_norm: str = "unit",
) -> keras.Model:
    """Long et al.'s FCN-8s: scores from fc7, pool4 and pool3 fused by learned 2x, 2x, 8x upsampling."""
    inputs, (_, pooled) = _vgg_start(base_filters, encoder_weights, batch_norm, input_norm)
    x = _fully_convolutional_head(pooled[5], fc_filters)
    x = layers.Conv2D(2, 1, name="score_fr")(x)
    x = layers.Conv2DTranspose(2, 4, strides=2, padding="same", use_bias=False, name="upscore2")(x)
    x = layers.Add(name="fuse_pool4")([x, layers.Conv2D(2, 1, name="score_pool4")(pooled[4])])
    x = layers.Conv2DTranspose(2, 4, strides=2, padding="same", use_bias=False, name="upscore_pool4")(x)
    x = layers.Add(name="fuse_pool3")([x, layers.Conv2D(2, 1, name="score_pool3")(pooled[3])])
    x = layers.Conv2DTranspose(2, 16, strides=8, padding="same", use_bias=False, name="upscore8")(x)
    model = keras.Model(inputs, layers.Softmax(axis=-1, dtype="float32", name="probabilities")(x), name="fcn8")
    if encoder_weights is not None:
        load_encoder_weights(model, encoder_weights)
    return model


def deconvnet(
    base_filters: int = 64,
    fc_filters: int = 4096,
    encoder_weights=None,
    batch_norm: bool = True,
    input_norm: str = "unit",
) -> keras.Model:
    """Noh et al.'s DeconvNet: VGG16 encoder, then a mirrored decoder of unpooling with the
    pooling switches and convolution blocks; no skip connections."""
    inputs, (before_pool, pooled) = _vgg_start(base_filters, encoder_weights, batch_norm, input_norm)
    x = _fully_convolutional_head(pooled[5], fc_filters)
    for block, n_convs in reversed(VGG16_BLOCKS):
        if x.shape[-1] != before_pool[block].shape[-1]:  # after the fc head only
            x = layers.Conv2D(before_pool[block].shape[-1], 1, name=f"decoder{block}_match")(x)
        x = MaxUnpooling2D(name=f"decoder{block}_unpool")([x, before_pool[block]])
        out_filters = base_filters * min(2 ** max(block - 2, 0), 8)  # mirror: end at the width of the block below
        x = conv_block(x, before_pool[block].shape[-1], n_convs - 1, name=f"decoder{block}", batch_norm=batch_norm)
        x = conv_block(x, out_filters, 1, name=f"decoder{block}_out", batch_norm=batch_norm)
    model = keras.Model(inputs, score_head(x), name="deconvnet")
    if encoder_weights is not None:
        load_encoder_weights(model, encoder_weights)
    return model
