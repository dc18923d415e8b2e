"""Training a model, resumable: `fit` trains (or goes on training) the model of a folder.

nucseg.study.fold.train_fold builds a leave-one-patient-out fold on it; a fold writes into its
folder: config.json (refused if the folder holds another configuration), logs/ (TensorBoard),
losses.json (the mean loss of each epoch), checkpoint.keras (model and optimiser state, replaced
atomically at an epoch's end every config.checkpoint_seconds and at the last, removed once the
fold is exported), model.keras and saved_model/, and scores.json (the held-out patient's scores,
written last: the fold is done when it exists).
Killed and started again on the same folder, it goes on from the last checkpoint, with the same
training samples it would have drawn. A new fold seeds Keras's random generators from
config.seed, so that a fold is reproducible.
"""

from __future__ import annotations

import itertools
import json
import math
import signal
import threading
import time
from pathlib import Path

import keras

from nucseg.config import Config, ConfigError
from nucseg.data.dataset import Tile
from nucseg.data.pipeline import for_keras, prepare_tiles, training_dataset, with_teacher, without_autograph
from nucseg.errors import TrainingDiverged
from nucseg.io import save_with, write_json_atomic
from nucseg.models import build_model, custom_objects
from nucseg.postprocess.kinds import kind_of
from nucseg.training.optimizer import compile_model

CHECKPOINT = "checkpoint.keras"
LOSSES = "losses.json"


class EpochCheckpoint(keras.callbacks.Callback):
    """At each epoch end: the epoch's mean loss into losses.json (by epoch, so a redone epoch
    replaces its entry); then, once `every_seconds` have passed since the last checkpoint (or the
    fit's start), and at the last epoch, the model and optimiser state into the checkpoint.
    Keras's ModelCheckpoint and BackupAndRestore save by epochs or steps only: with a `cpu`
    fold's 100-step epochs, every epoch's save was about 3 % of the training time."""

    def __init__(self, path: Path, every_seconds: float):
        super().__init__()
        self.path, self.every_seconds = path, every_seconds
        self.last = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        losses = read_epoch_losses(self.path.parent)
        losses[epoch] = float((logs or {}).get("loss", float("nan")))
        write_json_atomic(self.path.parent / LOSSES, {str(k): v for k, v in sorted(losses.items())})
        last_epoch = epoch + 1 >= self.params["epochs"]
        if last_epoch or time.monotonic() - self.last >= self.every_seconds:
            save_with(self.path, self.model.save, suffix=".keras")
            self.last = time.monotonic()


def read_epoch_losses(out_dir: Path) -> dict[int, float]:
    path = Path(out_dir) / LOSSES
    return {int(k): v for k, v in json.loads(path.read_text()).items()} if path.is_file() else {}


class StopOnNaN(keras.callbacks.Callback):
    def __init__(self, config: Config):
        super().__init__()
        self.config = config

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            step = int(self.model.optimizer.iterations)
            raise TrainingDiverged(
                f"the loss became {loss} at step {step} of {self.config.arch}: training stopped. Lower the "
                f"learning rate (--lr, now {self.config.lr}), or check the data with `nucseg data check`. "
                "The last good checkpoint is kept."
            )


class FoldProgress(keras.callbacks.Callback):
    """One progress bar for the whole fold (steps done, loss, time left), resumed runs included;
    Keras's own bar starts again at every epoch."""

    def __init__(self, total_steps: int, done: int):
        super().__init__()
        self.bar = keras.utils.Progbar(total_steps, stateful_metrics=["loss"], unit_name="step")
        self.done = done

    def on_train_batch_end(self, batch, logs=None):
        self.done += 1
        self.bar.update(self.done, [("loss", float((logs or {}).get("loss", float("nan"))))])


class StopBetweenSteps(keras.callbacks.Callback):
    """Ctrl-C during training ends it at the end of the step it came in, not inside it. Python
    raises KeyboardInterrupt wherever the signal lands; inside TensorFlow's C++ train step that
    can come out as "SystemError: Objects/listobject.c:338: bad argument to internal function"
    (seen once in CI, on an AVX2-only EPYC). So, while `with` holds, Ctrl-C only notes the
    wish and the step's end raises KeyboardInterrupt; a second Ctrl-C raises at once.
    Only where Python's own handler is in place, in the main thread: a handler of the user's
    (or Ray's) is left alone."""

    def __init__(self):
        super().__init__()
        self.asked = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
                self._previous = signal.signal(signal.SIGINT, self._note)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
        return False

    def _note(self, signum, frame):
        if self.asked:
            raise KeyboardInterrupt
        self.asked = True

    def on_train_batch_end(self, batch, logs=None):
        if self.asked:
            raise KeyboardInterrupt


def _resume_or_build(out_dir: Path, config: Config, total_steps: int) -> keras.Model:
    checkpoint = out_dir / CHECKPOINT
    if checkpoint.is_file():
        return keras.models.load_model(checkpoint, custom_objects=custom_objects())
    keras.utils.set_random_seed(config.seed)  # the fold's initial weights and dropout follow config.seed
    model = build_model(config)
    if config.init:
        initialise_from(model, config.init)
    return compile_model(model, config, total_steps)


