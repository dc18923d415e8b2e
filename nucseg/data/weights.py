"""Training targets and per-pixel weights from instance labels, computed once per tile:
the binary nets' nucleus mask and U-Net weight map, and DIST's distance map (`distance_target`).

The weight map is U-Net's (Ronneberger et al. 2015):
    w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))**2 / (2 sigma**2))   on target-background pixels,
where w_c balances the two classes and d1, d2 are the distances to the nearest and the
second-nearest nucleus. It is heavy on the thin background between touching nuclei, the lines
that `binary_target` cuts out of touching nuclei included (there d1 is 0: the pixel is inside one).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def binary_target(label: np.ndarray, separate_touching: bool = True) -> np.ndarray:
    """uint8 nucleus mask; with separate_touching, pixels of a nucleus that touch another
    nucleus become background, so that touching nuclei are apart in the target."""
    target = label > 0
    if separate_touching:
        grown = ndimage.grey_dilation(label, size=3)
        shrunk = -ndimage.grey_dilation(-np.where(target, label, label.max() + 1), size=3)
        target &= (grown == label) & (shrunk == label)
    return target.astype(np.uint8)


def class_weights(target: np.ndarray) -> np.ndarray:
    """w_c: each class carries half of the total weight (mean weight 1)."""
    fraction = np.clip(target.mean(), 0.01, 0.99)
    return np.where(target > 0, 0.5 / fraction, 0.5 / (1 - fraction)).astype(np.float32)


def border_weights(label: np.ndarray, w0: float, sigma: float) -> np.ndarray:
    """w0 * exp(-(d1 + d2)^2 / 2 sigma^2) at every pixel, from the two nearest nuclei (distance 0
    inside a nucleus); `weight_map` keeps it on the target's background only.

    A nucleus farther than 3 sigma cannot be one of the two that give a weight above
    w0 * exp(-4.5), so distances are computed only in each nucleus's box grown by 3 sigma.
    """
    reach = int(np.ceil(3 * sigma))
    big = np.float32(1e6)
    d1 = np.full(label.shape, big, np.float32)
    d2 = np.full(label.shape, big, np.float32)
    for index, box in enumerate(ndimage.find_objects(label), start=1):
        if box is None:
            continue
        grown = tuple(slice(max(s.start - reach, 0), s.stop + reach) for s in box)
        distance = ndimage.distance_transform_edt(label[grown] != index).astype(np.float32)
        near1, near2 = d1[grown], d2[grown]
        d2[grown] = np.minimum(near2, np.maximum(near1, distance))
        d1[grown] = np.minimum(near1, distance)
    return (w0 * np.exp(-((d1 + d2) ** 2) / (2 * sigma**2))).astype(np.float32)


def weight_map(label: np.ndarray, target: np.ndarray, class_balance: bool, w0: float, sigma: float) -> np.ndarray:
    base = class_weights(target) if class_balance else np.ones(target.shape, np.float32)
    if w0 > 0:
        base = base + np.where(target == 0, border_weights(label, w0, sigma), 0)
    return base.astype(np.float32)


def distance_target(label: np.ndarray) -> np.ndarray:
    """DIST's target (Naylor et al., IEEE TMI 2019): inside each nucleus, its own Euclidean
    distance to its border (in pixels, 1 at the border pixels); 0 on the background.

    Each nucleus is transformed alone, as if its neighbours were background, so two touching
    nuclei get a valley of 1s between their two peaks. (The authors used a chessboard distance;
    the Euclidean one is rounder, so a nucleus has one maximum rather than a ridge.) No
    normalisation: the net regresses pixels, and the post-processing's thresholds are in pixels.
    """
    distance = np.zeros(label.shape, np.float32)
    for index, box in enumerate(ndimage.find_objects(label), start=1):
        if box is None:
            continue
        grown = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in box)
        inside = label[grown] == index
        padded = np.pad(inside, 1)  # a nucleus on the tile edge ends there
        own = ndimage.distance_transform_edt(padded)[1:-1, 1:-1].astype(np.float32)
        distance[grown] = np.where(inside, own, distance[grown])
    return distance
