import json
import os
import signal
import threading

import keras
import numpy as np
import pytest

from conftest import kill_after_first_checkpoint

from nucseg.config import Config, ConfigError
from nucseg.errors import TrainingDiverged
from nucseg.training.optimizer import schedule_of
from nucseg.study.fold import SCORES, train_fold
from nucseg.training.train import CHECKPOINT, EpochCheckpoint, StopOnNaN

HELD_OUT = "TCGA-DU-8165"
SYNTHETIC_HELD_OUT = "P2"  # conftest's synthetic tiles: for the tests of a killed, resumed or exported run


def fold_config(data, **changes):
    # a checkpoint at every epoch's end: the tests of a killed run kill it after one
    values = {"data": str(data), "arch": "pangnet", "steps": 100, "steps_per_epoch": 50, "crop": 96,
              "checkpoint_seconds": 0}
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
    chosen = json.loads((out / "postprocess.json").read_text())  # chosen on training tiles only
    assert chosen["tiles"] == 16 and chosen["threshold"] in (0.4, 0.5, 0.6)
    from nucseg.inference.saved import saved_config

    assert saved_config(out / "model.keras").threshold == chosen["threshold"]


def test_a_finished_fold_is_not_trained_again(trained_fold, glioma_tiles, glioma_path):
    again = train_fold(fold_config(glioma_path), glioma_tiles, HELD_OUT, trained_fold.out_dir, verbose=0)
    assert again.predictions is None and again.scores == trained_fold.scores