def keras_file_of(model: str) -> Path:
    """The .keras file a model argument names: `pretrained:NAME`, a .keras file, or a fold folder
    holding one (what --init and teacher= take)."""
    from nucseg import pretrained

    path = Path(pretrained.resolve(model))
    return path / "model.keras" if path.is_dir() else path


def _first_difference(shapes_there: list, shapes_here: list) -> str:
    """'weight i: (shape) there, (shape) here' for the first weight whose shapes differ (the
    caller has found that some do)."""
    pairs = enumerate(itertools.zip_longest(shapes_there, shapes_here, fillvalue="none"))
    return next(f"weight {i}: {there} there, {here} here" for i, (there, here) in pairs if there != here)


def initialise_from(model: keras.Model, path: str) -> None:
    """Fine-tuning: the weights of the model at `path` (a .keras file, or a fold folder holding
    one) copied into `model`, which must be the same net (architecture and widths)."""
    from nucseg.errors import InputError

    source = keras_file_of(path)
    if source.suffix != ".keras" or not source.is_file():
        raise InputError(f"--init {path}: no model.keras there; give a trained model's .keras file (or its folder)")
    from nucseg.models.loading import load_keras_model

    trained = load_keras_model(source)
    shapes = [tuple(w.shape) for w in trained.weights], [tuple(w.shape) for w in model.weights]
    if shapes[0] != shapes[1]:
        raise InputError(
            f"--init {path}: that model ({trained.name}, {len(shapes[0])} weights) is not the net being "
            f"trained ({model.name}, {len(shapes[1])} weights; {_first_difference(*shapes)}): "
            "fine-tune with the same --arch and widths (base_filters, unet_depth) as the model was trained "
            "with (a shipped model's are in its config.json)"
        )
    model.set_weights(trained.get_weights())


def training_stream(config: Config, train_tiles: list[Tile], start_batch: int = 0):
    """The fold's (image, target + weight) batches, from `start_batch` on: from train_tiles only;
    with config.teacher, the targets blended with the teacher's (nucseg.data.pipeline.with_teacher)."""
    stack = prepare_tiles(train_tiles, config, kind_of(config))
    batches = training_dataset(stack, config, start_batch=start_batch)
    if config.teacher:
        batches = with_teacher(batches, load_teacher(config), config.distill_weight)
    return batches.map(without_autograph(for_keras))


def check_teacher(config: Config) -> None:
    """load_teacher's checks, made before a run folder is claimed: a folder keeps the configuration
    it was started with, so a teacher that cannot teach is named before anything is written."""
    if config.teacher:
        load_teacher(config)


def load_teacher(config: Config) -> keras.Model:
    """The trained DIST of config.teacher, checked: one distance channel, a file that is there."""
    from nucseg.models.loading import ModelLoadError, load_keras_model

    if "{fold}" in config.teacher:
        raise ConfigError(
            f"teacher={config.teacher!r} names {{fold}}, which only a study fills in (nucseg lopo, nucseg lodo, "
            "or nucseg train --val-patient); give the teacher's model.keras itself here"
        )
    if config.output_kind != "distance":
        raise ConfigError(f"teacher= is for DIST (the distance map is what is distilled); arch={config.arch}")
    try:
        teacher = load_keras_model(keras_file_of(config.teacher))
    except ModelLoadError as err:
        raise ConfigError(f"teacher={config.teacher}: {err}") from err
    if teacher.output_shape[-1] != 1:
        raise ConfigError(
            f"teacher={config.teacher}: that model outputs {teacher.output_shape[-1]} channels, not a distance map; "
            "give a trained DIST (arch dist)"
        )
    return teacher


def fit(config: Config, train_tiles: list[Tile], out_dir: Path, verbose: int = 1) -> keras.Model:
    """Train (or go on training) the model of out_dir to config.steps; returns it.
    verbose: 0 silent, 1 one progress bar for the fold, 2 Keras's line per epoch."""
    steps_per_epoch = min(config.steps_per_epoch, config.steps)
    epochs = math.ceil(config.steps / steps_per_epoch)
    total = epochs * steps_per_epoch  # == config.steps: Config checks that steps_per_epoch divides it
    model = _resume_or_build(out_dir, config, total)
    done = int(model.optimizer.iterations)
    if done >= total:
        return model
    callbacks = [
        StopOnNaN(config),
        EpochCheckpoint(out_dir / CHECKPOINT, config.checkpoint_seconds),
        keras.callbacks.TensorBoard(log_dir=str(out_dir / "logs"), update_freq="epoch"),
    ]
    if verbose == 1:
        callbacks.append(FoldProgress(total, done))
    batches = training_stream(config, train_tiles, start_batch=done)
    with StopBetweenSteps() as stop:
        model.fit(
            batches,
            epochs=epochs,
            initial_epoch=done // steps_per_epoch,
            steps_per_epoch=steps_per_epoch,
            callbacks=[*callbacks, stop],
            verbose=2 if verbose == 2 else 0,
            shuffle=False,
        )
    return model
