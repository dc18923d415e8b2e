"""Resolution: an image's microns per pixel, and prediction at the model's resolution with the
nuclei mapped back to the input's pixels (a 20x image given to a 40x model is magnified 2x for
the net, and its nuclei come back in its own pixels)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

LOG = logging.getLogger(__name__)
PLAUSIBLE_MPP = (0.05, 20.0)  # microscope pixels; a TIFF's default 72 dpi (353 µm) is not one
SAME_SCALE = 0.02  # resolutions within 2 % are taken as equal


def tiff_mpp(path: str | Path) -> float | None:
    """Microns per pixel from a TIFF's XResolution and ResolutionUnit tags, where they hold a
    microscope's resolution; None otherwise (not a TIFF, no tags, or a screen's 72 dpi)."""
    if Path(path).suffix.lower() not in (".tif", ".tiff"):
        return None
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            tags = tif.pages[0].tags
            resolution, unit = tags.get("XResolution"), tags.get("ResolutionUnit")
            if resolution is None or unit is None:
                return None
            numerator, denominator = resolution.value
            microns = {2: 25400.0, 3: 10000.0}.get(int(unit.value))
    except (tifffile.TiffFileError, OSError, ValueError, TypeError, IndexError):
        return None
    if microns is None or not numerator or not denominator:
        return None
    mpp = microns / (numerator / denominator)
    if not PLAUSIBLE_MPP[0] <= mpp <= PLAUSIBLE_MPP[1]:
        LOG.info(f"{path}: its resolution tags say {mpp:.3g} µm per pixel, not a microscope's; ignored (give --mpp)")
        return None
    return mpp


def scale_factor(image_mpp: float | None, model_mpp: float) -> float:
    """How many model pixels an image pixel spans (2.0: the image is magnified 2x for the net)."""
    if image_mpp is None or abs(image_mpp / model_mpp - 1) < SAME_SCALE:
        return 1.0
    return image_mpp / model_mpp


def resample(array: np.ndarray, shape: tuple[int, int], order: int) -> np.ndarray:
    """`array` (H, W[, C]) to `shape`: order 1 bilinear (images, maps), 0 nearest (labels)."""
    from skimage.transform import resize

    out = resize(
        array,
        (*shape, *array.shape[2:]),
        order=order,
        preserve_range=True,
        anti_aliasing=order > 0 and shape[0] < array.shape[0],
    )
    return out.astype(array.dtype) if order == 0 else out


def predict_at_model_scale(nucleus_map_of, instances_of, image: np.ndarray, factor: float):
    """(nucleus map, nuclei) of `image` in its own pixels, the net and post-processing run at the
    model's resolution: `nucleus_map_of(image)` and `instances_of(map)` at that scale."""
    if factor == 1.0:
        nucleus_map = nucleus_map_of(image)
        return nucleus_map, instances_of(nucleus_map)
    height, width = image.shape[:2]
    scaled_shape = (max(1, round(height * factor)), max(1, round(width * factor)))
    scaled = np.clip(resample(image.astype(np.float32), scaled_shape, 1).round(), 0, 255).astype(np.uint8)
    nucleus_map = nucleus_map_of(scaled)
    labels = instances_of(nucleus_map)
    return (
        resample(nucleus_map.astype(np.float32), (height, width), 1).astype(np.float32),
        resample(labels, (height, width), 0),
    )
