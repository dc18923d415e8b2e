import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, jaccard_score

from nucseg.metrics import ObjectCounts, PixelCounts, object_counts, pixel_counts


def test_pixel_scores_match_scikit_learn():
    rng = np.random.default_rng(0)
    truth = rng.uniform(size=(40, 50)) < 0.3
    predicted = np.where(rng.uniform(size=truth.shape) < 0.8, truth, ~truth)
    scores = pixel_counts(predicted, truth).scores()
    t, p = truth.ravel(), predicted.ravel()
    assert np.isclose(scores["accuracy"], accuracy_score(t, p))
    assert np.isclose(scores["f1"], f1_score(t, p))
    assert np.isclose(scores["perf"], balanced_accuracy_score(t, p))  # (TPR + TNR) / 2
    assert np.isclose(scores["iou"], jaccard_score(t, p))


def test_pixel_scores_by_hand():
    truth = np.array([[1, 1, 0, 0]])
    predicted = np.array([[1, 0, 1, 0]])
    scores = pixel_counts(predicted, truth).scores()
    assert scores["accuracy"] == 0.5 and scores["f1"] == 0.5 and scores["perf"] == 0.5
    assert scores["iou"] == pytest.approx(1 / 3)


def test_counts_pool_over_tiles():
    a, b = PixelCounts(1, 2, 3, 4), PixelCounts(10, 0, 0, 10)
    assert (a + b) == PixelCounts(11, 2, 3, 14)
    assert (a + b).scores()["f1"] == pytest.approx(22 / (22 + 5))


def square(label, value, y, x, size):
    label[y : y + size, x : x + size] = value


def test_object_scores_by_hand():
    truth = np.zeros((20, 20), int)
    square(truth, 1, 0, 0, 4)  # found exactly
    square(truth, 2, 10, 10, 4)  # found with half of it: IoU 0.5, not a match
    square(truth, 3, 0, 10, 2)  # missed
    predicted = np.zeros((20, 20), int)
    square(predicted, 7, 0, 0, 4)
    predicted[10:14, 10:12] = 8  # 8 pixels of nucleus 2's 16
    square(predicted, 9, 16, 0, 3)  # spurious, 9 pixels
    counts = object_counts(predicted, truth)
    assert (counts.matched, counts.missed, counts.spurious) == (1, 2, 2)
    scores = counts.scores()
    assert scores["object_precision"] == pytest.approx(1 / 3)
    assert scores["object_recall"] == pytest.approx(1 / 3)
    assert scores["object_f1"] == pytest.approx(2 / (2 + 2 + 2))
    assert scores["pq"] == pytest.approx(1.0 / (1 + 1 + 1))  # one match of IoU 1
    # AJI: 1 -> 7 (16/16), 2 -> 8 (8/16), 3 -> nothing (0/4); unused prediction 9 adds 9 to the union
    assert scores["aji"] == pytest.approx((16 + 8) / (16 + 16 + 4 + 9))


def test_object_ids_need_not_be_sequential_nor_shared():
    truth = np.zeros((10, 10), int)
    square(truth, 5, 0, 0, 3)
    square(truth, 900, 5, 5, 3)
    predicted = np.where(truth == 5, 2, np.where(truth == 900, 1, 0))
    scores = object_counts(predicted, truth).scores()
    assert scores["object_f1"] == scores["aji"] == scores["pq"] == 1.0


def test_renumbering_keeps_the_order_of_ids_whatever_their_type_and_range():
    from nucseg.metrics import _sequential

    expected = np.array([[0, 2, 2], [3, 0, 1], [1, 4, 0]])
    small = np.array([[0, 7, 7], [8, 0, 2], [2, 9, 0]])  # ids up to the pixel count: a lookup table
    huge = np.array([[0, 7, 7], [300, 0, 2], [2, 70000, 0]])  # far above it: np.unique
    for labels in (small, huge):
        for dtype in (np.uint16, np.int32, np.int64, np.uint32, np.float64):
            if labels.max() <= np.iinfo(np.uint16).max or dtype is not np.uint16:
                assert np.array_equal(_sequential(labels.astype(dtype)), expected), (labels.max(), dtype)
        assert np.array_equal(_sequential(labels + 1), expected + 1)  # no background: ids from 1


@pytest.mark.parametrize("predicted_empty, truth_empty, expected", [
    (True, True, 1.0),  # nothing to find, nothing found: perfect
    (True, False, 0.0),  # everything missed
    (False, True, 0.0),  # only false positives
])
def test_empty_cases(predicted_empty, truth_empty, expected):
    some = np.zeros((8, 8), int)
    square(some, 1, 2, 2, 3)
    empty = np.zeros((8, 8), int)
    predicted, truth = (empty if predicted_empty else some), (empty if truth_empty else some)
    objects = object_counts(predicted, truth).scores()
    pixels = pixel_counts(predicted, truth).scores()
    assert objects["aji"] == objects["object_f1"] == objects["pq"] == expected
    assert pixels["f1"] == pixels["iou"] == expected
    assert 0 <= objects["object_precision"] <= 1 and 0 <= objects["object_recall"] <= 1


def test_object_counts_add_up():
    a = ObjectCounts(1, 2, 3, 0.9, 10, 20)
    assert (a + a).scores()["pq"] == pytest.approx(1.8 / (2 + 3 + 2))


def two_halves():
    left, right = np.zeros((10, 20), np.int32), np.zeros((10, 20), np.int32)
    left[:, :10], right[:, 10:] = 1, 1
    return left, right


def test_aji_of_an_under_segmentation():
    left, right = two_halves()
    truth = left + 2 * right  # two nuclei of 100 pixels
    predicted = left + right  # one object over both
    counts = object_counts(predicted, truth)
    # each true nucleus matches the merged object: intersection 100, union 200, both times
    assert (counts.aji_intersection, counts.aji_union) == (200, 400)
    assert counts.scores()["aji"] == 0.5
    assert (counts.matched, counts.missed, counts.spurious) == (0, 2, 1)  # IoU 0.5 is not > 0.5


def test_aji_of_an_over_segmentation():
    left, right = two_halves()
    truth = left + right  # one nucleus of 200 pixels
    predicted = left + 2 * right  # split in two halves
    counts = object_counts(predicted, truth)
    # best match: one half (100 / 200); the unused half adds its 100 pixels to the union
    assert (counts.aji_intersection, counts.aji_union) == (100, 300)
    assert counts.scores()["aji"] == pytest.approx(1 / 3)
    assert (counts.matched, counts.missed, counts.spurious) == (0, 1, 2)
