"""How long the training stream takes to build and to give its first batches, and a checksum of
its first 20 batches (TNBC, patient_01 held out, the `cpu` profile's DIST): so that two commits
can be shown to stream the same samples. The code measured is the nucseg that Python imports
(PYTHONPATH=DIR for a checkout).

    .venv/bin/python results/measured/speed/stream_start.py
"""

import hashlib
import time

import nucseg  # noqa: F401  first, as the nucseg command imports it: it has TensorFlow use oneDNN
import numpy as np

from nucseg.config import Config
from nucseg.data.dataset import load_dataset
from nucseg.data.pipeline import prepare_tiles, training_dataset
from nucseg.hardware import cpu_summary
from nucseg.postprocess.kinds import kind_of

if __name__ == "__main__":
    config = Config.from_profile("cpu", arch="dist", data="../shared/data/tnbc")
    tiles = [t for t in load_dataset(config.data, mpp=config.mpp) if t.patient != "patient_01"]
    stack = prepare_tiles(tiles, config, kind_of(config))
    start = time.perf_counter()
    batches = iter(training_dataset(stack, config, start_batch=0))
    built = time.perf_counter()
    checksum, first = hashlib.sha256(), None
    for _ in range(20):
        for tensor in next(batches):
            checksum.update(np.ascontiguousarray(tensor.numpy()).tobytes())
        first = first or time.perf_counter()
    print(
        f"stream built {built - start:.2f} s, its first batch {first - built:.2f} s later, 20 batches "
        f"{time.perf_counter() - built:.2f} s; sha256 of the batches {checksum.hexdigest()[:16]}; {cpu_summary()}"
    )
