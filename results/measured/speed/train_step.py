"""Milliseconds per training step of a `cpu`-profile DIST fold as `nucseg lopo` trains it: TNBC's
real pipeline (augmentation in tf.data, patient_01 held out), model.fit, batch 4 of 128 x 128.
The first fifth of the steps (tracing, warm-up) is not counted. The code measured is the nucseg
that Python imports: set PYTHONPATH to a checkout (`git worktree add DIR REV`) to measure another
commit. BASE_FILTERS (default: the profile's) sets the net's width: the sessions' notes give the
day's speed with `300 16`, the `cpu` profile's width until its seventeenth round (8 since), so
that days stay comparable. BATCH (default: the profile's, 4) sets the batch size. The environment
variable ARCH times another of the profile's nets (default: dist), and FIELDS sets any other
Config fields, as JSON: `ARCH=deconvnet FIELDS='{"batch_norm": false}'`.

    PYTHONPATH=DIR .venv/bin/python results/measured/speed/train_step.py [STEPS [BASE_FILTERS [BATCH]]]
"""

import json
import os
import sys
import time

import nucseg  # noqa: F401  first, as the nucseg command imports it: it has TensorFlow use oneDNN
import keras
import numpy as np

from nucseg.config import Config, ConfigError
from nucseg.data.dataset import load_dataset
from nucseg.models import build_model
from nucseg.training.optimizer import compile_model
from nucseg.training.train import training_stream


class Clock(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.marks = []

    def on_train_batch_end(self, batch, logs=None):
        self.marks.append((time.perf_counter(), time.process_time()))


if __name__ == "__main__":
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    try:
        config = Config.from_profile("cpu", arch=os.environ.get("ARCH", "dist"), data="../shared/data/tnbc")
        config = config.replace(**json.loads(os.environ.get("FIELDS", "{}")))
    except (ConfigError, json.JSONDecodeError) as err:
        sys.exit(f"train_step.py: ARCH or FIELDS ({os.environ.get('FIELDS', '')}): {err}")
    if len(sys.argv) > 2:
        config = config.replace(base_filters=int(sys.argv[2]))
    if len(sys.argv) > 3:
        config = config.replace(batch_size=int(sys.argv[3]))
    tiles = [t for t in load_dataset(config.data, mpp=config.mpp) if t.patient != "patient_01"]
    keras.utils.set_random_seed(config.seed)
    model = compile_model(build_model(config), config, total_steps=config.steps)
    clock = Clock()
    model.fit(training_stream(config, tiles), steps_per_epoch=100, epochs=steps // 100, verbose=0, callbacks=[clock])
    marks = np.array(clock.marks)
    first = len(marks) // 5
    wall, cpu = (marks[-1] - marks[first]) / (len(marks) - 1 - first) * 1000
    print(f"{wall:.1f} ms a step, {cpu:.1f} ms of CPU ({len(marks) - 1 - first} steps counted)")
