"""Arithmetic on instance label images (0 background, one id per nucleus), by lookup tables and
bincounts: renumbering, and per-nucleus pixel sums. Shared by post-processing, the scores and the
nuclei of tiles, so each does it the same way."""

from __future__ import annotations

import numpy as np


def renumbered(labels: np.ndarray, kept: np.ndarray, dtype=np.intp) -> np.ndarray:
    """`labels` with the ids where `kept[id]` is true renumbered 1..N in the order of their ids,
    every other id (and 0) set to 0. `kept` has one entry per id 0..labels.max(). A lookup table:
    a tenth of the time of np.unique's sort (skimage's relabel_sequential sorts too)."""
    kept = np.array(kept, bool)
    kept[0] = False
    return np.where(kept, np.cumsum(kept), 0).astype(dtype)[labels]


def nucleus_pixels(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, owner, area): the nucleus pixels, the id of each, and the pixel count of
    each id 1..labels.max() (0 for an id without pixels)."""
    # Nucleus pixels only (a third of a tile or less), by flat indices: 0.6 of the time of
    # np.nonzero's rows and columns and indexing by them (a scratch measure on a slide tile).
    labels = np.asarray(labels)
    flat = np.flatnonzero(labels)
    owner = labels.ravel()[flat].astype(np.intp)
    rows, cols = np.divmod(flat, labels.shape[1])
    area = np.bincount(owner, minlength=int(labels.max(initial=0)) + 1)[1:]
    return rows, cols, owner, area


def kept_pixels(pixels: tuple, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """nucleus_pixels of the label image with only the ids where `keep[id]` is true (the others
    set to 0), from `pixels`, nucleus_pixels of the whole one: the same arrays, the order kept."""
    rows, cols, owner, area = pixels
    mine = keep[owner]
    highest = int(np.flatnonzero(keep).max(initial=0))
    return rows[mine], cols[mine], owner[mine], np.where(keep[1:], area, 0)[:highest]


def nucleus_means(owner: np.ndarray, area: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The mean of `values` (one per nucleus pixel, as from nucleus_pixels) over each id 1..len(area);
    0 for an id without pixels."""
    return np.bincount(owner, weights=values, minlength=len(area) + 1)[1:] / np.maximum(area, 1)
