"""Macenko stain normalisation (Macenko et al., ISBI 2009) as a preprocessing step: each image's
hematoxylin and eosin are found in optical-density space and re-rendered with a reference's
stain vectors and intensities, so a model trained in one lab sees another lab's slides in the
colours it learnt.

The method is torchstain's NumPy implementation (a maintained package of the field, NumPy only);
nucseg adds the reference fitted on a whole data set (the model's training tiles, pooled) and a
guard for images with too little tissue to estimate stains from, which are left as they are.
"""

from __future__ import annotations

import numpy as np

LIGHT = 240  # torchstain's transmitted light intensity Io
MIN_OD = 0.15  # torchstain's beta: pixels whose optical density is below it in any channel are glass
MIN_TISSUE_PIXELS = 1000  # fewer stained pixels than this: too few to estimate two stain vectors
FIT_PIXELS = 2_000_000  # a reference is fitted on at most this many pixels, taken evenly


def _normalizer():
    from torchstain.numpy.normalizers import NumpyMacenkoNormalizer

    return NumpyMacenkoNormalizer()


def tissue_pixels(image: np.ndarray) -> int:
    """How many pixels are stained in every channel (the ones Macenko's estimate uses)."""
    od = -np.log((np.asarray(image, np.float32).reshape(-1, 3) + 1) / LIGHT)
    return int(np.all(od >= MIN_OD, axis=1).sum())


def fit_reference(images: list[np.ndarray]):
    """A Macenko normaliser whose target is the stains of `images` taken together (e.g. every
    training tile of a model); raises ValueError if they hold too little tissue."""
    pixels = np.concatenate([np.asarray(image, np.uint8).reshape(-1, 3) for image in images])
    pixels = pixels[np.linspace(0, len(pixels) - 1, min(len(pixels), FIT_PIXELS)).astype(int)]
    if tissue_pixels(pixels) < MIN_TISSUE_PIXELS:
        raise ValueError(
            f"{len(images)} reference images hold fewer than {MIN_TISSUE_PIXELS} stained pixels: "
            "give H&E tiles with tissue as the stain reference"
        )
    normalizer = _normalizer()
    normalizer.fit(pixels.reshape(-1, 1, 3), Io=LIGHT, beta=MIN_OD)
    return normalizer


def normalise(image: np.ndarray, reference) -> np.ndarray:
    """`image` (H, W, 3) re-rendered in the reference's stains, uint8; an image with too little
    tissue (glass, fat) is returned unchanged: its stain vectors cannot be estimated."""
    image = np.asarray(image)
    if tissue_pixels(image) < MIN_TISSUE_PIXELS:
        return image.astype(np.uint8)
    normalised, _, _ = reference.normalize(image.astype(np.uint8), Io=LIGHT, beta=MIN_OD, stains=False)
    return normalised
