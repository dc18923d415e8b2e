import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import write_png
from nucseg.cli import main
from nucseg.inference.predict import ModelLoadError, load_predictor, predict_nucleus_map


@pytest.fixture(scope="module")
def exported(glioma_tiles, glioma_path, tmp_path_factory):
    from nucseg.config import Config
    from nucseg.study.fold import train_fold

    config = Config.from_profile("quick", data=str(glioma_path), arch="unet", base_filters=4, unet_depth=2,
                                 steps=20, steps_per_epoch=20, crop=64)
    return train_fold(config, glioma_tiles, "TCGA-DU-8165", tmp_path_factory.mktemp("unet"), verbose=0).out_dir


def test_saved_model_gives_the_keras_models_output(exported, glioma_tiles):
    import keras

    batch = glioma_tiles[0].image[None, :96, :160].astype(np.float32)  # raw 0..255: normalisation is inside
    expected = np.asarray(keras.models.load_model(exported / "model.keras", compile=False)(batch))
    loaded = tf.saved_model.load(str(exported / "saved_model"))
    served = loaded.serve(tf.constant(batch))
    np.testing.assert_allclose(np.asarray(served), expected, atol=1e-5)


def test_both_exports_load_through_nucseg(exported, glioma_tiles):
    image = glioma_tiles[0].image
    from_keras = predict_nucleus_map(load_predictor(exported / "model.keras"), image)
    from_saved = predict_nucleus_map(load_predictor(exported / "saved_model"), image)
    assert from_keras.shape == image.shape[:2]
    np.testing.assert_allclose(from_keras, from_saved, atol=1e-5)


def test_bfloat16_runs_the_keras_model_close_to_float32_and_a_saved_model_is_refused(exported, glioma_tiles):
    image = glioma_tiles[0].image
    full = predict_nucleus_map(load_predictor(exported / "model.keras"), image)
    half = predict_nucleus_map(load_predictor(exported / "model.keras", precision="bfloat16"), image)
    assert half.dtype == np.float32 and 0 < np.abs(half - full).max() < 0.1  # bfloat16 keeps 8 bits of mantissa
    assert ((half > 0.5) == (full > 0.5)).mean() > 0.99
    with pytest.raises(ModelLoadError, match="needs the model's .keras file"):
        load_predictor(exported / "saved_model", precision="bfloat16")


def test_tiled_prediction_of_a_large_odd_image_matches_one_pass(exported, glioma_tiles):
    predictor = load_predictor(exported / "model.keras")
    image = np.concatenate([glioma_tiles[0].image, glioma_tiles[1].image], axis=1)[:450, :1000]  # 450 x 1000
    tiled = predict_nucleus_map(predictor, image, tile=256, overlap=64)
    whole = predict_nucleus_map(predictor, image, tile=1024)
    assert tiled.shape == (450, 1000)
    inner = (slice(16, -16), slice(16, -16))  # image borders are padded differently
    assert np.abs(tiled[inner] - whole[inner]).mean() < 0.01
    assert np.abs(tiled[inner] - whole[inner]).max() < 0.2


def test_cli_predict_writes_probability_and_mask(exported, glioma_tiles, tmp_path, capsys):
    image = write_png(tmp_path / "region.png", glioma_tiles[2].image[:300, :470])
    code = main(["predict", str(exported / "saved_model"), str(image), "--out", str(tmp_path / "out"), "--tile", "256",
                 "--engine", "tensorflow"])  # OpenVINO: tests/test_engines.py
    assert code == 0
    prob = np.asarray(Image.open(tmp_path / "out" / "region_prob.png"))
    mask = np.asarray(Image.open(tmp_path / "out" / "region_mask.png"))
    assert prob.shape == mask.shape == (300, 470)
    assert set(np.unique(mask)) <= {0, 255}


def test_predict_refuses_what_is_not_a_model(tmp_path, capsys):
    (tmp_path / "weights.h5").write_bytes(b"x")
    with pytest.raises(ModelLoadError):
        load_predictor(tmp_path / "weights.h5")
    assert main(["predict", str(tmp_path / "weights.h5"), "x.png", "--out", str(tmp_path)]) == 2
    assert "not a .keras file nor a SavedModel" in capsys.readouterr().err


