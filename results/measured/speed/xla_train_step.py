"""Seconds per training step of the `cpu`-profile DIST (batch 4 of 128 x 128, synthetic batches),
with and without XLA (jit_compile), on TensorFlow's CPU build: the step nucseg.training.optimizer
compiles without XLA there. One configuration per process (argv[1]: 0 or 1), 5 steps of warm-up
and 60 timed.

    for jit in 0 1 0 1; do .venv/bin/python results/measured/speed/xla_train_step.py $jit; done
"""

import sys
import time

import keras
import numpy as np

from nucseg.bench.models import synthetic_batch
from nucseg.config import Config
from nucseg.models import build_model
from nucseg.postprocess.kinds import kind_of

if __name__ == "__main__":
    jit = sys.argv[1] == "1"
    config = Config.from_profile("cpu", arch="dist")
    model = build_model(config)
    optimizer = keras.optimizers.SGD(
        0.01, momentum=config.momentum, weight_decay=config.weight_decay, global_clipnorm=config.clip_norm or None
    )
    model.compile(optimizer=optimizer, loss=kind_of(config).loss, jit_compile=jit)
    images, target = synthetic_batch(config, np.random.default_rng(0))
    for _ in range(5):
        model.train_on_batch(images, target)
    start = time.perf_counter()
    for _ in range(60):
        model.train_on_batch(images, target)
    print(f"jit_compile={jit}: {(time.perf_counter() - start) / 60:.3f} s a step")
