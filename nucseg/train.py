"""Training one leave-one-patient-out fold, resumable, then export and held-out scores.

`train_fold` writes into its folder: config.json (refused if the folder holds another
configuration), logs/ (TensorBoard), checkpoint.keras (model and optimiser state, replaced
atomically at each epoch end, removed once the fold is exported), model.keras and
saved_model/, and scores.json (the held-out patient's scores, written last: the fold is done
when it exists). Killed and started again on the same folder, it goes on from the last
checkpoint, with the same training samples it would have drawn.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import keras
import numpy as np

from nucseg.config import Config, ConfigError
from nucseg.data import Tile, patients_of
from nucseg.errors import TrainingDiverged
from nucseg.evaluate import TilePrediction, pooled_scores, predict_tiles
from nucseg.export import export_model
from nucseg.folds import fold_for
from nucseg.io import save_with, write_json_atomic
from nucseg.losses import masked_weighted_cross_entropy
from nucseg.models import build_model
from nucseg.pipeline import evaluation_dataset, for_keras, prepare_tiles, training_dataset

CHECKPOINT = "checkpoint.keras"
SCORES = "scores.json"


@dataclasses.dataclass
class FoldResult:
    val_patient: str
    scores: dict
    steps: int
    seconds: float
    out_dir: Path
    predictions: list[TilePrediction] | None = None  # None when the fold was already done


def schedule_of(config: Config, total_steps: int):
    steps = config.steps_per_epoch * max(total_steps // config.steps_per_epoch, 1)
    if config.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(config.lr, decay_steps=steps, alpha=0.01)
    return config.lr


def xla_for_training() -> bool | str:
    """XLA slows training on TensorFlow's CPU build (measured at batch 4 of 256x256: PangNet
    0.059 against 0.031 s/step, quick U-Net 0.23 against 0.16); elsewhere (JAX, GPUs) Keras's
    "auto" compiles the train step with XLA, as it should."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    return "auto"


def compile_model(model: keras.Model, config: Config, total_steps: int) -> keras.Model:
    optimizer = keras.optimizers.SGD(schedule_of(config, total_steps), momentum=config.momentum,
                                     weight_decay=config.weight_decay)
    model.compile(optimizer=optimizer, loss=masked_weighted_cross_entropy, jit_compile=xla_for_training())
    return model


class EpochCheckpoint(keras.callbacks.Callback):
    def __init__(self, path: Path):
        super().__init__()
        self.path = path

    def on_epoch_end(self, epoch, logs=None):
        save_with(self.path, self.model.save, suffix=".keras")


class StopOnNaN(keras.callbacks.Callback):
    def __init__(self, config: Config):
        super().__init__()
        self.config = config

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            step = int(self.model.optimizer.iterations)
            raise TrainingDiverged(
                f"the loss became {loss} at step {step} of {self.config.arch}: training stopped. Lower the learning rate "
                f"(--lr, now {self.config.lr}), or check the data with `nucseg data check`. The last good checkpoint is kept."
            )


def claim_folder(out_dir: Path, config: Config, ignore=("data",)) -> None:
    """Write config.json, or check that the folder's one is this configuration (but `ignore`)."""
    path = out_dir / "config.json"
    if path.is_file():
        previous = Config(**json.loads(path.read_text()))
        if previous.config_hash(ignore) != config.config_hash(ignore):
            changed = sorted(k for k, v in config.to_dict().items() if getattr(previous, k) != v and k not in ignore)
            raise ConfigError(f"{out_dir} holds a run with another configuration (differs in {changed}). "
                              "Use a new --out folder for this one, or remove the old folder to start again.")
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, config.to_dict())


def _resume_or_build(out_dir: Path, config: Config, total_steps: int) -> keras.Model:
    checkpoint = out_dir / CHECKPOINT
    if checkpoint.is_file():  # importing nucseg.models registered its custom layer
        return keras.models.load_model(checkpoint)
    return compile_model(build_model(config), config, total_steps)


def fit(config: Config, train_tiles: list[Tile], out_dir: Path, verbose: int | str = "auto") -> keras.Model:
    """Train (or go on training) the model of out_dir to config.steps; returns it."""
    steps_per_epoch = min(config.steps_per_epoch, config.steps)
    epochs = math.ceil(config.steps / steps_per_epoch)
    model = _resume_or_build(out_dir, config, epochs * steps_per_epoch)
    done = int(model.optimizer.iterations)
    if done >= epochs * steps_per_epoch:
        return model
    stream = training_dataset(prepare_tiles(train_tiles, config), config, start_batch=done).map(for_keras)
    callbacks = [StopOnNaN(config), EpochCheckpoint(out_dir / CHECKPOINT),
                 keras.callbacks.TensorBoard(log_dir=str(out_dir / "logs"), update_freq="epoch")]
    model.fit(stream, epochs=epochs, initial_epoch=done // steps_per_epoch, steps_per_epoch=steps_per_epoch,
              callbacks=callbacks, verbose=verbose, shuffle=False)
    return model


def train_fold(config: Config, tiles: list[Tile], val_patient: str, out_dir: str | Path,
               verbose: int | str = "auto") -> FoldResult:
    out_dir = Path(out_dir)
    fold = fold_for(patients_of(tiles), val_patient)
    out_dir.mkdir(parents=True, exist_ok=True)
    claim_folder(out_dir, config)
    if (out_dir / SCORES).is_file():
        done = json.loads((out_dir / SCORES).read_text())
        return FoldResult(val_patient, done["scores"], done["steps"], done["seconds"], out_dir)

    start = time.perf_counter()
    train_tiles = [t for t in tiles if t.patient in fold.train_patients]
    model = fit(config, train_tiles, out_dir, verbose)
    export_model(model, out_dir)
    steps = int(model.optimizer.iterations)
    predictor = lambda batch: np.asarray(model(batch, training=False))  # noqa: E731
    held_out = [t for t in tiles if t.patient == val_patient]
    predictions = predict_tiles(predictor, held_out, config)
    val_loss = model.evaluate(evaluation_dataset(held_out, config).map(for_keras), verbose=0)
    scores = {**pooled_scores(predictions), "val_loss": float(val_loss)}
    seconds = round(time.perf_counter() - start, 1)
    write_json_atomic(out_dir / SCORES, {"val_patient": val_patient, "scores": scores, "steps": steps,
                                         "seconds": seconds, "config_hash": config.config_hash()})
    (out_dir / CHECKPOINT).unlink(missing_ok=True)
    return FoldResult(val_patient, scores, steps, seconds, out_dir, predictions)
