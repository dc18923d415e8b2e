"""Training on several data sets at once, their resolutions, leave one data set out, fine-tuning
from a model, prediction at another resolution, and the pretrained model (issue 19)."""

import hashlib
import shutil

import numpy as np
import pytest

from conftest import make_generic_dataset, write_png
from nucseg.cli import main
from nucseg.config import Config, ConfigError
from nucseg.data.dataset import DatasetError, load_dataset, patients_of


def two_sets(tmp_path, big_tiles=6):
    a = make_generic_dataset(tmp_path / "lab_a", patients=("P1", "P2"), tiles=1, size=96)
    b = make_generic_dataset(tmp_path / "lab_b", patients=("P1", "P2", "P3"), tiles=big_tiles, size=96)
    return a, b


def test_patients_stay_distinct_per_data_set(tmp_path):
    a, b = two_sets(tmp_path)
    tiles = load_dataset([a, b])
    assert patients_of(tiles) == ["lab_a__P1", "lab_a__P2", "lab_b__P1", "lab_b__P2", "lab_b__P3"]
    assert {t.dataset for t in tiles} == {"lab_a", "lab_b"}
    assert patients_of(load_dataset(a)) == ["P1", "P2"]  # one data set: names unchanged


def test_two_data_sets_of_one_name_are_refused(tmp_path):
    a = make_generic_dataset(tmp_path / "x" / "lab", tiles=1)
    b = make_generic_dataset(tmp_path / "y" / "lab", tiles=1)
    with pytest.raises(DatasetError, match="both named 'lab'"):
        load_dataset([a, b])


def test_batches_are_drawn_evenly_across_data_sets(tmp_path):
    """lab_b has 18 tiles, lab_a 2: drawn by tile, lab_a would be 10 % of the samples; evenly, half."""
    import tensorflow as tf

    from nucseg.data.pipeline import _piece_picker, prepare_tiles

    a, b = two_sets(tmp_path)
    config = Config.from_profile("quick", data=[str(a), str(b)], crop=32)
    stack = prepare_tiles(load_dataset([a, b]), config)
    pick = _piece_picker(stack)
    picked = np.array([int(pick(tf.constant([7, i], tf.int64))) for i in range(600)])
    share_a = np.isin(picked, np.flatnonzero(stack.groups == 0)).mean()
    assert 0.43 < share_a < 0.57, share_a
    weighted = prepare_tiles(load_dataset([a, b]), config.replace(dataset_weights=[1, 3]))
    pick = _piece_picker(weighted)
    picked = np.array([int(pick(tf.constant([7, i], tf.int64))) for i in range(600)])
    assert 0.18 < np.isin(picked, np.flatnonzero(weighted.groups == 0)).mean() < 0.32


def test_dataset_weights_are_checked_against_the_data_sets():
    with pytest.raises(ConfigError, match="dataset_weights has 3 weights for 2 data set"):
        Config(data=["a", "b"], dataset_weights=[1, 1, 1]).validated()


def test_a_data_set_declaring_20x_is_resampled_to_the_models_resolution(tmp_path):
    data = make_generic_dataset(tmp_path / "twenty", tiles=1, size=64)
    (data / "dataset.yaml").write_text("mpp: 0.5\n")
    tiles = load_dataset(data, mpp=0.25)
    assert tiles[0].image.shape == (128, 128, 3) and tiles[0].label.shape == (128, 128)
    assert tiles[0].n_nuclei == load_dataset(data)[0].n_nuclei  # every nucleus keeps its id
    (data / "dataset.yaml").write_text("mpp: many\n")
    with pytest.raises(DatasetError, match="dataset.yaml: cannot read it"):
        load_dataset(data, mpp=0.25)


def test_lodo_trains_on_the_others_and_scores_the_one_left_out(tmp_path, capsys):
    a, b = two_sets(tmp_path, big_tiles=1)
    out = tmp_path / "lodo"
    argv = ["lodo", "--data", str(a), str(b), "--arch", "pangnet", "--profile", "quick", "--steps", "10",
            "--crop", "64", "--set", "tune_postprocess=false", "--out", str(out), "--verbose", "0"]
    assert main(argv) == 0
    import pandas as pd

    folds = pd.read_csv(out / "folds.csv")
    assert sorted(set(folds["left_out"])) == ["lab_a", "lab_b"]
    assert set(folds["method"]) == {"pangnet", "otsu-hematoxylin"} and len(folds) == 4
    assert (out / "summary.md").is_file() and (out / "figures" / "lodo.png").is_file()
    import json

    trained_on = json.loads((out / "pangnet" / "lab_a" / "scores.json").read_text())["train_patients"]
    assert all(p.startswith("lab_b__") for p in trained_on)  # never the data set it is scored on
    capsys.readouterr()
    assert main(argv) == 0 and "done earlier, skipped" in capsys.readouterr().out  # resumed, nothing redone
    assert len(pd.read_csv(out / "folds.csv")) == 4


