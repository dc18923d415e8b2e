"""Knowledge distillation (config.teacher): a DIST learns a blend of the true distance and a
trained DIST's distance on the same augmented crop."""

import numpy as np
import pytest

from nucseg.config import Config, ConfigError
from nucseg.data.pipeline import prepare_tiles, training_dataset, with_teacher
from nucseg.postprocess.kinds import kind_of
from nucseg.study.lopo import run_lopo
from nucseg.training.train import load_teacher, training_stream


def _student_config(glioma_path, teacher, **changes) -> Config:
    settings = {"data": str(glioma_path), "arch": "dist", "crop": 96, "batch_size": 2, "teacher": teacher}
    return Config.from_profile("quick", **{**settings, **changes})


def test_the_target_is_the_true_distance_blended_with_the_teachers(small_dist_fold, glioma_tiles, glioma_path):
    config = _student_config(glioma_path, str(small_dist_fold / "model.keras"), distill_weight=0.25)
    teacher = load_teacher(config)
    stack = prepare_tiles(glioma_tiles[:4], config, kind_of(config))
    plain = next(iter(training_dataset(stack, config, start_batch=3)))
    taught = next(iter(with_teacher(training_dataset(stack, config, start_batch=3), teacher, 0.25)))
    image, target, weight = (np.asarray(t) for t in plain)
    teachers = np.asarray(teacher(image, training=False))[..., 0]
    np.testing.assert_array_equal(np.asarray(taught[0]), image)  # the same crop, augmented the same way
    np.testing.assert_array_equal(np.asarray(taught[2]), weight)
    np.testing.assert_allclose(np.asarray(taught[1]), 0.75 * target + 0.25 * teachers, atol=1e-4)
    assert np.abs(teachers - target).max() > 0.5  # the teacher is not the truth: the blend changes the target
    # what fit() trains on: the blended target beside the weight, as Keras's y
    _, y = next(iter(training_stream(config, glioma_tiles[:4], start_batch=3)))
    np.testing.assert_allclose(np.asarray(y)[..., 0], np.asarray(taught[1]), atol=1e-4)


@pytest.mark.parametrize("teacher, arch, message", [
    ("runs/{fold}/model.keras", "dist", "only a study fills in"),
    ("UNET", "dist", "outputs 2 channels, not a distance map"),
    ("DIST", "unet", "teacher= is for DIST"),
    ("nowhere/model.keras", "dist", r"no such file. Pass a trained model's .keras file \(<run>"),
])
def test_a_teacher_that_cannot_teach_is_named(small_dist_fold, small_unet_fold, glioma_path, teacher, arch, message):
    teacher = {"UNET": str(small_unet_fold), "DIST": str(small_dist_fold)}.get(teacher, teacher)
    with pytest.raises(ConfigError, match=message):
        load_teacher(_student_config(glioma_path, teacher, arch=arch))


def test_each_fold_of_a_study_is_taught_by_its_own_teacher(small_dist_fold, glioma_tiles, glioma_path, tmp_path):
    class Recorded(Exception):
        pass

    class Recorder:  # a runner that notes the folds it is given and trains none
        def run(self, jobs, tiles, out_dir, verbose=1):
            self.teachers = {job.val_patient: job.config.teacher for job in jobs}
            raise Recorded

    patients = sorted({t.patient for t in glioma_tiles})
    config = _student_config(glioma_path, str(tmp_path / "teachers" / "{fold}" / "model.keras"))
    with pytest.raises(ConfigError, match=f"teachers/{patients[0]}/model.keras: no such file"):
        run_lopo(config, ["dist"], tmp_path / "run", tiles=glioma_tiles, runner=Recorder())
    assert not (tmp_path / "run").exists()  # named before the study folder is claimed: a rerun is not refused
    for patient in patients:
        (tmp_path / "teachers" / patient).mkdir(parents=True)
        (tmp_path / "teachers" / patient / "model.keras").symlink_to(small_dist_fold / "model.keras")
    recorder = Recorder()
    with pytest.raises(Recorded):
        run_lopo(config, ["dist"], tmp_path / "run", tiles=glioma_tiles, runner=recorder)
    assert recorder.teachers == {p: str(tmp_path / "teachers" / p / "model.keras") for p in patients}
    assert Config().config_hash() == Config(distill_weight=0.5).config_hash()  # earlier runs keep their hashes
    assert config.config_hash() != config.replace(teacher=None).config_hash()
