"""The large-image engine: a net run over a tile source (`regions.py`: a NumPy image or a slide)
on the tiling plan of `tiles.py`, batch by batch, for `predict` and `slide` alike.

Every pixel of a stitched map comes from the one tile whose core holds it (the cores partition the
region), so a tile's edge, where the net sees padding, is never used; no blending. A blank tile
(glass, white fill) gets a map of zeros without asking the net (see `is_blank`)."""

from __future__ import annotations

import math
import time

import numpy as np

from nucseg.config import MIN_STD_GREY_LEVELS  # the nets' standardisation floor (nucseg.models.blocks)
from nucseg.errors import ModelLoadError
from nucseg.inference.tiles import tile_cores


def nucleus_channel(output: np.ndarray) -> np.ndarray:
    """(..., C) model output -> (...) nucleus map: channel 1 of two (probability) or the only one (distance)."""
    channels = output.shape[-1]
    if channels not in (1, 2):
        raise ModelLoadError(
            f"the model outputs {channels} channels per pixel; nucseg's nets output 2 (background "
            "and nucleus probabilities) or 1 (DIST's distance map)."
        )
    return output[..., channels - 1]


def is_blank(image: np.ndarray) -> bool:
    """True for an image with no contrast to speak of (every channel's standard deviation below
    MIN_STD_GREY_LEVELS): white fill, glass, a flat colour. Such an image holds no nucleus; the net
    is not asked (per-image standardisation would otherwise blow its noise up to nuclei).

    A uint8 image's deviations come from each channel's histogram of 256 grey levels, exact in
    float64: 17 ms for a 1024 x 1024 tile, where the float32 copy and its std took 55 ms, on the
    slide route's main thread while the net's threads wait (docs/speed.md, tenth round). Every
    fourth row and column is looked at first, and settles a tile of tissue (1 ms instead of 12 for
    992 x 992): the whole image's variance is at least the sample's share of the pixels times the
    sample's variance (each sampled pixel's squared distance to the whole mean is at least its
    distance to the sample's mean, summed), so a sample that deviates by MIN_STD_GREY_LEVELS / sqrt(share)
    or more proves the image is not blank; any other image is counted whole, so the answer is the same."""
    image = np.asarray(image)
    channels = image.shape[-1]
    if image.dtype != np.uint8:
        pixels = image.astype(np.float32).reshape(-1, channels)
        return bool(pixels.std(axis=0).max() < MIN_STD_GREY_LEVELS)
    sample = image[::4, ::4]
    share = sample.size / image.size
    if _deviations(sample).max() * math.sqrt(share) >= MIN_STD_GREY_LEVELS * (1 + 1e-9):  # a margin for rounding
        return False
    return bool(_deviations(image).max() < MIN_STD_GREY_LEVELS)


def _deviations(image: np.ndarray) -> np.ndarray:
    """Each channel's standard deviation of a uint8 (H, W, C) image, from its histogram."""
    channels = image.shape[-1]
    codes = image.reshape(-1, channels).astype(np.uint16) + np.arange(0, 256 * channels, 256, dtype=np.uint16)
    counts = np.bincount(codes.ravel(), minlength=256 * channels).reshape(channels, 256).astype(np.float64)
    levels, pixels = np.arange(256.0), counts.sum(axis=1)
    mean = counts @ levels / pixels
    variance = counts @ (levels * levels) / pixels - mean * mean
    return np.sqrt(np.maximum(variance, 0.0))


def predicted_batches(source, tiles, side: int, predictor, batch_size: int = 1, timings: dict | None = None):
    """(tiles of the batch, their images (B, side, side, 3) uint8, nucleus maps (B, side, side)) for
    `tiles` [(x, y), ...] read from `source`, `batch_size` at a time. `timings`, where given,
    gets the seconds spent reading ("read") and predicting ("predict")."""
    for first in range(0, len(tiles), batch_size):
        group = tiles[first : first + batch_size]
        start = time.perf_counter()
        images = np.stack([source.read(x, y, side) for x, y in group])
        read = time.perf_counter()
        maps = np.zeros(images.shape[:3], np.float32)
        busy = [i for i, image in enumerate(images) if not is_blank(image)]
        if busy:
            maps[busy] = nucleus_channel(np.asarray(predictor(images[busy].astype(np.float32))))
        if timings is not None:
            timings["read"] = timings.get("read", 0.0) + read - start
            timings["predict"] = timings.get("predict", 0.0) + time.perf_counter() - read
        yield group, images, maps


def core_pixels(core: tuple[float, float]) -> slice:
    """The pixels whose centres lie in a core [start, end) of `tile_cores` (the rule `kept_nuclei`
    applies to centroids)."""
    return slice(math.ceil(core[0] - 0.5), math.ceil(core[1] - 0.5))


def stitched_map(source, side: int, overlap: int, predictor, batch_size: int = 1) -> np.ndarray:
    """The nucleus map (H, W) float32 of the whole source, each pixel from the tile whose core holds it."""
    cores_x = tile_cores(source.width, side, overlap)
    cores_y = tile_cores(source.height, side, overlap)
    stitched = np.zeros((source.height, source.width), np.float32)
    tiles = [(x, y) for y in cores_y for x in cores_x]
    for group, _, maps in predicted_batches(source, tiles, side, predictor, batch_size):
        for (x, y), nucleus_map in zip(group, maps):
            rows, cols = core_pixels(cores_y[y]), core_pixels(cores_x[x])
            stitched[rows, cols] = nucleus_map[rows.start - y : rows.stop - y, cols.start - x : cols.stop - x]
    return stitched