def test_init_starts_from_a_models_weights(small_unet_fold, glioma_path, glioma_tiles, tmp_path):
    import keras

    from nucseg.models import build_model
    from nucseg.models.loading import load_keras_model
    from nucseg.training.train import initialise_from

    trained = load_keras_model(small_unet_fold / "model.keras")
    config = Config.read_json(small_unet_fold / "config.json")
    fresh = build_model(config)
    initialise_from(fresh, str(small_unet_fold))
    for a, b in zip(fresh.weights, trained.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    other = build_model(config.replace(base_filters=4))
    with pytest.raises(Exception, match=r"is not the net being trained .*weight \d+: \(.*\) there, \(.*\) here"):
        initialise_from(other, str(small_unet_fold / "model.keras"))
    del keras


def test_a_20x_image_is_predicted_at_the_models_resolution(small_dist_fold, glioma_tiles, tmp_path, capsys):
    from skimage.transform import resize

    from nucseg.data.dataset import read_label

    tile = glioma_tiles[0]
    half = resize(tile.image, (256, 256), order=1, preserve_range=True, anti_aliasing=True).round().astype(np.uint8)
    write_png(tmp_path / "in" / "x20.png", half)
    model = str(small_dist_fold / "model.keras")
    args = ["predict", model, str(tmp_path / "in" / "x20.png"), "--engine", "tensorflow"]
    assert main([*args, "--out", str(tmp_path / "at40"), "--mpp", "0.5"]) == 0
    assert "resampled x2" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "as_is")]) == 0
    resampled = read_label(tmp_path / "at40" / "x20_label.png")
    as_is = read_label(tmp_path / "as_is" / "x20_label.png")
    assert resampled.shape == as_is.shape == (256, 256)  # nuclei mapped back to the input's pixels
    full = main([*args[:2], str(write_png(tmp_path / "in" / "x40.png", tile.image)), "--engine", "tensorflow",
                 "--out", str(tmp_path / "full")])
    assert full == 0
    n40 = read_label(tmp_path / "full" / "x40_label.png").max()
    assert abs(int(resampled.max()) - int(n40)) <= abs(int(as_is.max()) - int(n40))  # closer to the 40x count


def test_tiff_resolution_tags_give_the_mpp(tmp_path):
    import tifffile

    from nucseg.inference.resolution import tiff_mpp

    tifffile.imwrite(tmp_path / "a.tif", np.zeros((8, 8, 3), np.uint8), resolution=(20000, 20000),
                     resolutionunit="CENTIMETER")
    tifffile.imwrite(tmp_path / "b.tif", np.zeros((8, 8, 3), np.uint8), resolution=(72, 72), resolutionunit="INCH")
    assert tiff_mpp(tmp_path / "a.tif") == pytest.approx(0.5)
    assert tiff_mpp(tmp_path / "b.tif") is None  # a screen's 72 dpi, not a microscope's


# ---------------------------------------------------------------- the pretrained model


@pytest.mark.parametrize("name", ["he-nuclei", "he-nuclei-fast"])
def test_the_pretrained_models_load_offline_and_are_small(monkeypatch, name):
    import socket

    from nucseg import pretrained

    def no_network(*args, **kwargs):
        raise OSError("no network in this test")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    assert name in pretrained.available()
    model = pretrained.load(name)
    assert model.output_shape[-1] == 1  # DIST: one distance channel
    assert (pretrained.path(name) / "model.keras").stat().st_size < 10e6
    config = Config.read_json(pretrained.path(name) / "config.json")
    assert config.mpp == 0.25 and sorted(config.data_paths) == ["consep", "monuseg_train", "tcga_glioma", "tnbc"]
    if config.teacher:  # a distilled model's teacher ships too, so that its recipe runs offline
        assert config.teacher.startswith(pretrained.PREFIX)
        assert config.teacher[len(pretrained.PREFIX) :] in pretrained.available()


@pytest.mark.parametrize("name, overrides", [("he-nuclei-fast", {}), ("he-nuclei", {"base_filters": 16})])
def test_the_cpu_profile_fine_tunes_the_shipped_models_as_the_readme_says(name, overrides):
    """`nucseg train --init pretrained:he-nuclei-fast --profile cpu` (and he-nuclei with
    --set base_filters=16) build the net the shipped weights fit."""
    from nucseg import pretrained
    from nucseg.models import build_model
    from nucseg.training.train import initialise_from

    model = build_model(Config.from_profile("cpu", arch="dist", **overrides))
    initialise_from(model, str(pretrained.model_file(name)))
    shipped = pretrained.load(name)
    np.testing.assert_array_equal(np.asarray(model.weights[0]), np.asarray(shipped.weights[0]))


def test_an_altered_pretrained_model_is_refused(tmp_path, monkeypatch):
    from nucseg import pretrained

    copy = tmp_path / "he_nuclei"
    shutil.copytree(pretrained.path(), copy)
    data = bytearray((copy / "model.keras").read_bytes())
    data[-100] ^= 0xFF
    (copy / "model.keras").write_bytes(bytes(data))
    monkeypatch.setattr(pretrained, "ROOT", tmp_path)
    with pytest.raises(pretrained.PretrainedError, match="damaged or altered"):
        pretrained.path("he-nuclei")
    with pytest.raises(pretrained.PretrainedError, match="no pretrained model 'nope'"):
        pretrained.path("nope")
    assert hashlib.sha256(data).hexdigest()


def test_predict_with_no_model_path_uses_the_pretrained_model(glioma_tiles, tmp_path, capsys):
    image = write_png(tmp_path / "in" / "x.png", glioma_tiles[0].image)
    assert main(["predict", str(image), "--out", str(tmp_path / "o"), "--engine", "tensorflow"]) == 0
    captured = capsys.readouterr()
    assert "using the pretrained model he-nuclei-fast (" in captured.err
    assert "nuclei ->" in captured.out and (tmp_path / "o" / "x.geojson").is_file()
    n = int(captured.out.split(": ")[1].split(" nuclei")[0])
    assert 0.5 * glioma_tiles[0].n_nuclei < n < 2 * glioma_tiles[0].n_nuclei


@pytest.mark.slow
def test_evaluate_warns_that_the_pretrained_models_own_data_sets_are_in_sample(glioma_path, tmp_path, capsys):
    assert main(["evaluate", str(glioma_path), "--patients", "TCGA-DB-5270", "--out", str(tmp_path / "e")]) == 0
    assert "was trained on the data set tcga_glioma (all of its patients)" in capsys.readouterr().err
