import json

import keras
import numpy as np
import pytest

from nucseg.config import Config, ConfigError
from nucseg.errors import TrainingDiverged
from nucseg.train import CHECKPOINT, SCORES, EpochCheckpoint, train_fold

HELD_OUT = "TCGA-DU-8165"


def fold_config(glioma_path, **changes):
    values = {"data": str(glioma_path), "arch": "pangnet", "steps": 100, "steps_per_epoch": 50, "crop": 96}
    return Config.from_profile("quick", **{**values, **changes})


@pytest.fixture(scope="module")
def trained_fold(glioma_tiles, glioma_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("fold")
    return train_fold(fold_config(glioma_path), glioma_tiles, HELD_OUT, out, verbose=0)


def test_quick_pangnet_beats_a_constant_predictor(trained_fold, glioma_tiles):
    fraction = np.mean([(t.label > 0).mean() for t in glioma_tiles if t.patient == HELD_OUT])
    constant_f1 = 2 * fraction / (1 + fraction)  # everything called nucleus; all background scores 0
    assert trained_fold.scores["f1"] > constant_f1 + 0.25, (trained_fold.scores["f1"], constant_f1)
    assert trained_fold.scores["perf"] > 0.75
    assert trained_fold.steps == 100
    assert 0 < trained_fold.scores["val_loss"] < 0.69  # the weighted loss on the held-out tiles, below chance


def test_fold_folder_holds_config_models_scores_and_logs(trained_fold):
    out = trained_fold.out_dir
    assert json.loads((out / "config.json").read_text())["arch"] == "pangnet"
    assert (out / "model.keras").is_file() and (out / "saved_model" / "saved_model.pb").is_file()
    assert json.loads((out / SCORES).read_text())["scores"]["f1"] == trained_fold.scores["f1"]
    assert any((out / "logs").rglob("*tfevents*"))
    assert not (out / CHECKPOINT).exists()  # removed once exported


def test_a_finished_fold_is_not_trained_again(trained_fold, glioma_tiles, glioma_path):
    again = train_fold(fold_config(glioma_path), glioma_tiles, HELD_OUT, trained_fold.out_dir, verbose=0)
    assert again.predictions is None and again.scores == trained_fold.scores


def test_another_configuration_in_the_same_folder_is_refused(trained_fold, glioma_tiles, glioma_path):
    with pytest.raises(ConfigError, match="another configuration.*lr"):
        train_fold(fold_config(glioma_path, lr=0.2), glioma_tiles, HELD_OUT, trained_fold.out_dir, verbose=0)


def test_a_killed_run_resumes_from_its_checkpoint_and_ends_as_if_never_killed(glioma_tiles, glioma_path, tmp_path, monkeypatch):
    config = fold_config(glioma_path, steps=60, steps_per_epoch=30)
    original = EpochCheckpoint.on_epoch_end

    def killed_after_first_checkpoint(self, epoch, logs=None):
        original(self, epoch, logs)
        raise KeyboardInterrupt

    monkeypatch.setattr(EpochCheckpoint, "on_epoch_end", killed_after_first_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        train_fold(config, glioma_tiles, HELD_OUT, tmp_path / "killed", verbose=0)
    checkpoint = keras.models.load_model(tmp_path / "killed" / CHECKPOINT)
    assert int(checkpoint.optimizer.iterations) == 30
    monkeypatch.setattr(EpochCheckpoint, "on_epoch_end", original)

    resumed = train_fold(config, glioma_tiles, HELD_OUT, tmp_path / "killed", verbose=0)
    straight = train_fold(config, glioma_tiles, HELD_OUT, tmp_path / "straight", verbose=0)
    assert resumed.steps == straight.steps == 60
    a = keras.models.load_model(tmp_path / "killed" / "model.keras").get_weights()
    b = keras.models.load_model(tmp_path / "straight" / "model.keras").get_weights()
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, atol=1e-4)


def test_a_diverging_run_stops_with_a_clear_message(glioma_tiles, glioma_path, tmp_path):
    config = fold_config(glioma_path, lr=1e12, lr_schedule="constant", momentum=0.99, steps=50)
    with pytest.raises(TrainingDiverged, match="Lower the learning rate"):
        train_fold(config, glioma_tiles, HELD_OUT, tmp_path / "nan", verbose=0)
