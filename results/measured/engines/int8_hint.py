"""The net alone, OpenVINO, on batches of two 992 x 992 glioma tiles: the default model in bfloat16
(what --precision auto runs on an AMX Xeon) against its int8 copy compiled with the float32 hint
(what --precision int8 runs: its concatenations kept, its transposed convolutions rewritten to run
in int8) and with the bfloat16 hint (its layers left unquantised then run in bfloat16, the last one
kept in float32). Three rounds, alternated; 4 batches a figure.

    .venv/bin/python results/measured/engines/int8_hint.py > results/measured/engines/int8_hint_xeon.txt
"""

import time

import nucseg  # noqa: F401  first, as the nucseg command imports it
import numpy as np

from nucseg import pretrained
from nucseg.bench.slide import mosaic_block
from nucseg.data.dataset import load_dataset
from nucseg.hardware import cpu_summary
from nucseg.inference.engines import OpenVINOPredictor, int8_model_file, openvino_model_file, openvino_predictor

SIDE, BATCHES = 992, 4

model = pretrained.model_file()
tiles = load_dataset("../shared/data/tcga_glioma")
batch = np.stack([mosaic_block(tiles, 0, i * SIDE, SIDE, SIDE) for i in range(2)]).astype(np.float32)
predictors = {
    "bfloat16": OpenVINOPredictor(openvino_model_file(model), "bfloat16"),
    "int8, float32 hint": openvino_predictor(model, "int8"),
    "int8, bfloat16 hint": OpenVINOPredictor(int8_model_file(model), "bfloat16", float32_head=True, int8_copy=True),
}
outputs = {name: predict(batch) for name, predict in predictors.items()}
for name, output in outputs.items():
    largest = np.abs(output - outputs["bfloat16"]).max()
    print(f"{name}: largest difference from bfloat16's distance map {largest:.3f} px")
for round_ in range(3):
    for name, predict in predictors.items():
        start = time.perf_counter()
        for _ in range(BATCHES):
            predict(batch)
        speed = BATCHES * batch.shape[0] * SIDE * SIDE / 1e6 / (time.perf_counter() - start)
        print(f"round {round_}: {name}: {speed:.2f} megapixels/s")
print(cpu_summary())
