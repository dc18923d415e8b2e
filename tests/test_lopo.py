import re

import pandas as pd
import pytest

from nucseg.cli import main
from nucseg.config import Config, ConfigError
from nucseg.study.lopo import read_grid, run_grid, run_lopo
from nucseg.study.results import read_folds
from nucseg.training.train import EpochCheckpoint

PATIENTS = ["TCGA-DB-5270", "TCGA-DB-5275", "TCGA-DU-5847", "TCGA-DU-8165", "TCGA-FG-A4MU"]


def tiny(data, **changes):
    values = {"data": str(data), "steps": 20, "steps_per_epoch": 10, "crop": 64, "base_filters": 4,
              "unet_depth": 2, "checkpoint_seconds": 0,  # a checkpoint each epoch: a test kills after one
              "tune_postprocess": False}  # chosen post-processing is tested in test_train and test_tuning
    return Config.from_profile("quick", **{**values, **changes})


@pytest.mark.slow
def test_killed_mid_fold_and_rerun_gives_every_row_once(synthetic, tmp_path, monkeypatch):
    # One patient, two nets: the study is killed in its second fold (U-Net's), after that fold's first
    # checkpoint. Folds that resume after other finished folds: tests/test_distributed.py (Ray).
    data, tiles = synthetic
    config, out, patients = tiny(data), tmp_path / "run", ["P1"]
    original, calls = EpochCheckpoint.on_epoch_end, []

    def killed_in_the_second_fold(self, epoch, logs=None):
        original(self, epoch, logs)
        calls.append(epoch)
        if len(calls) == 3:  # two checkpoints per fold: the first of fold 2 (unet's first)
            raise KeyboardInterrupt

    def study():
        return run_lopo(config, ["pangnet", "unet"], out, tiles, val_patients=patients, verbose=0)

    monkeypatch.setattr(EpochCheckpoint, "on_epoch_end", killed_in_the_second_fold)
    with pytest.raises(KeyboardInterrupt):
        study()
    before = read_folds(out / "folds.csv")
    assert list(before["arch"]) == ["pangnet"] and list(before["val_patient"]) == patients
    assert (out / "unet" / patients[0]).is_dir()  # the killed fold had begun
    monkeypatch.setattr(EpochCheckpoint, "on_epoch_end", original)

    folds = study()
    assert len(folds) == 2
    assert not folds.duplicated(["arch", "val_patient"]).any()
    assert list(folds["arch"]) == ["pangnet", "unet"] and list(folds["val_patient"]) == patients * 2
    pd.testing.assert_frame_equal(folds.iloc[:1], before)  # finished rows are left as they were
    assert (folds["steps"] == 20).all() and folds["config_hash"].nunique() == 2

    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["arch"]) == ["pangnet", "unet"] and (summary["patients"] == 1).all()
    assert {"f1_mean", "f1_std", "perf_mean", "aji_mean", "object_f1_mean", "pq_mean"} <= set(summary.columns)
    assert re.search(r"\| pangnet \| 1( \(1 flagged\))? \|", (out / "summary.md").read_text())  # noise: may not learn
    figures = {p.name for p in (out / "figures").iterdir()}
    assert "boxplots.png" in figures and f"overlay_unet_{patients[0]}.png" in figures
    assert len([f for f in figures if f.startswith("overlay_")]) == 2

    again = study()
    pd.testing.assert_frame_equal(again, folds)


def test_another_configuration_in_a_run_folder_is_refused(glioma_tiles, glioma_path, tmp_path, monkeypatch):
    import nucseg.study.lopo as lopo

    def stopped(job, *args, **kwargs):
        job.fold_dir.mkdir(parents=True)  # the first run is stopped once its first fold has begun
        (job.fold_dir / "losses.json").write_text("{}")
        raise KeyboardInterrupt

    out = tmp_path / "run"
    monkeypatch.setattr(lopo, "run_fold", stopped)
    with pytest.raises(KeyboardInterrupt):
        run_lopo(tiny(glioma_path), ["pangnet"], out, glioma_tiles, val_patients=[PATIENTS[0]], verbose=0)
    monkeypatch.undo()
    with pytest.raises(ConfigError, match="another configuration.*momentum.*new --out"):
        run_lopo(tiny(glioma_path, momentum=0.5), ["pangnet"], out, glioma_tiles, verbose=0)


@pytest.mark.slow
def test_grid_runs_the_protocol_per_setting(synthetic, tmp_path):
    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text("lr: [0.01, 0.1]\nmomentum: 0.9\n")
    grid = read_grid(grid_file)
    assert grid == [{"lr": 0.01, "momentum": 0.9}, {"lr": 0.1, "momentum": 0.9}]
    table = run_grid(tiny(synthetic[0], steps=10), ["pangnet"], tmp_path / "g", grid, val_patients=["P1"],
                     verbose=0)
    assert list(table["lr"]) == [0.01, 0.1] and (table["patients"] == 1).all()
    assert (tmp_path / "g" / "grid" / "lr=0.01_momentum=0.9" / "folds.csv").is_file()
    assert "| lr |" in (tmp_path / "g" / "grid_summary.md").read_text()


def test_bad_grid_file_is_explained(tmp_path):
    bad = tmp_path / "grid.yaml"
    bad.write_text("learning_rate: [1]\n")
    with pytest.raises(ConfigError, match="lr.*momentum.*weight_decay"):
        read_grid(bad)


def test_cli_lopo_prints_the_summary(glioma_path, tmp_path, capsys):
    code = main(["lopo", "--data", str(glioma_path), "--arch", "pangnet", "--profile", "quick", "--steps", "40",
                 "--crop", "64", "--set", "tune_postprocess=false", "--out", str(tmp_path / "cli"), "--val-patients",
                 PATIENTS[1],
                 "--verbose", "0"])  # the choice of post-processing: tested in test_train and test_tuning
    out = capsys.readouterr().out
    assert code == 0 and "1 folds in" in out and "| pangnet | 1 |" in out  # 40 steps: it learned, no flag


def test_a_fold_that_did_not_learn_is_flagged_and_said(glioma_path, tmp_path, capsys):
    code = main(["lopo", "--data", str(glioma_path), "--arch", "pangnet", "--profile", "quick", "--steps", "20",
                 "--set", "steps_per_epoch=10", "--set", "tune_postprocess=false", "--lr", "1e-6", "--crop", "64",
                 "--out", str(tmp_path / "cli"),
                 "--val-patients", PATIENTS[1], "--verbose", "0"])
    captured = capsys.readouterr()
    out = captured.out
    assert code == 0 and "WARNING: pangnet / TCGA-DB-5275 did not learn" in captured.err
    assert "| pangnet | 1 (1 flagged) |" in out and "Flagged folds did not learn" in out
    assert read_folds(tmp_path / "cli" / "folds.csv")["flags"].iloc[0] != ""


def test_cli_lopo_on_a_broken_dataset_names_the_file(tmp_path, capsys):
    (tmp_path / "data" / "P1").mkdir(parents=True)
    (tmp_path / "data" / "P1" / "a.png").write_bytes(b"not a png")
    code = main(["lopo", "--data", str(tmp_path / "data"), "--arch", "pangnet", "--out", str(tmp_path / "out")])
    assert code == 2 and "a.png: image without label" in capsys.readouterr().err
