"""The leave-one-patient-out study: every architecture, every held-out patient.

`run_lopo` trains each (architecture, patient) fold in `<out>/<arch>/<patient>/` (see
nucseg.training.train), scores it, draws its overlay, then appends its row to `<out>/folds.csv` (the
whole file replaced atomically), and finally writes summary.csv, summary.md and the box plots.
Killed at any moment and run again with the same command, it skips the folds that have a row,
resumes the one that was cut short from its checkpoint, and never duplicates or loses a row.
A run folder belongs to one configuration (all fields but arch and data): another one is
refused with a message; use a new --out folder for it.

The folds run one after another here, or as Ray tasks across a machine or a cluster
(`nucseg.distributed.RayRunner`): a runner trains the folds it is given and reports each
as it ends; this driver alone writes folds.csv (in the study's order, whatever order the folds
end in), the summaries and the figures.

`run_grid` runs the same protocol for each setting of a grid of learning rate, momentum and
weight decay, in `<out>/grid/<setting>/`, as the paper did to choose them.
"""

from __future__ import annotations

import logging

import dataclasses
import itertools
from pathlib import Path

import pandas as pd
import yaml

from nucseg.config import Config, ConfigError
from nucseg.data.dataset import Tile, load_dataset, patients_of
from nucseg.study.figures import boxplot_figure, overlay_figure, save_figure
from nucseg.study.folds import check_patients, lopo_folds
from nucseg.study.health import describe_flags
from nucseg.io import write_text_atomic
from nucseg.study.results import append_fold_row, markdown_table, read_folds, write_summary
from nucseg.training.runs import claim_folder
from nucseg.training.train import check_teacher
from nucseg.study.fold import train_fold
from nucseg.postprocess.tuning import with_saved_postprocess

logger = logging.getLogger(__name__)

GRID_FIELDS = ("lr", "momentum", "weight_decay")


def fold_row(config: Config, val_patient: str, result) -> dict:
    return {
        "arch": config.arch,
        "val_patient": val_patient,
        **result.scores,
        "flags": result.flags,
        "steps": result.steps,
        "seconds": result.seconds,
        "seed": config.seed,
        "config_hash": config.config_hash(),
    }


def _overlay(out_dir: Path, config: Config, result, tiles: list[Tile]) -> None:
    """The fold's first held-out tile with true and predicted outlines."""
    path = out_dir / "figures" / f"overlay_{config.arch}_{result.val_patient}.png"
    predictions = result.predictions
    if predictions is None:  # the fold ended before a kill: predict again from its export
        from nucseg.inference.predict import load_predictor
        from nucseg.study.evaluate import predict_tiles

        held_out = [t for t in tiles if t.patient == result.val_patient][:1]
        fold_config = with_saved_postprocess(config, result.out_dir)
        predictions = predict_tiles(load_predictor(result.out_dir / "model.keras"), held_out, fold_config)
    first = predictions[0]
    title = f"{config.arch}, held-out patient {result.val_patient}, tile {first.tile.tile_id}"
    save_figure(overlay_figure(first.tile.image, first.tile.label, first.instances, title), path)


@dataclasses.dataclass(frozen=True)
class FoldJob:
    """One fold of the study: a net's configuration, the held-out patient, the fold's folder."""

    config: Config
    val_patient: str
    fold_dir: Path


def run_fold(job: FoldJob, tiles: list[Tile], out_dir: Path, verbose: int = 1):
    """Train, export and score one fold, and draw its overlay; the result without its predictions
    (they stay where they were made, which may be another machine)."""
    result = train_fold(job.config, tiles, job.val_patient, job.fold_dir, verbose=verbose)
    _overlay(out_dir, job.config, result, tiles)
    return dataclasses.replace(result, predictions=None)


class SequentialRunner:
    """The folds one after another, in this process."""

    def run(self, jobs: list[FoldJob], tiles: list[Tile], out_dir: Path, verbose: int = 1):
        for job in jobs:
            train = sorted({t.patient for t in tiles} - {job.val_patient})
            logger.info(f"{job.config.arch} / {job.val_patient}: training on {', '.join(train)}")
            yield job, run_fold(job, tiles, out_dir, verbose)


