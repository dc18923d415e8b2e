"""DIST: the distance-map target, its loss, the dynamic watershed, and a DIST fold end to end
(trained, resumed, exported, reloaded, predicting nuclei through the CLI)."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage
from skimage.morphology import h_maxima

from conftest import kill_after_first_checkpoint, noisy_distance_map

from nucseg.cli import main
from nucseg.config import Config
from nucseg.models.losses import masked_mean_squared_error
from nucseg.postprocess.instances import instances_from_distance
from nucseg.postprocess.kinds import instances_from_config
from nucseg.data.weights import distance_target


def two_touching_squares():
    label = np.zeros((30, 50), np.int32)
    label[5:25, 5:25] = 1
    label[5:25, 25:45] = 2
    return label


def test_touching_squares_give_two_maxima_and_a_valley():
    distance = distance_target(two_touching_squares())
    maxima, count = ndimage.label(h_maxima(distance, 1.0))
    assert count == 2
    assert distance[15, 24] == distance[15, 25] == 1  # the two border rows meet: a valley of 1s
    assert distance[15, 14] == distance[15, 35] == 10  # each centre: 10 pixels from its own border
    assert (distance[two_touching_squares() == 0] == 0).all()


def test_each_nucleus_is_transformed_alone_even_at_the_tile_edge():
    label = np.zeros((20, 20), np.int32)
    label[0:6, 0:6] = 1  # cut by the tile edge: it ends there
    distance = distance_target(label)
    assert distance[0, 0] == 1 and distance[2, 2] == 3


def test_masked_mse_weight_zero_adds_nothing():
    rng = np.random.default_rng(0)
    target, prediction = rng.uniform(0, 8, (2, 16, 16)), rng.uniform(0, 8, (2, 16, 16, 1))
    weight = rng.uniform(0.5, 2, (2, 16, 16))
    value = float(masked_mean_squared_error(np.stack([target, weight], -1).astype(np.float32),
                                            prediction.astype(np.float32)))
    expected = np.sum(weight * (prediction[..., 0] - target) ** 2) / weight.sum()
    assert value == pytest.approx(expected, rel=1e-5)
    masked = weight.copy()
    masked[:, :8] = 0
    spoiled = prediction.copy()
    spoiled[:, :8] += 100  # wrong where the weight is 0: no change
    a = float(masked_mean_squared_error(np.stack([target, masked], -1).astype(np.float32),
                                        prediction.astype(np.float32)))
    b = float(masked_mean_squared_error(np.stack([target, masked], -1).astype(np.float32), spoiled.astype(np.float32)))
    assert a == pytest.approx(b, rel=1e-6)
    zero = masked_mean_squared_error(np.zeros((1, 4, 4, 2), np.float32), np.ones((1, 4, 4, 1), np.float32))
    assert float(zero) == 0.0


def test_dynamic_watershed_splits_at_a_deep_valley_only():
    """Two peaks of heights 6 and 5 over a saddle at 3: lambda 1 keeps both (the lower one stands
    2 above the saddle), lambda 3 keeps the higher one only."""
    yy, xx = np.mgrid[:40, :70]
    left = 6 - np.hypot(yy - 20, xx - 20) * 0.2
    right = 5 - np.hypot(yy - 20, xx - 45) * 0.2
    distance = np.maximum(np.maximum(left, right), 0).astype(np.float32)
    saddle = distance[20, 20:46].min()
    assert 2.5 < saddle < 3.5
    two = instances_from_distance(distance, threshold=0.5, h=1.0, min_size=10)
    one = instances_from_distance(distance, threshold=0.5, h=3.0, min_size=10)
    assert two.max() == 2 and one.max() == 1
    assert two[20, 20] != two[20, 45] and two[20, 20] > 0 and two[20, 45] > 0
    assert (one > 0).sum() == (two > 0).sum() == (ndimage.binary_fill_holes(distance > 0.5)).sum()


def test_dist_config_post_processes_a_distance_map():
    config = Config.from_profile("quick", arch="dist")
    assert config.output_kind == "distance" and Config().output_kind == "probability"
    labels = instances_from_config(distance_target(two_touching_squares()), config.replace(min_object_size=10))
    assert labels.max() == 2


@pytest.mark.slow
def test_dist_fold_trains_resumes_exports_and_predicts_nuclei(glioma_path, tmp_path, monkeypatch, capsys):
    from nucseg.inference.saved import saved_config
    from nucseg.inference.predict import load_predictor, output_kind_of
    from nucseg.training.train import EpochCheckpoint

    patient = "TCGA-DB-5270"
    fold = tmp_path / "fold"
    args = ["train", "--data", str(glioma_path), "--arch", "dist", "--val-patient", patient, "--profile", "quick",
            "--steps", "60", "--crop", "64", "--set", "steps_per_epoch=30", "--set", "base_filters=4",
            "--set", "unet_depth=2", "--set", "checkpoint_seconds=0",
            "--out", str(fold), "--verbose", "0"]
    original = kill_after_first_checkpoint(monkeypatch)
    assert main(args) == 130  # the CLI turns the interruption into "rerun the same command to resume"
    assert (fold / "checkpoint.keras").is_file() and not (fold / "scores.json").exists()
    monkeypatch.setattr(EpochCheckpoint, "on_epoch_end", original)
    assert main(args) == 0  # resumed from the checkpoint
    assert sorted(json.loads((fold / "losses.json").read_text())) == ["0", "1"]
    scores = json.loads((fold / "scores.json").read_text())
    assert scores["steps"] == 60 and 0 <= scores["scores"]["aji"] <= 1
    chosen = json.loads((fold / "postprocess.json").read_text())
    assert {"dist_threshold", "dist_lambda"} <= set(chosen) and "threshold" not in chosen
    assert saved_config(fold / "saved_model").dist_lambda == chosen["dist_lambda"]
    for model in (fold / "model.keras", fold / "saved_model"):
        assert output_kind_of(load_predictor(model)) == "distance"

    image = next(p for p in sorted((glioma_path / patient).glob("*.png")) if not p.stem.endswith("_label"))
    out = tmp_path / "pred"
    # TensorFlow here: OpenVINO's conversions of both exports are tests/test_engines.py's
    assert main(["predict", str(fold / "saved_model"), str(image), "--out", str(out), "--engine", "tensorflow"]) == 0
    written = {p.name for p in out.iterdir()}
    stem = image.stem
    assert {f"{stem}_dist.png", f"{stem}_mask.png", f"{stem}_label.png", f"{stem}.geojson",
            f"{stem}_nuclei.csv"} <= written
    evaluate = ["evaluate", str(fold / "model.keras"), str(glioma_path), "--out", str(tmp_path / "eval"), "--engine",
                "tensorflow", "--patients"]
    capsys.readouterr()
    assert main(evaluate + ["TCGA-NOPE"]) == 2  # refused by name, before the model is loaded
    assert "no patient TCGA-NOPE; its patients are TCGA-DB-5270" in capsys.readouterr().err
    assert main(evaluate + [patient]) == 0  # the held-out patient's tiles only: enough, and quick
    assert set(pd.read_csv(tmp_path / "eval" / "tiles.csv")["patient"]) == {patient}
    summary = (tmp_path / "eval" / "summary.md").read_text()
    assert "| dist (fold) |" in summary and "| otsu-hematoxylin |" in summary


def canonical(labels):
    """The label image with its nuclei numbered in the order of their first pixel (a partition's own numbering)."""
    ids, first = np.unique(labels.ravel(), return_index=True)
    numbering = np.zeros(int(labels.max()) + 1, np.int64)
    numbering[ids[np.argsort(first)]] = np.arange(len(ids))
    return numbering[labels]


def test_maxima_bounded_per_piece_give_the_nuclei_of_the_whole_image(glioma_tiles):
    """Noisy distance maps of real nuclei (so pieces have several maxima, plateaus and holes):
    the bounded markers give the same nuclei as skimage's h-maxima of the whole image, both those
    of the threshold's own pieces (prediction) and those of the pieces at a lower threshold (the
    choice of post-processing, which finds them once for every threshold of its grid)."""
    from scipy import ndimage

    from nucseg.data.weights import distance_target
    from nucseg.postprocess.instances import distance_maxima

    rng = np.random.default_rng(0)
    compared = 0
    for tile in glioma_tiles[:3]:
        label = tile.label[:384, :384]
        noise = ndimage.gaussian_filter(rng.normal(0, 1.5, label.shape), 2)
        distance = np.round(distance_target(label) + noise, 1).astype(np.float32)  # rounding: plateaus too
        for h in (0.5, 1.0, 3.0):
            whole_image_maxima = h_maxima(np.maximum(distance, 0), np.float32(h)).astype(bool)
            at_lowest = distance_maxima(distance, h, above=0.5)
            for threshold in (0.5, 1.0, 2.0):
                whole = canonical(instances_from_distance(distance, threshold, h, 30, maxima=whole_image_maxima))
                bounded = instances_from_distance(distance, threshold, h, 30)
                assert np.array_equal(whole, canonical(bounded)), (tile.tile_id, threshold, h)
                lower = instances_from_distance(distance, threshold, h, 30, maxima=at_lowest)
                assert np.array_equal(whole, canonical(lower)), (tile.tile_id, threshold, h)
                compared += bounded.max() > 5
    assert compared >= 20


def _skimage_h_maxima_per_piece(distance, h, pieces, which):
    """The reference: skimage's h_maxima of each piece cropped alone (its box, -1 around it)."""
    maxima = np.zeros(distance.shape, bool)
    boxes = ndimage.find_objects(pieces)
    for piece in which:
        inside = pieces[boxes[piece - 1]] == piece
        crop = np.where(inside, distance[boxes[piece - 1]], np.float32(-1))
        maxima[boxes[piece - 1]] |= h_maxima(crop, np.float32(h)).astype(bool) & inside
    return maxima


def _random_field(rng, kind: str) -> np.ndarray:
    """A smooth random field of 0..15 pixels; rounded or clipped for plateaus, ties and flat tops."""
    field = ndimage.gaussian_filter(rng.normal(0, 1, tuple(rng.integers(5, 120, 2))), rng.uniform(0.5, 6))
    field = (field - field.min()) / (np.ptp(field) + 1e-9) * rng.uniform(1, 15)
    field = {
        "smooth": field,
        "tenths": np.round(field, 1),
        "integers": np.round(field),
        "flat tops": np.minimum(field, np.quantile(field, 0.9)),
    }[kind]
    return field.astype(np.float32)


@pytest.mark.parametrize("kind", ["smooth", "tenths", "integers", "flat tops"])
def test_h_maxima_from_dynamics_are_skimages_per_piece(kind):
    """piece_h_maxima (basins, saddles, a union-find) marks the very pixels of skimage's h_maxima
    on each piece alone: plateaus, ties, pieces filling their box, pieces whose range is below h
    and the tolerance of skimage's float test included."""
    from nucseg.postprocess.dynamics import piece_h_maxima
    from nucseg.postprocess.instances import fill_holes

    rng = np.random.default_rng(["smooth", "tenths", "integers", "flat tops"].index(kind))
    several = 0
    for _ in range(150):
        distance = _random_field(rng, kind)
        h = float(rng.choice([0.1, 0.5, 1.0, 2.0, 3.0, 5.0]))
        pieces, count = ndimage.label(fill_holes(distance > rng.uniform(0, distance.max())), structure=np.ones((3, 3)))
        which = np.arange(1, count + 1)
        expected = _skimage_h_maxima_per_piece(distance, h, pieces, which)
        assert np.array_equal(piece_h_maxima(distance, h, pieces, which), expected), (kind, h)
        several += ndimage.label(expected, structure=np.ones((3, 3)))[1] > count
    assert several >= 20  # pieces with two maxima or more, where the dynamics decide


def test_h_maxima_from_dynamics_keep_a_maximum_within_skimages_tolerance():
    """A pixel a few float32 steps below its maximum (within skimage's tolerance of 2e-6 x value)
    is part of the maximum, as in skimage: seen on a real tile of the shipped model."""
    from nucseg.postprocess.dynamics import piece_h_maxima

    distance = np.full((5, 6), 1.0, np.float32)
    distance[1:4, 1:5] = [
        [4.7534485, 4.860299, 4.720891, 3.0],
        [4.8136835, 4.8602905, 4.7215376, 2.0],
        [4.767634, 4.725513, 4.487761, 3.5],
    ]
    pieces = np.ones(distance.shape, np.int32)
    expected = _skimage_h_maxima_per_piece(distance, 1.0, pieces, [1])
    assert expected[2, 2] and expected[1, 2] and expected.sum() == 2
    assert np.array_equal(piece_h_maxima(distance, 1.0, pieces, np.array([1])), expected)


def test_max_of_3x3_is_scipys_maximum_filter(glioma_tiles):
    from scipy import ndimage

    from nucseg.data.weights import distance_target
    from nucseg.postprocess.instances import max_of_3x3

    rng = np.random.default_rng(1)
    images = [rng.normal(size=shape).astype(np.float32) for shape in ((37, 53), (1, 9), (8, 1), (2, 2))]
    images.append(np.round(distance_target(glioma_tiles[0].label), 1).astype(np.float32))  # plateaus
    for image in images:
        assert np.array_equal(max_of_3x3(image), ndimage.maximum_filter(image, footprint=np.ones((3, 3)))), image.shape


def test_fill_holes_is_scipys():
    from scipy import ndimage

    from nucseg.postprocess.instances import fill_holes

    rng = np.random.default_rng(1)
    for density in (0.3, 0.5, 0.7):
        mask = ndimage.binary_opening(rng.random((200, 300)) < density)
        assert np.array_equal(fill_holes(mask), ndimage.binary_fill_holes(mask))


def test_split_flooded_per_component_is_the_whole_image_watershed(glioma_tiles):
    """Noisy distance maps of real nuclei: the split, flooded component by component, gives the
    labels of one watershed of the whole image. Where two markers of one component stand at the
    same height, skimage's flood breaks the tie by its heap's layout, which differs with the
    image's size: only there may the two differ (rounded maps have such ties)."""
    from skimage.segmentation import watershed

    from nucseg.labels import renumbered
    from nucseg.postprocess.instances import _split, distance_maxima, fill_holes

    def whole_image(distance, mask, peaks, min_size):
        components, _ = ndimage.label(mask)
        markers = np.zeros(mask.shape, np.int32)
        markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
        unmarked = np.setdiff1d(np.unique(components[mask]), np.unique(components[markers > 0]))
        for k, component in enumerate(unmarked, start=len(peaks) + 1):
            markers[tuple(np.argwhere(components == component)[0])] = k
        labels = watershed(-distance, markers, mask=mask)
        return renumbered(labels, np.bincount(labels.ravel()) >= min_size, np.uint16)

    def tied_components(distance, components, peaks):
        """Components with two markers at the same height."""
        of_peak, height = components[tuple(peaks.T)], distance[tuple(peaks.T)]
        return {c for c in np.unique(of_peak) if len(np.unique(height[of_peak == c])) < np.sum(of_peak == c)}

    rng = np.random.default_rng(2)
    flooded = 0
    for tile in glioma_tiles[:3]:
        label = tile.label[:384, :384]
        noisy = noisy_distance_map(label, rng, 1.5)
        for rounded in (False, True):
            distance = (np.round(noisy, 1) if rounded else noisy).astype(np.float32)
            mask = fill_holes(distance > 0.5)
            markers, _ = ndimage.label(distance_maxima(distance, 1.0, above=0.5) & mask)
            ids, first = np.unique(markers.ravel(), return_index=True)
            peaks = np.stack(np.unravel_index(first[ids > 0], mask.shape), axis=1)
            peaks = peaks[rng.random(len(peaks)) < 0.8]  # some components left without a marker
            min_size = 1 if rounded else 30  # 1: a tie's other choice would renumber the pieces after it
            expected = whole_image(distance, mask, peaks, min_size)
            got = _split(distance, *ndimage.label(mask), peaks, min_size)
            components, _ = ndimage.label(mask)
            differ = set(np.unique(components[expected != got]).tolist())
            if rounded:
                assert differ <= tied_components(distance, components, peaks), tile.tile_id
            else:
                assert not differ, tile.tile_id
            flooded += int(np.sum(np.bincount(components[tuple(peaks.T)]) >= 2))
    assert flooded >= 10


def test_large_components_are_the_labels_of_skimages_small_objects_removed(glioma_tiles):
    """One labelling gives what labelling skimage's remove_small_objects did: the same components
    (4-connected), the same numbers (the order of their first pixel), on real thresholded maps."""
    from skimage.morphology import remove_small_objects

    from nucseg.data.weights import distance_target
    from nucseg.postprocess.instances import _large_components, fill_holes

    rng = np.random.default_rng(3)
    for tile in glioma_tiles[:3]:
        noisy = distance_target(tile.label) + ndimage.gaussian_filter(rng.normal(0, 1.5, tile.label.shape), 2)
        mask = fill_holes(noisy > 1.0)
        for min_size in (1, 30, 200):
            expected, expected_count = ndimage.label(remove_small_objects(mask, max_size=min_size - 1))
            got, count = _large_components(mask, min_size)
            assert count == expected_count and np.array_equal(got, expected), (tile.tile_id, min_size)
        assert 0 < _large_components(mask, 200)[1] < _large_components(mask, 30)[1]  # some were small
