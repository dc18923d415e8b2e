"""What a DIST fit's epoch ends cost (the `cpu` profile unless another is named;
nucseg.training.train.fit on TNBC, patient_01 held out, its callbacks): the fit's wall time, the
time in the checkpoint callback (losses.json at every epoch's end, checkpoint.keras when due) and
how many epoch ends saved the checkpoint, the time the epoch ends add between two steps (the
callback, TensorBoard, Keras's own), and a checksum of the trained weights, so that two epoch
lengths or two commits can be shown to train the same net. The code measured is the nucseg that
Python imports (PYTHONPATH=DIR for a checkout).

    .venv/bin/python results/measured/speed/epoch_length.py STEPS STEPS_PER_EPOCH [PROFILE]
"""

import hashlib
import sys
import tempfile
import time
from pathlib import Path

import nucseg  # noqa: F401  first, as the nucseg command imports it: it has TensorFlow use oneDNN
import keras
import numpy as np

from nucseg.config import Config
from nucseg.data.dataset import load_dataset
from nucseg.hardware import cpu_summary
from nucseg.training import train
from nucseg.training.runs import claim_folder

batch_ends, epoch_end_seconds, saves = [], [], []


class Clock(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        batch_ends.append(time.perf_counter())


original_fit, original_epoch_end, original_save = keras.Model.fit, train.EpochCheckpoint.on_epoch_end, train.save_with


def clocked_fit(self, *args, callbacks=None, **kwargs):
    return original_fit(self, *args, callbacks=[Clock(), *callbacks], **kwargs)


def clocked_epoch_end(self, epoch, logs=None):
    start = time.perf_counter()
    original_epoch_end(self, epoch, logs)
    epoch_end_seconds.append(time.perf_counter() - start)


def counted_save(*args, **kwargs):
    saves.append(args[0])
    return original_save(*args, **kwargs)


if __name__ == "__main__":
    steps, per_epoch, profile = int(sys.argv[1]), int(sys.argv[2]), (sys.argv[3:] or ["cpu"])[0]
    keras.Model.fit, train.EpochCheckpoint.on_epoch_end, train.save_with = clocked_fit, clocked_epoch_end, counted_save
    values = {"arch": "dist", "data": "../shared/data/tnbc", "steps": steps, "steps_per_epoch": per_epoch}
    config = Config.from_profile(profile, **values)
    tiles = [t for t in load_dataset(config.data, mpp=config.mpp) if t.patient != "patient_01"]
    with tempfile.TemporaryDirectory() as out:
        claim_folder(Path(out), config)
        start = time.perf_counter()
        model = train.fit(config, tiles, Path(out), verbose=0)
        seconds = time.perf_counter() - start
    gaps = np.diff(batch_ends)
    ends = np.arange(per_epoch, steps, per_epoch) - 1  # the gaps that hold an epoch's end
    median = np.median(np.delete(gaps, ends))
    weights = hashlib.sha256(b"".join(np.ascontiguousarray(w).tobytes() for w in model.get_weights())).hexdigest()
    print(
        f"{profile} profile, {steps} steps, {per_epoch} an epoch: fit {seconds:.1f} s; "
        f"median step {1000 * median:.1f} ms; "
        f"{len(epoch_end_seconds)} epoch ends, {len(saves)} of them saved the checkpoint: the checkpoint callback "
        f"{sum(epoch_end_seconds):.2f} s in all; epoch ends beyond a step "
        f"{np.sum(gaps[ends] - median) + epoch_end_seconds[-1]:.2f} s; weights sha256 {weights[:16]}; {cpu_summary()}"
    )
