"""The no-learning baseline every model must beat: Otsu's threshold on the hematoxylin channel
(colour deconvolution, Ruifrok and Johnston's H&E-DAB matrix as scikit-image gives it), then the
same clean-up and watershed as the networks' probability maps (`nucseg.postprocess.instances`)."""

from __future__ import annotations

import numpy as np
from skimage.color import rgb2hed
from skimage.filters import threshold_otsu

BASELINE_NAME = "otsu-hematoxylin"


def hematoxylin(image: np.ndarray) -> np.ndarray:
    """Hematoxylin optical density (H, W) of an RGB image, values 0..255: skimage's rgb2hed's
    first channel. For uint8 images by a lookup table of each channel's share (rgb2hed is a
    logarithm per channel, then a matrix product: 256 values a channel): 0.017 against 0.028 s a
    1024 x 1024 tile, equal to it but for round-off (tests/test_objects.py,
    results/measured/speed/hematoxylin.txt)."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        return rgb2hed(image)[..., 0]
    shares = _HEMATOXYLIN_SHARES
    return np.maximum(shares[0][image[..., 0]] + shares[1][image[..., 1]] + shares[2][image[..., 2]], 0)


def _hematoxylin_shares() -> np.ndarray:
    """(3, 256): what a channel's value adds to the hematoxylin density, as rgb2hed computes it."""
    from skimage.color.colorconv import hed_from_rgb

    levels = np.maximum(np.arange(256) / 255.0, 1e-6)
    return (np.log(levels) / np.log(1e-6))[None, :] * hed_from_rgb[:, 0][:, None]


_HEMATOXYLIN_SHARES = _hematoxylin_shares()


def otsu_nucleus_map(image: np.ndarray) -> np.ndarray:
    """1.0 where the hematoxylin density is above the tile's Otsu threshold, else 0.0: a
    "probability" map that the networks' post-processing turns into nuclei."""
    density = hematoxylin(image)
    if np.ptp(density) == 0:
        return np.zeros(density.shape, np.float32)
    return (density > threshold_otsu(density)).astype(np.float32)


def baseline_method(model_config):
    """(nucleus map function, configuration, output kind) of the baseline beside a model: its map
    is a probability, post-processed as the binary nets' (threshold and watershed), with the
    model's configuration where it has those fields' values, whatever the model's own kind."""
    from nucseg.postprocess.kinds import KINDS

    return otsu_nucleus_map, model_config, KINDS["probability"]