def position_model(batch):
    """A fake net whose output at a pixel is a function of that pixel alone: tiling must not show."""
    nucleus = batch[..., 0] / 255.0
    return np.stack([1 - nucleus, nucleus], axis=-1)


@pytest.mark.parametrize("height, width, tile, overlap",
                         [(1000, 1300, 256, 64), (700, 513, 512, 100), (96, 64, 512, 64)])
def test_tiled_prediction_reproduces_a_position_dependent_model_exactly(height, width, tile, overlap):
    yy, xx = np.mgrid[:height, :width]
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0] = (7 * yy + 13 * xx) % 256  # every position has its own value, no two neighbours alike
    probability = predict_nucleus_map(position_model, image, tile=tile, overlap=overlap)
    assert probability.shape == (height, width)
    np.testing.assert_allclose(probability, image[..., 0] / 255.0, atol=1e-5)


@pytest.mark.parametrize("tile, overlap, message", [(500, 64, "multiple of 32"), (0, 0, "multiple of 32"),
                                                    (256, 128, "less than half"), (256, -1, "at least 0")])
def test_tiling_out_of_range_is_refused(tile, overlap, message):
    from nucseg.errors import InputError

    with pytest.raises(InputError, match=message):
        predict_nucleus_map(position_model, np.zeros((64, 64, 3), np.uint8), tile=tile, overlap=overlap)


def test_predict_keeps_images_of_the_same_name_apart(exported, glioma_tiles, tmp_path, capsys):
    first = write_png(tmp_path / "a" / "tile.png", glioma_tiles[0].image[:128, :128])
    second = write_png(tmp_path / "b" / "tile.png", glioma_tiles[1].image[:128, :128])
    out = tmp_path / "out"
    assert main(["predict", str(exported / "model.keras"), str(first), str(second), "--out", str(out), "--engine",
                 "tensorflow"]) == 0
    a, b = np.asarray(Image.open(out / "a__tile_prob.png")), np.asarray(Image.open(out / "b__tile_prob.png"))
    assert not np.array_equal(a, b)  # each output is its own image's


def test_predict_names_the_problem_and_exits_2(exported, glioma_tiles, tmp_path, capsys):
    image = write_png(tmp_path / "x.png", glioma_tiles[0].image[:64, :64])
    (tmp_path / "afile").write_text("")
    model = str(exported / "model.keras")
    cases = [
        (["predict", model, str(image), "--out", str(tmp_path / "afile")], "--out .*afile is a file"),
        (["predict", model, str(tmp_path), "--out", str(tmp_path / "o")], "is a folder, not an image file"),
        (["predict", model, str(image), "--out", str(tmp_path / "o"), "--tile", "100"], "--tile 100"),
        (["predict", model, str(image), "--out", str(tmp_path / "o"), "--overlap", "400"], "--overlap 400"),
        (["predict", model, str(image), "--out", str(tmp_path / "o"), "--threshold", "1.5"], "--threshold 1.5"),
        (["predict", model, str(image), str(image), "--out", str(tmp_path / "o")], "the same image is given twice"),
    ]
    import re

    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert re.search(message, err) and "Traceback" not in err, (argv, err)


def test_tta_of_a_pointwise_model_changes_nothing_and_averages_the_rest():
    from nucseg.inference.predict import with_tta

    image = np.random.default_rng(0).integers(0, 255, (1, 64, 64, 3)).astype(np.float32)
    np.testing.assert_allclose(with_tta(position_model)(image), position_model(image), atol=1e-6)

    def ramp_model(batch):  # nucleus probability grows from left to right, whatever the image
        ramp = np.broadcast_to(np.linspace(0, 1, batch.shape[2], dtype=np.float32), batch.shape[:3])
        return np.stack([1 - ramp, ramp], axis=-1)

    np.testing.assert_allclose(with_tta(ramp_model)(image)[..., 1], 0.5, atol=1e-6)  # each flip undoes another


