"""On-the-fly augmentation of one training sample, in TensorFlow ops for tf.data.

Crop, flips, 90-degree and free rotations and the elastic deformation are one geometric
transform: each output pixel gets one source coordinate in the tile, and the tile is sampled
once (bilinear for the image, nearest neighbour for target and weights, so instances stay
intact). Output pixels whose source lies outside the tile get weight 0: the loss ignores them.
Then Gaussian blur and H&E stain jitter act on the image alone.

The settings are read from a `nucseg.config.Config` (crop, flip, rotate90, rotate_max_degrees,
blur_*, elastic_*, stain_jitter).

The elastic deformation is elasticdeform's (van Tulder): a points x points grid of random
displacements, interpolated to every pixel by a cubic B-spline. That interpolation is linear
in the grid values, so it is two small matrix products with a basis computed once
(`elastic_basis`); tests check the result against `elasticdeform.deform_grid`.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf
from scipy import ndimage
from skimage.color import hed_from_rgb, rgb_from_hed

BLUR_RADIUS = 4


def elastic_basis(size: int, points: int) -> np.ndarray:
    """(size, points) weights: displacement at each pixel from the grid values (along one axis).

    Same as elasticdeform: grid point k sits at pixel k * (size - 1) / (points - 1); cubic
    B-spline with mirror boundaries, prefiltered so that the spline passes through the grid.
    """
    position = np.arange(size) * (points - 1) / max(size - 1, 1)
    basis = np.zeros((size, points))
    for k in range(points):
        unit = np.zeros(points)
        unit[k] = 1.0
        basis[:, k] = ndimage.map_coordinates(unit, [position], order=3, mode="mirror", prefilter=True)
    return basis.astype(np.float32)


def elastic_displacement(grid: tf.Tensor, basis: tf.Tensor) -> tf.Tensor:
    """(2, P, P) grid of displacements -> (2, S, S) displacement of every pixel."""
    return tf.einsum("ip,cpq,jq->cij", basis, grid, basis)


def source_coordinates(config, seed, tile_height, tile_width, basis):
    """(crop, crop, 2) float source (y, x) in the tile of each output pixel, and the zoom."""
    seeds = tf.random.experimental.stateless_split(seed, num=2)
    u = tf.random.stateless_uniform([8], seeds[0])
    crop = config.crop
    half = (crop - 1) / 2.0
    along = tf.range(crop, dtype=tf.float32)
    py, px = tf.meshgrid(along, along, indexing="ij")

    grid = tf.random.stateless_normal([2, config.elastic_points, config.elastic_points], seeds[1])
    apply_elastic = tf.cast(u[0] < config.elastic_probability, tf.float32)
    displacement = elastic_displacement(grid * config.elastic_sigma * apply_elastic, basis)
    py, px = py + displacement[0] - half, px + displacement[1] - half

    flip_y = tf.where(u[1] < 0.5, -1.0, 1.0) if config.flip else 1.0
    flip_x = tf.where(u[2] < 0.5, -1.0, 1.0) if config.flip else 1.0
    quarter_turns = tf.floor(u[3] * 4.0) if config.rotate90 else 0.0
    free = (2.0 * u[4] - 1.0) * config.rotate_max_degrees
    angle = (quarter_turns * 90.0 + free) * (math.pi / 180.0)
    cos, sin = tf.cos(angle), tf.sin(angle)
    log_zoom = math.log(config.zoom_max)
    zoom = tf.exp((2.0 * u[7] - 1.0) * log_zoom)  # log-uniform in [1 / zoom_max, zoom_max]
    py, px = py * flip_y / zoom, px * flip_x / zoom  # zoom > 1 magnifies: the crop covers less of the tile

    height, width = tf.cast(tile_height, tf.float32), tf.cast(tile_width, tf.float32)
    centre_y = _random_centre(u[5], height, half)
    centre_x = _random_centre(u[6], width, half)
    return tf.stack([centre_y + cos * py - sin * px, centre_x + sin * py + cos * px], axis=-1), zoom


def _random_centre(u, length, half):
    low, high = half, length - 1.0 - half
    return tf.where(high > low, low + u * (high - low), (length - 1.0) / 2.0)


def warp(image, target_weight, coords, tile_height, tile_width):
    """Sample a tile at coords: image bilinear, target and weight nearest; outside -> weight 0.

    image: (H, W, 3) uint8; target_weight: (H, W, 2) float32, the target (0/1, or a distance)
    and the weight side by side so that one gather reads both. Returns float32 image, target, weight.
    """
    height, width = tf.cast(tile_height, tf.float32), tf.cast(tile_width, tf.float32)
    y, x = coords[..., 0], coords[..., 1]
    inside = (y >= 0) & (y <= height - 1) & (x >= 0) & (x <= width - 1)
    stride = tf.shape(image)[1]
    y = tf.clip_by_value(y, 0.0, height - 1)
    x = tf.clip_by_value(x, 0.0, width - 1)

    y0, x0 = tf.floor(y), tf.floor(x)
    wy, wx = (y - y0)[..., None], (x - x0)[..., None]
    y0, x0 = tf.cast(y0, tf.int32), tf.cast(x0, tf.int32)
    y1 = tf.minimum(y0 + 1, tf.cast(tile_height, tf.int32) - 1)
    x1 = tf.minimum(x0 + 1, tf.cast(tile_width, tf.int32) - 1)
    # one gather of the four neighbours, from the uint8 tile (casting the whole tile costs more)
    corners = tf.stack([y0 * stride + x0, y0 * stride + x1, y1 * stride + x0, y1 * stride + x1])
    rgb = tf.cast(tf.gather(tf.reshape(image, [-1, 3]), corners), tf.float32)
    top = rgb[0] + (rgb[1] - rgb[0]) * wx
    bottom = rgb[2] + (rgb[3] - rgb[2]) * wx
    warped_image = top + (bottom - top) * wy

    nearest = tf.cast(tf.round(y), tf.int32) * stride + tf.cast(tf.round(x), tf.int32)
    both = tf.gather(tf.reshape(target_weight, [-1, 2]), nearest) * tf.cast(inside, tf.float32)[..., None]
    return warped_image, both[..., 0], both[..., 1]


def gaussian_blur(image, sigma):
    """Separable Gaussian blur of one (H, W, 3) float image."""
    offsets = tf.range(-BLUR_RADIUS, BLUR_RADIUS + 1, dtype=tf.float32)
    kernel = tf.exp(-(offsets**2) / (2.0 * tf.maximum(sigma, 1e-3) ** 2))
    kernel = kernel / tf.reduce_sum(kernel)
    channels = tf.tile(kernel[:, None, None], [1, 3, 1])  # (taps, 3, 1)
    padded = tf.pad(image[None], [[0, 0], [BLUR_RADIUS] * 2, [BLUR_RADIUS] * 2, [0, 0]], mode="REFLECT")
    rows = tf.nn.depthwise_conv2d(padded, channels[:, None], [1, 1, 1, 1], "VALID")
    both = tf.nn.depthwise_conv2d(rows, channels[None], [1, 1, 1, 1], "VALID")
    return both[0]


def stain_jitter(images, seed, strength):
    """Scale and shift the H, E and residual stain concentrations (optical density) of each
    image of a (B, H, W, 3) batch; batched, since one op on B images costs less than B ops."""
    batch = tf.shape(images)[0]
    u = tf.random.stateless_uniform([2, batch, 3], seed, minval=-strength, maxval=strength)
    to_stains, to_rgb = tf.constant(hed_from_rgb, tf.float32), tf.constant(rgb_from_hed, tf.float32)
    # in optical density the jitter is one affine map per image: scale and shift in stain space
    mix = tf.einsum("ij,bj,jk->bik", to_stains, 1.0 + u[0], to_rgb)
    shift = tf.einsum("bj,jk->bk", u[1], to_rgb)
    density = -tf.math.log((images + 1.0) * (1.0 / 256.0))
    density = tf.reshape(density, [batch, -1, 3]) @ mix + shift[:, None]
    return tf.clip_by_value(256.0 * tf.exp(-tf.reshape(density, tf.shape(images))) - 1.0, 0.0, 255.0)


def colour_jitter(images, seed, config):
    """Brightness, contrast, saturation and gamma of each image of a (B, H, W, 3) batch of 0..255,
    each drawn per image: what differs between scanners and labs beside the stains."""
    batch = tf.shape(images)[0]
    u = tf.random.stateless_uniform([4, batch, 1, 1, 1], seed, minval=-1.0, maxval=1.0)
    x = images / 255.0
    x = tf.clip_by_value(x, 0.0, 1.0) ** tf.exp(u[0] * config.gamma)
    grey = tf.reduce_mean(x, axis=-1, keepdims=True)
    x = grey + (x - grey) * (1.0 + u[1] * config.saturation)
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    x = mean + (x - mean) * (1.0 + u[2] * config.contrast)
    x = x + u[3] * config.brightness
    return tf.clip_by_value(x * 255.0, 0.0, 255.0)


def make_augmenter(config, target_scales_with_zoom: bool = False):
    """augment(seed, image, target_weight, tile_height, tile_width) -> one augmented crop:
    (image float32 0..255, target float32, weight float32); stain jitter comes per batch.
    A target that is a length (DIST's distance: `target_scales_with_zoom`) is multiplied by the
    zoom, so that it stays in pixels of the crop.

    image: (H, W, 3) uint8; target_weight: (H, W, 2) float32 (see `warp`). The geometry is
    compiled with XLA, which fuses its elementwise chains around the gathers (2.5x faster on
    CPU); the blur's convolution is faster without.
    """
    basis = tf.constant(elastic_basis(config.crop, config.elastic_points))

    @tf.function(jit_compile=True, autograph=False)  # as written: see nucseg.data.pipeline.without_autograph
    def geometry(seed, image, target_weight, tile_height, tile_width):
        coords, zoom = source_coordinates(config, seed, tile_height, tile_width, basis)
        image, target, weight = warp(image, target_weight, coords, tile_height, tile_width)
        return image, target * zoom if target_scales_with_zoom else target, weight

    def augment(seed, image, target_weight, tile_height, tile_width):
        seeds = tf.random.experimental.stateless_split(seed, num=2)
        image, target, weight = geometry(seeds[0], image, target_weight, tile_height, tile_width)
        u = tf.random.stateless_uniform([2], seeds[1])
        sigma = 0.3 + u[1] * (config.blur_sigma_max - 0.3)
        image = tf.cond(u[0] < config.blur_probability, lambda: gaussian_blur(image, sigma), lambda: image)
        return image, target, weight

    return augment


def make_batch_jitter(config):
    """jitter(images, seed): stain jitter, then colour jitter, of a batch, compiled with XLA (one
    fused pass, 3x faster)."""
    colour = any((config.brightness, config.contrast, config.saturation, config.gamma))

    def jitter(images, seed):
        seeds = tf.random.experimental.stateless_split(seed, num=2)
        if config.stain_jitter > 0:
            images = stain_jitter(images, seeds[0], config.stain_jitter)
        return colour_jitter(images, seeds[1], config) if colour else images

    return tf.function(jitter, jit_compile=True, autograph=False)  # see nucseg.data.pipeline.without_autograph
