"""Segmentation scores as plain NumPy functions.

Pixel scores of the paper: accuracy, F1 of the nucleus class, Perf = (TPR + TNR) / 2; and
IoU. Object scores beyond it, from instance labels: aggregated Jaccard index (AJI, Kumar et
al. 2017), object precision / recall / F1 with IoU > 0.5 matching, panoptic quality (PQ).

Scores come from counts that add up (`PixelCounts`, `ObjectCounts`), so a patient's score pools
its tiles: one confusion matrix, one matching tally, one AJI sum. Empty cases: a score whose
denominator is 0 because there is nothing to find and nothing was found is 1 (perfect);
when there was something to find, or something was found, but not both, the score is 0.
Sensitivity (TPR), and Perf which averages it, are undefined (NaN) where the truth has no
nucleus pixel: a patient with nothing to find is not given a perfect sensitivity.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from nucseg.labels import renumbered


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 1.0


@dataclasses.dataclass(frozen=True)
class PixelCounts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def __add__(self, other: PixelCounts) -> PixelCounts:
        return PixelCounts(*(getattr(self, f) + getattr(other, f) for f in ("tp", "fp", "fn", "tn")))

    def scores(self) -> dict[str, float]:
        tpr = _ratio(self.tp, self.tp + self.fn) if self.tp + self.fn else float("nan")
        tnr = _ratio(self.tn, self.tn + self.fp)
        return {
            "accuracy": _ratio(self.tp + self.tn, self.tp + self.tn + self.fp + self.fn),
            "f1": _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn),
            "perf": (tpr + tnr) / 2,
            "iou": _ratio(self.tp, self.tp + self.fp + self.fn),
            "tpr": tpr,
            "tnr": tnr,
            "predicted_fraction": _ratio(self.tp + self.fp, self.tp + self.fp + self.fn + self.tn),
        }


def pixel_counts(predicted, truth) -> PixelCounts:
    """Confusion counts of two masks (anything > 0 is nucleus)."""
    p, t = np.asarray(predicted) > 0, np.asarray(truth) > 0
    tp = int(np.count_nonzero(p & t))
    fp = int(np.count_nonzero(p & ~t))
    fn = int(np.count_nonzero(~p & t))
    return PixelCounts(tp, fp, fn, int(p.size) - tp - fp - fn)


@dataclasses.dataclass(frozen=True)
class ObjectCounts:
    matched: int = 0  # pairs with IoU > 0.5 (true positives)
    missed: int = 0  # true nuclei with no match (false negatives)
    spurious: int = 0  # predicted nuclei with no match (false positives)
    matched_iou: float = 0.0  # sum of the IoU of the matched pairs
    aji_intersection: int = 0
    aji_union: int = 0

    def __add__(self, other: ObjectCounts) -> ObjectCounts:
        return ObjectCounts(*(getattr(self, f.name) + getattr(other, f.name) for f in dataclasses.fields(self)))

    def scores(self) -> dict[str, float]:
        tp, fp, fn = self.matched, self.spurious, self.missed
        return {
            "aji": _ratio(self.aji_intersection, self.aji_union),
            "object_precision": _ratio(tp, tp + fp) if tp + fp or not fn else 0.0,
            "object_recall": _ratio(tp, tp + fn) if tp + fn or not fp else 0.0,
            "object_f1": _ratio(2 * tp, 2 * tp + fp + fn),
            "pq": _ratio(self.matched_iou, tp + fp / 2 + fn / 2),
        }


def overlaps(truth: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intersections (T, P) of true nuclei 1..T with predicted ones 1..P, and their areas."""
    truth = _sequential(truth)
    predicted = _sequential(predicted)
    n_true, n_pred = truth.max(initial=0), predicted.max(initial=0)
    joint = np.bincount(
        (truth.ravel() * (n_pred + 1) + predicted.ravel()).astype(np.int64), minlength=(n_true + 1) * (n_pred + 1)
    ).reshape(n_true + 1, n_pred + 1)
    return joint[1:, 1:], joint[1:, :].sum(axis=1), joint[:, 1:].sum(axis=0)


def _sequential(label: np.ndarray) -> np.ndarray:
    """The nuclei renumbered 1..N in the order of their ids, 0 kept for background."""
    label = np.asarray(label)
    if label.dtype.kind in "ui" and label.size and 0 <= label.min() and label.max() <= max(label.size, 2**16):
        return renumbered(label, np.bincount(label.ravel()) > 0)
    values, inverse = np.unique(label, return_inverse=True)
    inverse = inverse.reshape(np.shape(label))
    return inverse if values[0] == 0 else inverse + 1


def object_counts(predicted: np.ndarray, truth: np.ndarray) -> ObjectCounts:
    """Matching (IoU > 0.5, which makes it unique) and AJI sums for two instance label images."""
    intersection, true_area, pred_area = overlaps(truth, predicted)
    union = true_area[:, None] + pred_area[None, :] - intersection
    iou = np.divide(intersection, union, out=np.zeros(intersection.shape), where=union > 0)
    matches = iou > 0.5
    matched = int(matches.sum())

    aji_intersection = aji_union = 0
    used = np.zeros(len(pred_area), bool)
    for i in range(len(true_area)):
        j = int(np.argmax(iou[i])) if len(pred_area) else -1
        if j < 0 or intersection[i, j] == 0:
            aji_union += int(true_area[i])
            continue
        aji_intersection += int(intersection[i, j])
        aji_union += int(union[i, j])
        used[j] = True
    aji_union += int(pred_area[~used].sum())
    return ObjectCounts(
        matched,
        len(true_area) - matched,
        len(pred_area) - matched,
        float(iou[matches].sum()),
        aji_intersection,
        aji_union,
    )


def all_scores(pixels: PixelCounts, objects: ObjectCounts) -> dict[str, float]:
    return {**pixels.scores(), **objects.scores()}
