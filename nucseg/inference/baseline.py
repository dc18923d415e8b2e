"""The no-learning baseline every model must beat: Otsu's threshold on the hematoxylin channel
(colour deconvolution, Ruifrok and Johnston's H&E-DAB matrix as scikit-image gives it), then the
same clean-up and watershed as the networks' probability maps (`nucseg.postprocess.instances`)."""

from __future__ import annotations

import numpy as np
from skimage.color import rgb2hed
from skimage.filters import threshold_otsu

BASELINE_NAME = "otsu-hematoxylin"


def hematoxylin(image: np.ndarray) -> np.ndarray:
    """Hematoxylin optical density (H, W) of an RGB image, values 0..255."""
    return rgb2hed(image)[..., 0]


def otsu_nucleus_map(image: np.ndarray) -> np.ndarray:
    """1.0 where the hematoxylin density is above the tile's Otsu threshold, else 0.0: a
    "probability" map that the networks' post-processing turns into nuclei."""
    density = hematoxylin(image)
    if np.ptp(density) == 0:
        return np.zeros(density.shape, np.float32)
    return (density > threshold_otsu(density)).astype(np.float32)


def baseline_config(model_config):
    """The post-processing of the baseline's map beside a model's: the model's own where it
    outputs probabilities, the binary nets' (threshold and watershed) where it is DIST."""
    return model_config if model_config.output_kind == "probability" else model_config.replace(arch="unet")
