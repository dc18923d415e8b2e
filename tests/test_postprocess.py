import numpy as np

from nucseg.postprocess.instances import instances_from_probability


def discs(centres, radius=10, size=80):
    yy, xx = np.mgrid[:size, :size]
    return np.any([(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2 for cy, cx in centres], axis=0)


def test_touching_nuclei_are_split():
    probability = discs([(40, 25), (40, 43)]).astype(np.float32)  # overlapping discs, one blob
    labels = instances_from_probability(probability)
    assert labels.dtype == np.uint16 and labels.max() == 2
    assert labels[40, 25] != labels[40, 43]


def test_one_round_nucleus_stays_one():
    labels = instances_from_probability(discs([(40, 40)], radius=14).astype(np.float32))
    assert labels.max() == 1


def test_small_objects_and_low_probability_go():
    probability = discs([(20, 20)]).astype(np.float32) * 0.9
    probability[60:63, 60:63] = 1.0  # 9 pixels: below min_size
    probability[70:78, 5:20] = 0.3  # below the threshold
    labels = instances_from_probability(probability, threshold=0.5, min_size=30)
    assert labels.max() == 1 and labels[61, 61] == 0 and labels[72, 10] == 0


def test_empty_map_gives_empty_labels():
    labels = instances_from_probability(np.zeros((16, 16), np.float32))
    assert labels.shape == (16, 16) and labels.max() == 0