def test_another_configuration_in_the_same_folder_is_refused(trained_fold, glioma_tiles, glioma_path):
    with pytest.raises(ConfigError, match="another configuration.*lr"):
        train_fold(fold_config(glioma_path, lr=0.2), glioma_tiles, HELD_OUT, trained_fold.out_dir, verbose=0)


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_checkpoint_and_ends_as_if_never_killed(synthetic, tmp_path, monkeypatch):
    data, tiles = synthetic
    config = fold_config(data, steps=60, steps_per_epoch=30, tune_postprocess=False)
    original = kill_after_first_checkpoint(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        train_fold(config, tiles, SYNTHETIC_HELD_OUT, tmp_path / "killed", verbose=0)
    checkpoint = keras.models.load_model(tmp_path / "killed" / CHECKPOINT)
    assert int(checkpoint.optimizer.iterations) == 30
    monkeypatch.setattr(EpochCheckpoint, "on_epoch_end", original)

    resumed, straight = fit_again(config, tiles, tmp_path / "killed"), fit_again(config, tiles, tmp_path / "straight")
    assert int(resumed.optimizer.iterations) == int(straight.optimizer.iterations) == 60
    for x, y in zip(resumed.get_weights(), straight.get_weights()):
        np.testing.assert_allclose(x, y, atol=1e-4)


def test_a_diverging_run_stops_with_a_clear_message(synthetic, tmp_path):
    config = fold_config(synthetic[0], lr=1e12, lr_schedule="constant", momentum=0.99, steps=50)
    with pytest.raises(TrainingDiverged, match="Lower the learning rate"):
        train_fold(config, synthetic[1], SYNTHETIC_HELD_OUT, tmp_path / "nan", verbose=0)


def test_a_folder_whose_run_never_began_is_taken_by_the_corrected_command(tmp_path):
    """A command that stopped before training (a bad --init, say) leaves config.json alone: the
    corrected command takes the folder; a folder with anything of a run in it is still refused."""
    from nucseg.io import RunLock
    from nucseg.training.runs import CONFIG_FILE, claim_folder

    first, corrected = Config(base_filters=16), Config(base_filters=8)
    claim_folder(tmp_path / "new", first)
    (tmp_path / "new" / RunLock.NAME).write_text("the corrected command's own lock")
    claim_folder(tmp_path / "new", corrected)
    assert Config.read_json(tmp_path / "new" / CONFIG_FILE) == corrected
    claim_folder(tmp_path / "begun", first)
    (tmp_path / "begun" / "losses.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"another configuration \(differs in \['base_filters'\]\)"):
        claim_folder(tmp_path / "begun", corrected)
    assert Config.read_json(tmp_path / "begun" / CONFIG_FILE) == first


def fit_again(config, tiles, out):
    """The fold's training alone (resumed where out holds a checkpoint): resuming is the fit's
    job, so the export and the scoring of a fold are left out (tested above)."""
    from nucseg.training.runs import claim_folder
    from nucseg.training.train import fit

    claim_folder(out, config)
    return fit(config, [t for t in tiles if t.patient != SYNTHETIC_HELD_OUT], out, verbose=0)


@pytest.mark.parametrize("seconds, saved_after_epochs", [(0, [0, 1, 2]), (3600, [2])])
def test_the_checkpoint_is_written_once_its_seconds_have_passed_and_at_the_last_epoch(
    synthetic, tmp_path, monkeypatch, seconds, saved_after_epochs
):
    """Every epoch's loss is logged; the checkpoint is saved at an epoch's end only once
    checkpoint_seconds have passed since the last (0: every epoch), and at the last epoch."""
    from nucseg.training import train

    data, tiles = synthetic
    saved, real_save_with = [], train.save_with

    def counted_save_with(path, *args, **kwargs):
        saved.append(len(train.read_epoch_losses(path.parent)) - 1)  # the epoch whose loss was just logged
        return real_save_with(path, *args, **kwargs)

    monkeypatch.setattr(train, "save_with", counted_save_with)
    config = fold_config(data, steps=30, steps_per_epoch=10, checkpoint_seconds=seconds, tune_postprocess=False)
    model = fit_again(config, tiles, tmp_path / "fold")
    assert saved == saved_after_epochs
    assert sorted(train.read_epoch_losses(tmp_path / "fold")) == [0, 1, 2]
    assert int(keras.models.load_model(tmp_path / "fold" / CHECKPOINT).optimizer.iterations) == 30
    assert int(model.optimizer.iterations) == 30


def test_how_often_a_run_saves_is_not_part_of_its_configuration(tmp_path):
    """A run resumed with another checkpoint_seconds is the same run: its folder takes it."""
    from nucseg.training.runs import claim_folder

    claim_folder(tmp_path, Config(checkpoint_seconds=30))
    (tmp_path / "losses.json").write_text("{}")
    claim_folder(tmp_path, Config(checkpoint_seconds=0))
    assert Config(checkpoint_seconds=0).config_hash() == Config().config_hash()
    with pytest.raises(ConfigError, match="checkpoint_seconds=-1 must not be negative"):
        Config(checkpoint_seconds=-1).validated()


@pytest.mark.slow
def test_killed_in_the_middle_of_an_epoch_it_redoes_that_epoch_only(synthetic, tmp_path, monkeypatch):
    data, tiles = synthetic
    config = fold_config(data, steps=60, steps_per_epoch=30, tune_postprocess=False)
    original = StopOnNaN.on_train_batch_end

    def killed_at_step_45(self, batch, logs=None):
        original(self, batch, logs)
        if int(self.model.optimizer.iterations) == 45:
            raise KeyboardInterrupt

    monkeypatch.setattr(StopOnNaN, "on_train_batch_end", killed_at_step_45)
    with pytest.raises(KeyboardInterrupt):
        train_fold(config, tiles, SYNTHETIC_HELD_OUT, tmp_path / "killed", verbose=0)
    assert int(keras.models.load_model(tmp_path / "killed" / CHECKPOINT).optimizer.iterations) == 30
    assert not (tmp_path / "killed" / SCORES).exists()
    monkeypatch.setattr(StopOnNaN, "on_train_batch_end", original)

    resumed, straight = fit_again(config, tiles, tmp_path / "killed"), fit_again(config, tiles, tmp_path / "straight")
    assert int(resumed.optimizer.iterations) == int(straight.optimizer.iterations) == 60
    for x, y in zip(resumed.get_weights(), straight.get_weights()):
        np.testing.assert_allclose(x, y, atol=1e-4)


def test_ctrl_c_in_training_ends_it_after_the_step_it_came_in(synthetic, tmp_path, monkeypatch):
    """A SIGINT that comes as step 6 begins lets step 6 finish, then stops the fit with
    KeyboardInterrupt (Python's own handler raises where the signal lands, which inside
    TensorFlow's C++ step once came out as a SystemError); the handler is put back after."""
    assert threading.current_thread() is threading.main_thread()  # as in `nucseg train`
    data, tiles = synthetic
    config = fold_config(data, steps=60, steps_per_epoch=30, tune_postprocess=False)
    steps_ended = []

    def ctrl_c_as_step_6_begins(self, batch, logs=None):
        if int(self.model.optimizer.iterations) == 5:
            os.kill(os.getpid(), signal.SIGINT)

    def note_the_step(self, batch, logs=None):
        steps_ended.append(int(self.model.optimizer.iterations))

    monkeypatch.setattr(StopOnNaN, "on_train_batch_begin", ctrl_c_as_step_6_begins, raising=False)
    monkeypatch.setattr(StopOnNaN, "on_train_batch_end", note_the_step)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # a pytest worker may ignore it
    try:
        with pytest.raises(KeyboardInterrupt):
            fit_again(config, tiles, tmp_path / "stopped")
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)
    assert steps_ended == [1, 2, 3, 4, 5, 6]
    assert not (tmp_path / "stopped" / CHECKPOINT).exists()  # before the first epoch's end: resumes from 0


def test_killed_during_export_it_exports_again_from_the_checkpoint(synthetic, tmp_path, monkeypatch):
    import nucseg.training.export

    data, tiles = synthetic
    config = fold_config(data, steps=30, steps_per_epoch=30, tune_postprocess=False)
    original = nucseg.training.export.replace_dir_atomic

    def killed_while_writing_the_saved_model(path, write_into):
        def write_then_die(folder):
            write_into(folder)
            raise KeyboardInterrupt  # the SavedModel is written, not yet moved into place

        return original(path, write_then_die)

    monkeypatch.setattr(nucseg.training.export, "replace_dir_atomic", killed_while_writing_the_saved_model)
    with pytest.raises(KeyboardInterrupt):
        train_fold(config, tiles, SYNTHETIC_HELD_OUT, tmp_path / "fold", verbose=0)
    out = tmp_path / "fold"
    assert (out / CHECKPOINT).is_file() and not (out / SCORES).exists()
    assert not (out / "saved_model").exists()  # nothing half-written in place
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary left behind
    monkeypatch.setattr(nucseg.training.export, "replace_dir_atomic", original)

    result = train_fold(config, tiles, SYNTHETIC_HELD_OUT, out, verbose=0)
    assert result.steps == 30 and (out / "saved_model" / "saved_model.pb").is_file() and (out / SCORES).is_file()


@pytest.mark.parametrize("steps, steps_per_epoch", [(10, 50), (20, 10)])  # within one epoch, and across two
def test_the_learning_rate_decays_over_exactly_the_steps_trained(synthetic, tmp_path, steps, steps_per_epoch):
    data, tiles = synthetic
    config = fold_config(data, steps=steps, steps_per_epoch=steps_per_epoch)
    from nucseg.training.train import fit

    model = fit(config, [t for t in tiles if t.patient != SYNTHETIC_HELD_OUT], tmp_path, verbose=0)
    assert int(model.optimizer.iterations) == steps
    schedule = schedule_of(config, steps)
    warmup = int(config.warmup_fraction * steps)
    assert float(schedule(0)) == (0.0 if warmup else pytest.approx(config.lr))
    assert float(schedule(warmup)) == pytest.approx(config.lr)
    assert float(schedule(steps)) == pytest.approx(0.01 * config.lr)  # at its floor at the last step, not later
    assert float(schedule(steps - 1)) > float(schedule(steps))  # still decaying until then
    assert float(model.optimizer.learning_rate) == pytest.approx(float(schedule(steps)), rel=1e-5)


def test_a_run_traces_its_train_step_once(synthetic, tmp_path, monkeypatch):
    """The optimiser is built before fit: Keras's TensorFlow trainer built it inside the first trace
    of the step, and TensorFlow traced a step that made variables again (two traces a fold)."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the double trace is tf.function's")
    from keras.src.backend.tensorflow.trainer import TensorFlowTrainer  # the step each trace runs

    from nucseg.training.train import fit

    traced, step = [], TensorFlowTrainer.train_step
    monkeypatch.setattr(TensorFlowTrainer, "train_step", lambda self, data: traced.append(1) or step(self, data))
    data, tiles = synthetic
    config = fold_config(data, steps=4, steps_per_epoch=2)  # two epochs
    model = fit(config, [t for t in tiles if t.patient != SYNTHETIC_HELD_OUT], tmp_path, verbose=0)
    assert int(model.optimizer.iterations) == 4 and len(traced) == 1


def test_steps_that_are_not_whole_epochs_are_refused():
    with pytest.raises(ConfigError, match="steps=125 must be a multiple of steps_per_epoch=50"):
        Config.from_profile("quick", steps=125)


@pytest.mark.parametrize("warmup_fraction, lr_schedule", [(0.1, "cosine"), (0.1, "constant"), (0.0, "cosine")])
def test_the_schedule_gives_keras_cosine_decays_rates(warmup_fraction, lr_schedule):
    config = Config.from_profile("quick", warmup_fraction=warmup_fraction, lr_schedule=lr_schedule)
    ours = schedule_of(config, 100)
    keras_own = keras.optimizers.schedules.CosineDecay(**ours.get_config())
    steps = [0, 1, 5, 9, 10, 11, 50, 99, 100, 150]
    np.testing.assert_array_equal([float(ours(s)) for s in steps], [float(keras_own(s)) for s in steps])
    schedules = keras.optimizers.schedules
    assert schedules.deserialize(schedules.serialize(ours)).get_config() == ours.get_config()
