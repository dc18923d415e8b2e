"""From a net's nucleus map to nuclei: threshold, clean up, split touching nuclei.

A probability map (the binary nets): touching nuclei are split by a marker-controlled watershed
on the distance transform of the thresholded mask: one marker per local maximum of the distance
(at least `min_distance` pixels apart), so two round nuclei joined by a neck become two.

A distance map (DIST): the dynamic watershed of Naylor et al. (IEEE TMI 2019): the foreground is
where the predicted distance exceeds a threshold, the markers are the maxima that stand at least
`lambda` above their surroundings (h-maxima), and the watershed floods the negated distance.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage
from skimage.feature import peak_local_max
from skimage.segmentation import watershed

from nucseg.labels import renumbered
from nucseg.postprocess.dynamics import EIGHT, piece_h_maxima


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """ndimage.binary_fill_holes, by labelling the background once (a third of the time of
    SciPy's repeated dilation on a 1024 x 1024 tile; the same result, tested)."""
    background, count = ndimage.label(~mask)
    edges = np.concatenate([background[0], background[-1], background[:, 0], background[:, -1]])
    filled = np.ones(count + 1, bool)  # per background label: filled unless it reaches the edge; 0 is the mask
    filled[edges] = False
    filled[0] = True
    return filled[background]


@dataclasses.dataclass(frozen=True)
class Pieces:
    """A foreground with its holes filled, and its 8-connected pieces: `labels` 0 outside them, a
    number per piece up to `count` (some numbers may be unused: see without)."""

    filled: np.ndarray
    labels: np.ndarray
    count: int
    boxes: list | None = None  # ndimage.find_objects(labels), where known (else found where needed)

    def without(self, cleared: np.ndarray, boxes: list | None = None) -> Pieces:
        """The pieces less those whose pixels are true in `cleared` (a boolean image that holds
        each piece whole or not at all), their numbers kept. `boxes`: find_objects of these
        pieces' labels, where the caller has them (a cleared piece's box is not looked at again)."""
        labels = np.where(cleared, 0, self.labels)
        return Pieces(labels > 0, labels, self.count, boxes)


def foreground_pieces(foreground: np.ndarray) -> Pieces:
    return _pieces_of_filled(fill_holes(np.asarray(foreground, bool)))


def _pieces_of_filled(filled: np.ndarray) -> Pieces:
    return Pieces(filled, *ndimage.label(filled, structure=EIGHT))


def _large_components(mask: np.ndarray, min_size: int) -> tuple[np.ndarray, int]:
    """The 4-connected components of mask of at least min_size pixels, numbered 1..count in the
    order of their first pixel: ndimage.label of skimage's remove_small_objects(mask), from one
    labelling instead of two (the watershed's components are these)."""
    components, count = ndimage.label(mask)
    large = np.bincount(components[mask], minlength=count + 1) >= min_size  # the mask's pixels: a fifth of a tile
    large[0] = False
    numbers = np.where(large, np.cumsum(large), 0).astype(components.dtype)
    return numbers[components], int(large.sum())


def _split(distance: np.ndarray, components: np.ndarray, count: int, peaks: np.ndarray, min_size: int) -> np.ndarray:
    """Watershed of -distance inside the mask's components (_large_components) from one marker
    per peak ((N, 2) rows, cols, numbered 1..N in that order); a component without a peak (too
    thin) keeps one marker of its own (numbered on from N + 1, in the order of the components).

    The flood never leaves a 4-connected component of the mask (the watershed's own
    connectivity), so each component is flooded alone: one with a single marker is that marker's
    nucleus whole, and only those with two or more are flooded, each in its bounding box. The
    same labels as one watershed of the whole image (tested in tests/test_dist.py): within a
    component the flood's order is the same, its ties broken by the same raster order."""
    peaks = np.asarray(peaks, np.intp).reshape(-1, 2)
    component_of_peak = components[tuple(peaks.T)]
    per_component = np.bincount(component_of_peak, minlength=count + 1)
    label_of = np.zeros(count + 1, np.int32)
    alone = per_component[component_of_peak] == 1
    label_of[component_of_peak[alone]] = np.flatnonzero(alone) + 1
    unmarked = np.flatnonzero(per_component[1:] == 0) + 1
    label_of[unmarked] = np.arange(len(peaks) + 1, len(peaks) + 1 + len(unmarked))
    labels = label_of[components]
    boxes = ndimage.find_objects(components)
    for component in np.flatnonzero(per_component >= 2):
        box = boxes[component - 1]
        inside = components[box] == component
        markers = np.zeros(inside.shape, np.int32)
        mine = np.flatnonzero(component_of_peak == component)
        markers[peaks[mine, 0] - box[0].start, peaks[mine, 1] - box[1].start] = mine + 1
        flooded = watershed(-distance[box], markers, mask=inside)
        labels[box][inside] = flooded[inside]
    nuclei = labels[components > 0]  # the components' pixels: a fifth of a tile, counted faster than all of it
    kept = np.bincount(nuclei, minlength=int(nuclei.max(initial=0)) + 1) >= min_size  # not pieces split too small
    return renumbered(labels, kept, np.uint16)


def instances_from_probability(
    probability: np.ndarray,
    threshold: float = 0.5,
    min_size: int = 30,
    min_distance: int = 10,
    footprint: int = 17,
    pieces: Pieces | None = None,
) -> np.ndarray:
    """uint16 label image: 0 background, 1..N nuclei. `pieces`: foreground_pieces(probability >
    threshold), where the caller has them already."""
    filled = pieces.filled if pieces is not None else fill_holes(np.asarray(probability) > threshold)
    components, count = _large_components(filled, min_size)
    if not count:
        return np.zeros(components.shape, np.uint16)
    distance = ndimage.distance_transform_edt(components > 0)
    peaks = peak_local_max(
        distance,
        min_distance=min_distance,
        footprint=np.ones((footprint, footprint)),
        labels=components,
        exclude_border=False,
    )
    return _split(distance, components, count, peaks, min_size)


def max_of_3x3(image: np.ndarray) -> np.ndarray:
    """ndimage.maximum_filter(image, footprint=np.ones((3, 3))), whose edge mode repeats the edge
    pixel: as running maxima of shifted views (a tenth of its time on a 1024 x 1024 tile)."""
    rows = image.copy()
    np.maximum(rows[1:], image[:-1], out=rows[1:])
    np.maximum(rows[:-1], image[1:], out=rows[:-1])
    both = rows.copy()
    np.maximum(both[:, 1:], rows[:, :-1], out=both[:, 1:])
    np.maximum(both[:, :-1], rows[:, 1:], out=both[:, :-1])
    return both


def distance_maxima(distance: np.ndarray, h: float, above: float) -> np.ndarray:
    """The markers of the dynamic watershed: the maxima of the distance map that stand at least h
    above the saddle to a higher one (h-maxima), as a boolean image. A plateau is one maximum.

    `above`: the foreground threshold; only the nuclei matter (instances_from_distance). So the
    work is bounded per piece of the foreground (8-connected, holes filled), each looked at
    alone, and only where it has two maxima or more. This gives the same nuclei as skimage's
    h_maxima of the whole image: a way out of a piece dips to `above` or lower, so between two
    maxima of one piece the way inside is the higher; the piece's highest maximum is always kept,
    and where the whole image does not keep it, no other maximum of its piece stands h above its
    saddle either, so the piece is one nucleus both ways. The same holds for the pieces of any
    higher threshold, which lie within these (the choice of post-processing uses that: see
    DistanceKind.instances). (Tested in tests/test_dist.py; 0.48 s -> 0.13 s for a 1024 x 1024
    tile: results/measured/speed/postprocess.txt.)"""
    distance = np.maximum(np.asarray(distance, np.float32), 0)
    return _maxima_per_piece(distance, h, foreground_pieces(distance > above))


def _maxima_per_piece(distance: np.ndarray, h: float, foreground: Pieces) -> np.ndarray:
    """distance_maxima(distance, h, above) where `foreground` is foreground_pieces(distance > above)."""
    pieces, count = foreground.labels, foreground.count
    if not count:
        return np.zeros(distance.shape, bool)
    # Local maxima (no higher neighbour), grouped into plateaus: a piece's plateaus are its maxima
    # when it has one; only pieces with more need the h-maxima (skimage's per piece, from dynamics.py).
    top = (distance == max_of_3x3(distance)) & (pieces > 0)
    plateaus, n_plateaus = ndimage.label(top, structure=EIGHT)
    piece_of_plateau = np.zeros(n_plateaus + 1, np.int64)
    piece_of_plateau[plateaus[top]] = pieces[top]
    per_piece = np.bincount(piece_of_plateau[1:], minlength=count + 1)
    single = per_piece == 1
    single[0] = False
    several = np.flatnonzero(per_piece > 1)
    return (single[pieces] & top) | piece_h_maxima(distance, h, pieces, several, foreground.boxes)


def instances_from_distance(
    distance: np.ndarray,
    threshold: float = 0.5,
    h: float = 1.0,
    min_size: int = 30,
    maxima: np.ndarray | None = None,
    pieces: Pieces | None = None,
) -> np.ndarray:
    """DIST's dynamic watershed: uint16 label image from a predicted distance map (pixels).
    `maxima`: distance_maxima(distance, h, above) for an `above` no higher than threshold;
    `pieces`: foreground_pieces(distance > threshold), where the caller has them already."""
    distance = np.asarray(distance, np.float32)
    filled = pieces.filled if pieces is not None else fill_holes(distance > threshold)
    components, count = _large_components(filled, min_size)
    if not count:
        return np.zeros(components.shape, np.uint16)
    if maxima is None:
        pieces = pieces if pieces is not None else _pieces_of_filled(filled)
        maxima = _maxima_per_piece(np.maximum(distance, 0), h, pieces)
    markers, _ = ndimage.label(maxima & (components > 0))
    marked = np.flatnonzero(markers)  # the maxima's pixels: np.unique then sorts these, not the tile
    _, first = np.unique(markers.ravel()[marked], return_index=True)  # the first pixel of each maximum
    peaks = np.stack(np.unravel_index(marked[first], components.shape), axis=1)
    return _split(distance, components, count, peaks, min_size)
