"""From a net's nucleus map to nuclei: threshold, clean up, split touching nuclei.

A probability map (the binary nets): touching nuclei are split by a marker-controlled watershed
on the distance transform of the thresholded mask: one marker per local maximum of the distance
(at least `min_distance` pixels apart), so two round nuclei joined by a neck become two.

A distance map (DIST): the dynamic watershed of Naylor et al. (IEEE TMI 2019): the foreground is
where the predicted distance exceeds a threshold, the markers are the maxima that stand at least
`lambda` above their surroundings (h-maxima), and the watershed floods the negated distance.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.feature import peak_local_max
from skimage.morphology import h_maxima, remove_small_objects
from skimage.segmentation import relabel_sequential, watershed


def _clean_mask(mask: np.ndarray, min_size: int) -> np.ndarray:
    mask = ndimage.binary_fill_holes(mask)
    return remove_small_objects(mask, max_size=min_size - 1) if min_size > 1 else mask


def _split(distance: np.ndarray, mask: np.ndarray, peaks: np.ndarray, min_size: int) -> np.ndarray:
    """Watershed of -distance inside mask from one marker per peak ((N, 2) rows, cols); a
    connected component without a peak (too thin) keeps one marker of its own."""
    components, _ = ndimage.label(mask)
    markers = np.zeros(mask.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    unmarked = np.setdiff1d(np.unique(components[mask]), np.unique(components[markers > 0]))
    for k, component in enumerate(unmarked, start=len(peaks) + 1):
        markers[tuple(np.argwhere(components == component)[0])] = k
    labels = watershed(-distance, markers, mask=mask)
    labels[np.bincount(labels.ravel())[labels] < min_size] = 0  # pieces the split left too small
    return relabel_sequential(labels)[0].astype(np.uint16)


def instances_from_probability(probability: np.ndarray, threshold: float = 0.5, min_size: int = 30,
                               min_distance: int = 10, footprint: int = 17) -> np.ndarray:
    """uint16 label image: 0 background, 1..N nuclei."""
    mask = _clean_mask(np.asarray(probability) > threshold, min_size)
    if not mask.any():
        return np.zeros(mask.shape, np.uint16)
    distance = ndimage.distance_transform_edt(mask)
    components, _ = ndimage.label(mask)
    peaks = peak_local_max(distance, min_distance=min_distance, footprint=np.ones((footprint, footprint)),
                           labels=components, exclude_border=False)
    return _split(distance, mask, peaks, min_size)


def distance_maxima(distance: np.ndarray, h: float) -> np.ndarray:
    """The markers of the dynamic watershed: the maxima of the distance map that stand at least h
    above the saddle to a higher one (h-maxima), as a boolean image. A plateau is one maximum.
    (The slow step, 0.3 s for 512 x 512: `nucseg.postprocess.tuning` computes it once per h.)"""
    return h_maxima(np.maximum(np.asarray(distance, np.float32), 0), np.float32(h)).astype(bool)


def instances_from_distance(distance: np.ndarray, threshold: float = 0.5, h: float = 1.0, min_size: int = 30,
                            maxima: np.ndarray | None = None) -> np.ndarray:
    """DIST's dynamic watershed: uint16 label image from a predicted distance map (pixels).
    `maxima`: distance_maxima(distance, h), where the caller has it already."""
    distance = np.asarray(distance, np.float32)
    mask = _clean_mask(distance > threshold, min_size)
    if not mask.any():
        return np.zeros(mask.shape, np.uint16)
    maxima = distance_maxima(distance, h) if maxima is None else maxima
    markers, count = ndimage.label(maxima & mask)
    ids, first = np.unique(markers.ravel(), return_index=True)  # one pixel of each maximum
    peaks = np.stack(np.unravel_index(first[ids > 0], mask.shape), axis=1)
    return _split(distance, mask, peaks, min_size)


def foreground(nucleus_map: np.ndarray, config) -> np.ndarray:
    """The pixels the net `config.arch` calls nucleus (its output kind's foreground)."""
    from nucseg.postprocess.kinds import kind_of  # the kinds are built on this module's functions

    return kind_of(config).foreground(nucleus_map, config)


def instances_from_config(nucleus_map: np.ndarray, config) -> np.ndarray:
    """Nuclei from the map of the net `config.arch` (its output kind's instances)."""
    from nucseg.postprocess.kinds import kind_of

    return kind_of(config).instances(nucleus_map, config)