def test_evaluate_scores_a_model_and_the_otsu_baseline_per_tile_and_patient(exported, glioma_tiles, tmp_path, capsys):
    import pandas as pd

    from nucseg.inference.baseline import otsu_nucleus_map
    from nucseg.metrics import pixel_counts

    chosen = [glioma_tiles[0], glioma_tiles[-1]]  # two patients
    for tile in chosen:
        write_png(tmp_path / "data" / tile.patient / f"{tile.tile_id}.png", tile.image)
        write_png(tmp_path / "data" / tile.patient / f"{tile.tile_id}_label.png", tile.label.astype(np.uint16))
    code = main(["evaluate", str(exported / "saved_model"), str(tmp_path / "data"), "--out", str(tmp_path / "ev"),
                 "--engine", "tensorflow"])
    assert code == 0
    tiles = pd.read_csv(tmp_path / "ev" / "tiles.csv")
    assert len(tiles) == 4 and tiles["method"].nunique() == 2
    assert set(pd.read_csv(tmp_path / "ev" / "patients.csv")["patient"]) == {t.patient for t in chosen}
    summary = (tmp_path / "ev" / "summary.md").read_text()
    assert "| otsu-hematoxylin | 2 |" in summary and "| unet (" in summary
    baseline = tiles[tiles["method"] == "otsu-hematoxylin"].set_index("tile")["f1"]
    for tile in chosen:  # the table holds what the baseline gives on that tile
        expected = pixel_counts(otsu_nucleus_map(tile.image) > 0.5, tile.label).scores()["f1"]
        assert baseline[tile.tile_id] == pytest.approx(expected)


def test_evaluate_with_a_stain_reference_predicts_the_normalised_tiles(exported, glioma_tiles, tmp_path, capsys):
    import pandas as pd

    from nucseg.data.stain import fit_reference, normalise
    from nucseg.inference.saved import model_config
    from nucseg.postprocess.kinds import foreground
    from nucseg.inference.predict import load_predictor, predict_nucleus_map
    from nucseg.metrics import pixel_counts

    tile, reference = glioma_tiles[0], glioma_tiles[-1]
    write_png(tmp_path / "data" / tile.patient / f"{tile.tile_id}.png", tile.image)
    write_png(tmp_path / "data" / tile.patient / f"{tile.tile_id}_label.png", tile.label.astype(np.uint16))
    write_png(tmp_path / "reference.png", reference.image)
    code = main(["evaluate", str(exported / "saved_model"), str(tmp_path / "data"), "--stain-reference",
                 str(tmp_path / "reference.png"), "--out", str(tmp_path / "ev"), "--engine", "tensorflow"])
    assert code == 0
    tiles = pd.read_csv(tmp_path / "ev" / "tiles.csv").set_index("method")
    model_rows = [m for m in tiles.index if m.endswith("+ Macenko")]
    assert len(model_rows) == 1
    predictor = load_predictor(exported / "saved_model")
    _, config = model_config(exported / "saved_model", "probability")
    nucleus_map = predict_nucleus_map(predictor, normalise(tile.image, fit_reference([reference.image])))
    normalised = pixel_counts(foreground(nucleus_map, config), tile.label).scores()
    raw = pixel_counts(foreground(predict_nucleus_map(predictor, tile.image), config), tile.label).scores()
    assert normalised["predicted_fraction"] != raw["predicted_fraction"]  # the stains reach the net
    for score in ("f1", "predicted_fraction"):
        assert tiles.loc[model_rows[0], score] == pytest.approx(normalised[score], abs=1e-6)


@pytest.mark.slow
def test_train_on_every_patient_exports_a_model_and_scores_nothing(glioma_path, tmp_path, capsys):
    out = tmp_path / "all"
    code = main(["train", "--data", str(glioma_path), "--arch", "pangnet", "--all-patients", "--profile", "quick",
                 "--steps", "10", "--crop", "64", "--out", str(out), "--verbose", "0"])
    printed = capsys.readouterr().out
    assert code == 0 and "trained on every patient" in printed and "f1=" not in printed
    assert (out / "model.keras").is_file() and (out / "saved_model" / "saved_model.pb").is_file()
