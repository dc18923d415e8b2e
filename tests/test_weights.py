import numpy as np

from conftest import blob_label
from nucseg.data.weights import binary_target, border_weights, class_weights, weight_map


def test_touching_nuclei_are_separated_in_the_target():
    label = np.zeros((5, 6), np.int32)
    label[1:4, 1:3], label[1:4, 3:5] = 1, 2  # two nuclei sharing the border between columns 2 and 3
    target = binary_target(label)
    assert not target[1:4, 2:4].any()  # both sides of the shared border become background
    assert target[2, 1] == 1 and target[2, 4] == 1
    assert np.array_equal(binary_target(label, separate_touching=False), (label > 0).astype(np.uint8))


def test_class_weights_give_each_class_half_the_weight():
    target = np.zeros((10, 10), np.uint8)
    target[:2] = 1
    w = class_weights(target)
    assert np.isclose(w[target == 1].sum(), w[target == 0].sum())
    assert np.isclose(w.mean(), 1.0)


def test_border_weight_is_high_between_close_nuclei_and_zero_on_nuclei():
    label = blob_label()  # nuclei 1 and 2 touch, nucleus 3 is apart
    target = binary_target(label)
    w = weight_map(label, target, class_balance=False, w0=10, sigma=5)
    assert (w[target > 0] == 1).all()  # no border weight on the nucleus class
    gap = w[14, 27]  # background just above where the two nuclei touch: d1 + d2 small
    far = w[60, 5]  # a corner far from every nucleus
    assert gap > 1 + 5 and far < 1 + 0.01


def test_border_weights_match_brute_force():
    from scipy import ndimage

    label = blob_label()
    distances = np.stack([ndimage.distance_transform_edt(label != k) for k in (1, 2, 3)])
    d = np.sort(distances, axis=0)
    expected = 10 * np.exp(-((d[0] + d[1]) ** 2) / (2 * 5.0**2))
    got = border_weights(label, 10, 5)
    # the box shortcut drops nuclei beyond 3 sigma, where the weight is below 10 * exp(-4.5)
    assert np.abs(got - expected).max() < 10 * np.exp(-4.5)


def test_weight_map_is_positive_everywhere():
    label = blob_label()
    w = weight_map(label, binary_target(label), class_balance=True, w0=10, sigma=5)
    assert (w > 0).all() and w.dtype == np.float32


def test_the_line_cut_between_touching_nuclei_gets_the_border_weight():
    label = np.zeros((12, 14), np.int32)
    label[3:9, 2:7], label[3:9, 7:12] = 1, 2  # two touching nuclei
    target = binary_target(label)
    line = (label > 0) & (target == 0)  # nucleus pixels that the target turns into background
    assert line.any()
    w = weight_map(label, target, class_balance=False, w0=10, sigma=5)
    assert (w[line] > 1 + 0.5 * 10).all(), w[line].min()  # these are the pixels the weight exists for
