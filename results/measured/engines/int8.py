"""OpenVINO int8 (NNCF's post-training quantization) against float32 and nucseg's bfloat16:
forward speed of the shipped model (alternated in one run), and scores OUT OF SAMPLE: for each
set scored, the leave-one-data-set-out model that never saw it (the cpu DIST, seed 1:
results/measured/lodo_dist_seed1/), quantized on crops of its own training sets only.

    PYTHONPATH=DIR_WITH_NNCF .venv/bin/python results/measured/engines/int8.py LODO_RUN > results/measured/engines/int8.txt

NNCF (`pip install nncf`) is not a nucseg dependency: this measures whether it should be.
LODO_RUN: the folder of `nucseg lodo` (its dist/<left out>/saved_model and postprocess.json).
"""

import sys
import time
from pathlib import Path

import nncf
import numpy as np
import openvino as ov

from nucseg import pretrained
from nucseg.cli.common import model_and_config
from nucseg.data.dataset import load_dataset
from nucseg.inference.engines import OpenVINOPredictor, _cache_folder, _model_digest, cpu_summary, openvino_predictor
from nucseg.inference.predict import predict_nucleus_map
from nucseg.study.evaluate import evaluate_methods
from nucseg.study.results import summarize_folds

SETS = {name: f"../shared/data/{name}" for name in ("tnbc", "tcga_glioma", "consep", "monuseg_train")}
SCORED = ("tnbc", "tcga_glioma")
CROPS, SIDE, REPEATS = 64, 512, 5


def xml_of(model_path) -> Path:
    openvino_predictor(model_path)  # converted into nucseg's cache
    return _cache_folder() / _model_digest(Path(model_path)) / "model.xml"


def calibration_crops(names, count=CROPS, seed=0):
    """`count` SIDE x SIDE crops drawn evenly from the named sets' tiles."""
    rng = np.random.default_rng(seed)
    tiles = [t for name in names for t in load_dataset(SETS[name])]
    crops = []
    for index in rng.choice(len(tiles), count, replace=len(tiles) < count):
        image = tiles[index].image
        y = rng.integers(0, image.shape[0] - SIDE + 1)
        x = rng.integers(0, image.shape[1] - SIDE + 1)
        crops.append(image[y : y + SIDE, x : x + SIDE].astype(np.float32))
    return crops


def int8_predictor(xml, crops):
    model = ov.Core().read_model(str(xml))
    quantized = nncf.quantize(
        model, nncf.Dataset(crops, lambda crop: crop[None]), subset_size=len(crops), fast_bias_correction=True
    )
    compiled = ov.Core().compile_model(quantized, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})

    def predict(batch):
        return np.asarray(compiled(np.ascontiguousarray(batch, dtype=np.float32))[0])

    return predict


print(f"CPU: {cpu_summary()}")
print(f"nncf {nncf.__version__}, openvino {ov.__version__}; calibration: {CROPS} crops of {SIDE} x {SIDE}")

# Speed: the shipped model, calibrated on its own training sets (speed only; no score from it).
shipped = xml_of(pretrained.model_file(pretrained.DEFAULT))
predictors = {
    "float32": OpenVINOPredictor(shipped),
    "bfloat16, last layer in float32 (nucseg's auto here)": OpenVINOPredictor(shipped, "bfloat16"),
    "int8 (NNCF, default preset)": int8_predictor(shipped, calibration_crops(SETS)),
}
tnbc = load_dataset(SETS["tnbc"])
batch = np.stack(
    [
        np.concatenate(
            [np.concatenate([tnbc[4 * k + i].image[:512, :512] for i in pair], 1) for pair in ((0, 1), (2, 3))], 0
        )
        for k in range(2)
    ]
).astype(np.float32)
for predictor in predictors.values():
    predictor(batch)
seconds = {name: [] for name in predictors}
for _ in range(REPEATS):
    for name, predictor in predictors.items():
        start = time.perf_counter()
        predictor(batch)
        seconds[name].append(time.perf_counter() - start)
print(f"\nforward pass, batches of two 1024 x 1024 tiles, {REPEATS} repeats alternated")
print("| precision | median s per batch | megapixels/s | ratio to float32 (median of pairs) |")
print("|---|---:|---:|---:|")
for name, values in seconds.items():
    ratio = np.median(np.asarray(seconds["float32"]) / np.asarray(values))
    print(f"| {name} | {np.median(values):.3f} | {2 * 1.048576 / np.median(values):.2f} | {ratio:.2f} |", flush=True)

# Scores: each set by the model that left it out, quantized on that model's training sets.
run = Path(sys.argv[1])
print("\n| left out | precision | F1 | AJI | object F1 | PQ |")
print("|---|---|---:|---:|---:|---:|")
for left_out in SCORED:
    fold = run / "dist" / left_out
    xml = xml_of(fold / "saved_model")
    _, config = model_and_config(str(fold / "saved_model"))
    fold_predictors = {
        "float32": OpenVINOPredictor(xml),
        "bfloat16, last layer in float32": OpenVINOPredictor(xml, "bfloat16"),
        "int8": int8_predictor(xml, calibration_crops([name for name in SETS if name != left_out])),
    }
    methods = {
        name: ((lambda p: lambda image: predict_nucleus_map(p, image))(p), config)
        for name, p in fold_predictors.items()
    }
    _, patients = evaluate_methods(methods, load_dataset(SETS[left_out]))
    for row in summarize_folds(patients).itertuples():
        print(
            f"| {left_out} | {row.arch} | {row.f1_mean:.3f} | {row.aji_mean:.3f} | {row.object_f1_mean:.3f} "
            f"| {row.pq_mean:.3f} |",
            flush=True,
        )
