"""A shipped model compiled by OpenVINO with dynamic shapes (as nucseg does: one compilation for every
tile size) against static ones (reshaped to the slide's batch of tiles), bfloat16 with the last
layer in float32, alternated. Tried and not kept (fourteenth round, docs/speed.md).

    .venv/bin/python results/measured/engines/openvino_static_shapes.py he_nuclei_fast 992 10
"""

import sys
import time
from pathlib import Path

import numpy as np
import openvino as ov

from nucseg.inference.engines import _cache_folder, _model_digest, openvino_predictor
from nucseg.inference.openvino_graph import float32_linear_head
from nucseg.pretrained import __file__ as pretrained_init

name, side, repeats, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), 2
model_file = Path(pretrained_init).parent / name / "model.keras"
openvino_predictor(model_file, "float32")  # converts the model into nucseg's cache, once
cached = _cache_folder() / _model_digest(model_file) / "model.xml"
core = ov.Core()


def compiled(static: bool):
    model = core.read_model(str(cached))
    float32_linear_head(model)
    if static:
        model.reshape([batch, side, side, 3])
    return core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "bf16"})


images = np.random.default_rng(0).uniform(0, 255, (batch, side, side, 3)).astype(np.float32)
variants = {"dynamic": compiled(False), "static": compiled(True)}
outputs = {key: np.asarray(model(images)[0]) for key, model in variants.items()}
print(f"{name}, batches of {batch} x {side} x {side}: largest difference of the outputs",
      float(np.abs(outputs["dynamic"] - outputs["static"]).max()))
seconds = {key: [] for key in variants}
for _ in range(repeats):
    for key, model in variants.items():
        start = time.perf_counter()
        model(images)
        seconds[key].append(time.perf_counter() - start)
for key, values in seconds.items():
    median = float(np.median(values))
    speed = batch * side * side / 1e6 / median
    print(f"{key}: median {median:.3f} s a batch (min {min(values):.3f}), {speed:.2f} megapixels/s")
