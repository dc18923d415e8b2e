"""Keras (TensorFlow) inference, as `--engine tensorflow` and a fold's scoring run it: a shipped model
on batches of 2 x 1024 x 1024 (the slide's batches), and a `cpu`-profile net (untrained weights: the
time does not depend on them) through predict_nucleus_map on 8 TNBC tiles of 512. Run it with
TF_ENABLE_ONEDNN_OPTS=1 and =0, alternated, to compare.

    TF_ENABLE_ONEDNN_OPTS=1 .venv/bin/python results/measured/speed/tf_inference.py [MODEL [ARCH]]
"""

import sys
import time

import nucseg  # noqa: F401  first, as the nucseg command imports it
import numpy as np

from nucseg import pretrained
from nucseg.config import Config
from nucseg.data.dataset import load_dataset
from nucseg.inference.predict import load_predictor, model_predictor, predict_nucleus_map
from nucseg.models import build_model

model_name = sys.argv[1] if len(sys.argv) > 1 else "pretrained:he-nuclei-fast"
arch = sys.argv[2] if len(sys.argv) > 2 else "dist"
tiles = load_dataset("../shared/data/tnbc")[:8]
predictor = load_predictor(pretrained.resolve(model_name), engine="tensorflow")
batch = np.stack([np.tile(tiles[0].image, (2, 2, 1)), np.tile(tiles[1].image, (2, 2, 1))]).astype(np.float32)
predictor(batch)  # warm-up
times = []
for _ in range(4):
    start = time.perf_counter()
    predictor(batch)
    times.append(time.perf_counter() - start)
print(f"{model_name}, 2 x 1024 x 1024: {' '.join(f'{t:.2f}' for t in times)} s "
      f"({2 * 1024 * 1024 / 1e6 / np.median(times):.2f} megapixels/s)")
net = model_predictor(build_model(Config.from_profile("cpu", arch=arch)))
predict_nucleus_map(net, tiles[0].image)  # warm-up
start = time.perf_counter()
for tile in tiles:
    predict_nucleus_map(net, tile.image)
print(f"cpu {arch}, 8 TNBC tiles of 512 (predict_nucleus_map): {time.perf_counter() - start:.2f} s")
