"""int8 (NNCF, nucseg.inference.quantise) against float32 of the default model, in OpenVINO on this
CPU: the scores of each data set, calibrated on crops of the other three only, and the forward
pass alternated on batches of two 992 x 992 tiles (the 20,000 slide's tiles).

    .venv/bin/pip install -e '.[quantise]'
    .venv/bin/python results/measured/engines/int8.py > results/measured/engines/int8_amd.txt
"""

import tempfile
import time

import numpy as np
import openvino as ov

from nucseg import pretrained
from nucseg.data.dataset import load_dataset
from nucseg.hardware import cpu_summary
from nucseg.inference.engines import OpenVINOPredictor, openvino_model_file, openvino_predictor
from nucseg.inference.predict import usable_model
from nucseg.inference.quantise import calibration_crops, quantised
from nucseg.study.evaluate import pooled_scores, predict_tiles

SETS = ("tnbc", "tcga_glioma", "consep", "monuseg_train")
PAIRS = 8
model = pretrained.resolve(None)
config = usable_model(model).config
float32 = openvino_predictor(model, "float32")
data = {name: load_dataset(f"../shared/data/{name}") for name in SETS}
print(f"default model {model}, OpenVINO {ov.__version__}; {cpu_summary()}")
print("set: float32 F1 / AJI / object F1 / PQ -> int8 (calibrated on 12 crops of 256 of each other set)")
folder = tempfile.mkdtemp()
int8 = {}
for held in SETS:
    crops = calibration_crops([data[name] for name in SETS if name != held], per_set=12)
    ov.save_model(quantised(openvino_model_file(model), crops), f"{folder}/{held}.xml", compress_to_fp16=False)
    int8[held] = OpenVINOPredictor(f"{folder}/{held}.xml", "float32", int8_copy=True)
    rows = []
    for predictor in (float32, int8[held]):
        s = pooled_scores(predict_tiles(predictor, data[held], config))
        rows.append(" / ".join(f"{s[k]:.3f}" for k in ("f1", "aji", "object_f1", "pq")))
    print(f"  {held:14s} {rows[0]} -> {rows[1]}", flush=True)

batch = np.random.default_rng(1).integers(0, 256, (2, 992, 992, 3)).astype(np.float32)
times = {"float32": [], "int8": []}
for predictor in (float32, int8["tnbc"]):
    predictor(batch)
for _ in range(PAIRS):
    for name, predictor in (("float32", float32), ("int8", int8["tnbc"])):
        start = time.perf_counter()
        predictor(batch)
        times[name].append(time.perf_counter() - start)
megapixels = batch.shape[0] * batch.shape[1] * batch.shape[2] / 1e6
ratio = np.median(np.array(times["int8"]) / np.array(times["float32"]))
print(
    f"forward, {PAIRS} pairs alternated: float32 {megapixels / np.median(times['float32']):.2f}, "
    f"int8 {megapixels / np.median(times['int8']):.2f} megapixels/s (medians); "
    f"int8 / float32 {ratio:.3f} (median of pairs)"
)
