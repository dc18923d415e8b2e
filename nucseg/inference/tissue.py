"""Where the tissue is on a slide: the tiles without any are not predicted."""

from __future__ import annotations

import numpy as np

TISSUE_SIDE = 1024  # side of the low-resolution image tissue is found on


def tissue_mask(slide, region) -> tuple[np.ndarray, float]:
    """Boolean tissue mask of the region on a low-resolution image, and level-0 pixels per
    mask pixel. Tissue: coloured (saturation above 0.05) or dark (grey below 200); white glass,
    pale fat and grey background are not. Then closed, so that nuclei-poor tissue stays in."""
    from scipy import ndimage

    x, y, w, h = region
    level = slide.get_best_level_for_downsample(max(w, h) / TISSUE_SIDE)
    downsample = slide.level_downsamples[level]
    size = (max(1, int(w / downsample)), max(1, int(h / downsample)))
    rgb = np.asarray(slide.read_region((x, y), level, size).convert("RGB"), np.float32)
    saturation = (rgb.max(-1) - rgb.min(-1)) / np.maximum(rgb.max(-1), 1)
    tissue = (saturation > 0.05) | (rgb.mean(-1) < 200)
    tissue = ndimage.binary_closing(tissue, iterations=3) | tissue
    return tissue, downsample
