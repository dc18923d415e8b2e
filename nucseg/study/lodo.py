"""Leave one data set out: the study of generalisation to another lab, organ and scanner.

For each data set of `config.data` (at least two) and each net, `run_lodo` trains on all the
other data sets together (drawn evenly, see nucseg.data.pipeline), in `<out>/<arch>/<left out>/`
(a fold folder as nucseg.training.train writes it, resumable), then scores the data set left
out, patient by patient, beside the Otsu-hematoxylin baseline on the same tiles. `folds.csv` has
one row per (arch, left-out data set, method): the means over that data set's patients; a row
is appended when its fold is scored, so a killed run resumes where it stopped. `summary.md`
and `figures/lodo.png` are rewritten at the end.

Use it to choose a recipe (augmentation, normalisation, width, steps) for models meant for other
labs; the data sets it reports are then no longer unseen for that recipe."""

from __future__ import annotations

import logging

import dataclasses
from pathlib import Path

import pandas as pd

from nucseg.config import Config, ConfigError
from nucseg.data.dataset import Tile, load_dataset
from nucseg.inference.baseline import BASELINE_NAME, baseline_method
from nucseg.io import write_text_atomic
from nucseg.study.evaluate import evaluate_methods
from nucseg.study.results import SUMMARY_SCORES
from nucseg.training.runs import claim_folder
from nucseg.training.train import check_teacher
from nucseg.study.fold import train_fold
from nucseg.study.lopo import FoldJob
from nucseg.postprocess.tuning import with_saved_postprocess

logger = logging.getLogger(__name__)

LODO_COLUMNS = [
    "arch",
    "left_out",
    "method",
    "patients",
    "tiles",
    *SUMMARY_SCORES,
    "iou",
    "tpr",
    "seconds",
    "config_hash",
]


def dataset_names(config: Config) -> list[str]:
    return [Path(p).resolve().name for p in config.data_paths]


def read_lodo(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"left_out": str}) if path.is_file() else pd.DataFrame(columns=LODO_COLUMNS)


def score_left_out(model_dir: Path, config: Config, tiles: list[Tile], arch_name: str) -> pd.DataFrame:
    """The fold's model and the Otsu baseline on the left-out tiles: one row per (method,
    patient)."""
    from nucseg.inference.predict import load_predictor, predict_nucleus_map

    predictor = load_predictor(model_dir / "model.keras")
    fold_config = with_saved_postprocess(config, model_dir)
    methods = {
        arch_name: (lambda image: predict_nucleus_map(predictor, image, tta=fold_config.tta), fold_config),
        BASELINE_NAME: baseline_method(fold_config),
    }
    _, patients = evaluate_methods(methods, tiles)
    return patients


def train_without(job: FoldJob, tiles: list[Tile], out_dir: Path, verbose: int = 0):
    """A fold of the study: trained on every data set but `job.val_patient` (the data set left
    out), exported; what a runner (here, or a Ray worker) runs."""
    train_tiles = [t for t in tiles if t.dataset != job.val_patient]
    result = train_fold(job.config, train_tiles, None, job.fold_dir, verbose=verbose)
    return dataclasses.replace(result, predictions=None)


class SequentialLodoRunner:
    """The folds one after another, in this process."""

    def run(self, jobs, tiles, out_dir: Path, verbose: int = 1):
        for job in jobs:
            yield job, train_without(job, tiles, out_dir, verbose)


def run_lodo(config: Config, archs, out_dir: str | Path, verbose: int = 1, runner=None) -> pd.DataFrame:
    """Train and score every (arch, data set left out); returns the table. `runner`: None (here,
    one fold after another) or nucseg.distributed.RayRunner(fold_function=train_without): the
    folds train as Ray tasks, and this driver scores each left-out set as its fold ends."""
    out_dir = Path(out_dir)
    names = dataset_names(config)
    if len(names) < 2:
        raise ConfigError(f"leave one data set out needs at least 2 data sets (--data A B ...); got {len(names)}")
    tiles = load_dataset(config.data, mpp=config.mpp)
    for arch in archs:  # each fold's teacher, before the study folder is claimed
        for left_out in names:
            check_teacher(config.replace(arch=arch).for_fold(left_out))
    claim_folder(out_dir, config, ignore=("arch", "data"))
    folds_csv = out_dir / "folds.csv"
    done = read_lodo(folds_csv)
    jobs = []
    for arch in archs:
        for left_out in names:
            if ((done["arch"] == arch) & (done["left_out"] == left_out)).any():
                logger.info(f"{arch} / without {left_out}: done earlier, skipped")
                continue
            logger.info(
                f"{arch} / without {left_out}: training on {', '.join(n for n in names if n != left_out)}, "
                f"scoring {left_out}"
            )
            jobs.append(FoldJob(config.replace(arch=arch).for_fold(left_out), left_out, out_dir / arch / left_out))
    for job, result in (runner or SequentialLodoRunner()).run(jobs, tiles, out_dir, verbose):
        held_out = [t for t in tiles if t.dataset == job.val_patient]
        patients = score_left_out(result.out_dir, job.config, held_out, job.config.arch)
        rows = []
        for method, group in patients.groupby("arch", sort=False):
            rows.append(
                {
                    "arch": job.config.arch,
                    "left_out": job.val_patient,
                    "method": method,
                    "patients": len(group),
                    "tiles": len(held_out),
                    **{c: group[c].mean() for c in [*SUMMARY_SCORES, "iou", "tpr"]},
                    "seconds": result.seconds,
                    "config_hash": job.config.config_hash(),
                }
            )
            logger.info(
                f"  {job.config.arch} / without {job.val_patient}, {method}: F1 {rows[-1]['f1']:.3f}, "
                f"AJI {rows[-1]['aji']:.3f}"
            )
        table = pd.concat([read_lodo(folds_csv), pd.DataFrame(rows, columns=LODO_COLUMNS)], ignore_index=True)
        write_text_atomic(folds_csv, table.to_csv(index=False))
    folds = read_lodo(folds_csv)
    write_text_atomic(out_dir / "summary.md", lodo_markdown(folds))
    _save_lodo_figure(folds, out_dir / "figures" / "lodo.png")
    return folds


def lodo_markdown(folds: pd.DataFrame, digits: int = 3) -> str:
    """One line per (arch, data set left out, method): the means over the left-out set's patients."""
    scores = list(SUMMARY_SCORES)
    lines = [
        "| net | left out | method | patients | " + " | ".join(SUMMARY_SCORES.values()) + " |",
        "|---|---|---|---:|" + "---:|" * len(scores),
    ]
    for row in folds.itertuples(index=False):
        cells = " | ".join(f"{getattr(row, c):.{digits}f}" for c in scores)
        lines.append(f"| {row.arch} | {row.left_out} | {row.method} | {row.patients} | {cells} |")
    lines.append("\nEach data set is scored by a model trained on the others only; scores are means over its patients.")
    return "\n".join(lines) + "\n"


def _save_lodo_figure(folds: pd.DataFrame, path: Path) -> None:
    import matplotlib.pyplot as plt

    from nucseg.study.figures import save_figure

    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for axis, score in zip(axes, ("f1", "aji")):
        table = folds.pivot_table(index="left_out", columns="method", values=score)
        table.plot.bar(ax=axis, rot=0)
        axis.set_title(f"{SUMMARY_SCORES[score]} on the data set left out")
        axis.set_ylim(0, 1)
        axis.set_xlabel("")
    save_figure(figure, path)
