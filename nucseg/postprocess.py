"""From a nucleus probability map to nuclei: threshold, clean up, split touching nuclei.

Touching nuclei are split by a marker-controlled watershed on the distance transform of the
mask: one marker per local maximum of the distance (at least `min_distance` pixels apart), so
two round nuclei joined by a neck become two.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.feature import peak_local_max
from skimage.morphology import remove_small_objects
from skimage.segmentation import relabel_sequential, watershed


def instances_from_probability(probability: np.ndarray, threshold: float = 0.5, min_size: int = 30,
                               min_distance: int = 10, footprint: int = 17) -> np.ndarray:
    """uint16 label image: 0 background, 1..N nuclei."""
    mask = ndimage.binary_fill_holes(np.asarray(probability) > threshold)
    mask = remove_small_objects(mask, max_size=min_size - 1) if min_size > 1 else mask
    if not mask.any():
        return np.zeros(mask.shape, np.uint16)
    distance = ndimage.distance_transform_edt(mask)
    components, _ = ndimage.label(mask)
    peaks = peak_local_max(distance, min_distance=min_distance, footprint=np.ones((footprint, footprint)),
                           labels=components, exclude_border=False)
    markers = np.zeros(mask.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    # a component without a peak (too thin) keeps one marker of its own
    unmarked = np.setdiff1d(np.unique(components[mask]), np.unique(components[markers > 0]))
    for k, component in enumerate(unmarked, start=len(peaks) + 1):
        markers[tuple(np.argwhere(components == component)[0])] = k
    labels = watershed(-distance, markers, mask=mask)
    labels[np.bincount(labels.ravel())[labels] < min_size] = 0  # pieces the split left too small
    return relabel_sequential(labels)[0].astype(np.uint16)


def instances_from_config(probability: np.ndarray, config) -> np.ndarray:
    return instances_from_probability(probability, config.threshold, config.min_object_size,
                                      config.watershed_min_distance, config.watershed_footprint)
