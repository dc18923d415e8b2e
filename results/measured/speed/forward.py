"""Forward megapixels/s of the cpu-profile DIST and its cheaper variants, TensorFlow and OpenVINO
float32, and OpenVINO bfloat16 with the last layer in float32 (--precision auto on an AMX CPU),
batches of two 1024 x 1024 tiles, untrained weights (the speed does not depend on them).
Usage: .venv/bin/python results/measured/speed/forward.py > results/measured/speed/forward.txt"""

import tempfile
import time
from pathlib import Path

import numpy as np

from nucseg.bench.models import gmac_per_megapixel
from nucseg.config import Config
from nucseg.hardware import cpu_summary
from nucseg.inference.engines import OpenVINOPredictor
from nucseg.models import build_model

VARIANTS = {"cpu DIST (16..256 filters)": {}, "grid=2": {"grid": 2}, "separable": {"separable": True},
            "grid=2 + separable": {"grid": 2, "separable": True}, "8..128 filters": {"base_filters": 8},
            "grid=2 + full-resolution skip": {"grid": 2, "grid_skip": True},
            "separable from level 2": {"separable": True, "separable_from": 2}}


def speed(predict, batch, repeats=3):
    predict(batch)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        predict(batch)
        best = min(best, time.perf_counter() - start)
    return batch.shape[0] * batch.shape[1] * batch.shape[2] / 1e6 / best


batch = np.random.default_rng(0).uniform(0, 255, (2, 1024, 1024, 3)).astype(np.float32)
print(f"CPU: {cpu_summary()}")
print("| variant | parameters | GMAC/megapixel | TensorFlow Mpx/s | OpenVINO Mpx/s | OpenVINO bfloat16 Mpx/s |")
print("|---|---:|---:|---:|---:|---:|")
for name, changes in VARIANTS.items():
    model = build_model(Config.from_profile("cpu", arch="dist", **changes))
    tf_speed = speed(lambda b: model.predict_on_batch(b), batch)
    with tempfile.TemporaryDirectory() as folder:
        model.export(str(Path(folder) / "sm"), format="tf_saved_model", verbose=False)
        ov_speed = speed(OpenVINOPredictor(Path(folder) / "sm"), batch)
        bf16_speed = speed(OpenVINOPredictor(Path(folder) / "sm", "bfloat16"), batch)  # last layer in float32
    print(f"| {name} | {model.count_params():,} | {gmac_per_megapixel(model):.1f} | {tf_speed:.2f} | {ov_speed:.2f} "
          f"| {bf16_speed:.2f} |", flush=True)
