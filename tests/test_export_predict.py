import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import write_png
from nucseg.cli import main
from nucseg.predict import ModelLoadError, load_predictor, predict_probability


@pytest.fixture(scope="module")
def exported(glioma_tiles, glioma_path, tmp_path_factory):
    from nucseg.config import Config
    from nucseg.train import train_fold

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
    from_keras = predict_probability(load_predictor(exported / "model.keras"), image)
    from_saved = predict_probability(load_predictor(exported / "saved_model"), image)
    assert from_keras.shape == image.shape[:2]
    np.testing.assert_allclose(from_keras, from_saved, atol=1e-5)


def test_tiled_prediction_of_a_large_odd_image_matches_one_pass(exported, glioma_tiles):
    predictor = load_predictor(exported / "model.keras")
    image = np.concatenate([glioma_tiles[0].image, glioma_tiles[1].image], axis=1)[:450, :1000]  # 450 x 1000
    tiled = predict_probability(predictor, image, tile=256, overlap=64)
    whole = predict_probability(predictor, image, tile=1024)
    assert tiled.shape == (450, 1000)
    inner = (slice(16, -16), slice(16, -16))  # image borders are padded differently
    assert np.abs(tiled[inner] - whole[inner]).mean() < 0.01
    assert np.abs(tiled[inner] - whole[inner]).max() < 0.2


def test_cli_predict_writes_probability_and_mask(exported, glioma_tiles, tmp_path, capsys):
    image = write_png(tmp_path / "region.png", glioma_tiles[2].image[:300, :470])
    code = main(["predict", str(exported / "saved_model"), str(image), "--out", str(tmp_path / "out"), "--tile", "256"])
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