def run_lopo(
    config: Config,
    archs,
    out_dir: str | Path,
    tiles: list[Tile] | None = None,
    val_patients=None,
    verbose: int = 1,
    runner=None,
) -> pd.DataFrame:
    """Train and score every (arch, held-out patient); returns the folds table. `runner`:
    SequentialRunner() (default) or nucseg.distributed.RayRunner(...)."""
    out_dir = Path(out_dir)
    tiles = tiles if tiles is not None else load_dataset(config.data, mpp=config.mpp)
    splits = lopo_folds(patients_of(tiles))
    if val_patients is not None:
        check_patients(patients_of(tiles), val_patients)  # before the run folder is claimed
    study = [
        (arch, fold) for arch in archs for fold in splits if val_patients is None or fold.val_patient in val_patients
    ]
    for arch, fold in study:  # each fold's teacher, before the study folder is claimed
        check_teacher(config.replace(arch=arch).for_fold(fold.val_patient))
    claim_folder(out_dir, config, ignore=("arch", "data"))  # a study folder holds every arch
    folds_csv = out_dir / "folds.csv"
    order = [(arch, fold.val_patient) for arch, fold in study]
    done = read_folds(folds_csv)
    jobs = []
    for arch, fold in study:
        if ((done["arch"] == arch) & (done["val_patient"] == fold.val_patient)).any():
            logger.info(f"{arch} / {fold.val_patient}: done earlier, skipped")
            continue
        fold_config = config.replace(arch=arch).for_fold(fold.val_patient)
        jobs.append(FoldJob(fold_config, fold.val_patient, out_dir / arch / fold.val_patient))
    runner = runner or SequentialRunner()
    for job, result in runner.run(jobs, tiles, out_dir, verbose):
        append_fold_row(folds_csv, fold_row(job.config, job.val_patient, result), order=order)
        logger.info(
            f"{job.config.arch} / {job.val_patient}: F1 {result.scores['f1']:.3f}, AJI {result.scores['aji']:.3f}"
        )
        if result.flags:
            what = "did not learn" if any(f != "empty" for f in result.flags.split(";")) else "has nothing to find"
            logger.warning(f"{job.config.arch} / {job.val_patient} {what}: {describe_flags(result.flags)}")
    folds = read_folds(folds_csv)
    write_summary(folds, out_dir)
    save_figure(boxplot_figure(folds), out_dir / "figures" / "boxplots.png")
    return folds


# ---------------------------------------------------------------- grid over optimiser settings


def read_grid(path: str | Path) -> list[dict]:
    """YAML/JSON mapping of lr, momentum, weight_decay to lists: all their combinations."""
    path = Path(path)
    try:
        grid = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read the grid ({err})") from err
    if not isinstance(grid, dict) or not grid or set(grid) - set(GRID_FIELDS):
        raise ConfigError(f"{path}: a grid maps some of {GRID_FIELDS} to lists of values, e.g. 'lr: [0.01, 0.001]'")
    values = {k: v if isinstance(v, list) else [v] for k, v in grid.items()}
    return [dict(zip(values, combination)) for combination in itertools.product(*values.values())]


def setting_name(setting: dict) -> str:
    return "_".join(f"{k}={v:g}" for k, v in setting.items())


def run_grid(
    config: Config, archs, out_dir: str | Path, grid: list[dict], val_patients=None, verbose=1, runner=None
) -> pd.DataFrame:
    """The LOPO study for each setting; grid_summary.csv/.md: mean scores per (setting, arch)."""
    out_dir = Path(out_dir)
    tiles = load_dataset(config.data, mpp=config.mpp)
    if val_patients is not None:
        check_patients(patients_of(tiles), val_patients)
    rows = []
    for setting in grid:
        logger.info(f"grid setting {setting_name(setting)}")
        folds = run_lopo(
            config.replace(**setting),
            archs,
            out_dir / "grid" / setting_name(setting),
            tiles,
            val_patients,
            verbose=verbose,
            runner=runner,
        )
        for arch, group in folds.groupby("arch", sort=False):
            rows.append(
                {
                    **setting,
                    "arch": arch,
                    "patients": len(group),
                    **{f"{c}_mean": group[c].mean() for c in ("f1", "perf", "aji", "pq")},
                }
            )
    table = pd.DataFrame(rows)
    write_text_atomic(out_dir / "grid_summary.csv", table.to_csv(index=False))
    write_text_atomic(out_dir / "grid_summary.md", markdown_table(table))
    return table
