"""Where a `cpu`-profile DIST fit's wall time goes, as nucseg.training.train.fit runs it (TNBC's
pipeline, patient_01 held out, its callbacks, epoch checkpoints): before model.fit, the first
step (tracing), the median step, and the tail from the last step's end to fit's return (the
tf.data iterator's destructor, which waited for tf.data's autotuning thread before the
twenty-second round). The code measured is the nucseg that Python imports: set PYTHONPATH to a
checkout (`git worktree add DIR REV`) to measure another commit.

    PYTHONPATH=DIR .venv/bin/python results/measured/speed/fit_tail.py [STEPS]
"""

import sys
import tempfile
import time
from pathlib import Path

import nucseg  # noqa: F401  first, as the nucseg command imports it: it has TensorFlow use oneDNN
import keras
import numpy as np

from nucseg.config import Config
from nucseg.data.dataset import load_dataset
from nucseg.training import train
from nucseg.training.runs import claim_folder

marks = {"batch": []}


class Clock(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        marks["batch"].append(time.perf_counter())


original_fit = keras.Model.fit


def clocked_fit(self, *args, callbacks=None, **kwargs):
    marks["fit"] = time.perf_counter()
    history = original_fit(self, *args, callbacks=[*callbacks, Clock()], **kwargs)
    marks["returned"] = time.perf_counter()
    return history


if __name__ == "__main__":
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 600
    keras.Model.fit = clocked_fit
    config = Config.from_profile("cpu", arch="dist", data="../shared/data/tnbc", steps=steps)
    tiles = [t for t in load_dataset(config.data, mpp=config.mpp) if t.patient != "patient_01"]
    with tempfile.TemporaryDirectory() as out:
        claim_folder(Path(out), config)
        start = time.perf_counter()
        train.fit(config, tiles, Path(out), verbose=0)
        end = time.perf_counter()
    batch = np.array(marks["batch"])
    print(
        f"fit {end - start:.1f} s for {steps} steps: before model.fit {marks['fit'] - start:.1f} s, "
        f"to the first step's end {batch[0] - marks['fit']:.1f} s, "
        f"median step {1000 * np.median(np.diff(batch)):.1f} ms, "
        f"last step's end to fit's return {marks['returned'] - batch[-1]:.1f} s"
    )
