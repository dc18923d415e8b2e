"""One leave-one-patient-out fold: train (nucseg.training.train.fit, resumable), export, choose
the post-processing on the fold's own training tiles, score the held-out patient, flag a fold
that did not learn. scores.json, written last, says the fold is done (see nucseg.training.train
for the rest of the fold folder)."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import keras

from nucseg.config import Config
from nucseg.data.dataset import Tile, patients_of
from nucseg.inference.predict import model_predictor, predict_nucleus_map
from nucseg.io import write_json_atomic
from nucseg.postprocess.tuning import choose_postprocess, spread, with_saved_postprocess, write_postprocess
from nucseg.study.evaluate import TilePrediction, score_held_out
from nucseg.study.folds import fold_for
from nucseg.study.health import fold_flags
from nucseg.training.export import export_model
from nucseg.training.runs import claim_folder
from nucseg.training.train import CHECKPOINT, fit, read_epoch_losses

SCORES = "scores.json"


@dataclasses.dataclass
class FoldResult:
    val_patient: str
    scores: dict
    steps: int
    seconds: float
    out_dir: Path
    predictions: list[TilePrediction] | None = None  # None when the fold was already done
    flags: str = ""  # see nucseg.study.health: "" when the model learned


def choose_on_training_tiles(model: keras.Model, train_tiles: list[Tile], config: Config) -> dict:
    """Post-processing chosen on (some of) the fold's own training tiles: see nucseg.postprocess.tuning."""
    chosen = spread(train_tiles)
    nucleus_maps = [predict_nucleus_map(model_predictor(model), t.image, tta=config.tta) for t in chosen]
    return choose_postprocess(nucleus_maps, [t.label for t in chosen], config)


def train_fold(
    config: Config, tiles: list[Tile], val_patient: str | None, out_dir: str | Path, verbose: int = 1
) -> FoldResult:
    """Train on every patient but `val_patient`, export, score `val_patient`. With val_patient
    None: train on every patient (a model to use elsewhere), export, score nothing."""
    out_dir = Path(out_dir)
    train_patients = fold_for(patients_of(tiles), val_patient).train_patients if val_patient else patients_of(tiles)
    claim_folder(out_dir, config)
    if (out_dir / SCORES).is_file():
        done = json.loads((out_dir / SCORES).read_text())
        return FoldResult(
            val_patient, done["scores"], done["steps"], done["seconds"], out_dir, flags=done.get("flags", "")
        )

    start = time.perf_counter()
    train_tiles = [t for t in tiles if t.patient in train_patients]
    model = fit(config, train_tiles, out_dir, verbose)
    export_model(model, out_dir)
    if config.tune_postprocess:
        write_postprocess(out_dir, choose_on_training_tiles(model, train_tiles, config))
    predictions, scores = [], {"predicted_fraction": 0.5}  # nothing held out: only the loss can tell
    if val_patient:
        held_out = [t for t in tiles if t.patient == val_patient]
        predictions, scores = score_held_out(model, held_out, with_saved_postprocess(config, out_dir))
    flags = fold_flags(scores, [loss for _, loss in sorted(read_epoch_losses(out_dir).items())])
    steps, seconds = int(model.optimizer.iterations), round(time.perf_counter() - start, 1)
    write_json_atomic(
        out_dir / SCORES,
        {
            "val_patient": val_patient,
            "scores": scores,
            "flags": flags,
            "steps": steps,
            "seconds": seconds,
            "config_hash": config.config_hash(),
            "train_patients": sorted(train_patients),
        },
    )
    (out_dir / CHECKPOINT).unlink(missing_ok=True)
    return FoldResult(val_patient, scores, steps, seconds, out_dir, predictions, flags)
