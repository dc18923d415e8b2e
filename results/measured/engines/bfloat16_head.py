"""OpenVINO float32 against bfloat16: the whole net compiled in bfloat16 (DIST's last 1x1
convolution too), the last convolution split off and done in float32 in NumPy (nucseg's bfloat16
from 9e31471 to 3eb03ab), the last convolution rewritten as a product and a sum that OpenVINO keeps
in float32 (nucseg's bfloat16 now), and float32 with only its output rounded to bfloat16: forward
speed, alternated in one run, and the shipped model's scores on TNBC (in sample: the model was
trained on TNBC among others; this compares precisions, not models).

    .venv/bin/python results/measured/engines/bfloat16_head.py > results/measured/engines/bfloat16_head.txt
"""

import time

import numpy as np

from nucseg import pretrained
from nucseg.cli.common import model_and_config
from nucseg.data.dataset import load_dataset
from nucseg.hardware import cpu_summary
from nucseg.inference.engines import OpenVINOPredictor, _cache_folder, _model_digest, openvino_predictor
from nucseg.inference.predict import predict_nucleus_map
from nucseg.study.evaluate import evaluate_methods
from nucseg.study.results import summarize_folds

REPEATS = 5
model = pretrained.model_file(pretrained.DEFAULT)
openvino_predictor(model)  # converted into the cache
xml = _cache_folder() / _model_digest(model) / "model.xml"


def rounded_to_bfloat16(predictor):
    def predict(batch):
        bits = predictor(batch).astype(np.float32).view(np.uint32)
        return ((bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000).astype(np.uint32).view(np.float32)

    return predict


def numpy_head(xml):
    """The previous way: OpenVINO in bfloat16 up to the last convolution's input, that convolution
    in float32 in NumPy (the code of 3eb03ab's split_linear_head, for DIST's single output)."""
    import openvino as ov

    model = ov.Core().read_model(str(xml))
    add = model.get_results()[0].input(0).get_source_output().get_node().input(0).get_source_output().get_node()
    conv, bias = (add.input(k).get_source_output().get_node() for k in (0, 1))
    kernel = conv.input(1).get_source_output().get_node().get_data().astype(np.float32)[:, :, 0, 0]
    body = ov.Model([conv.input(0).get_source_output()], model.get_parameters(), "body")
    compiled = ov.Core().compile_model(body, "CPU", {"INFERENCE_PRECISION_HINT": "bf16"})
    offset = bias.get_data().astype(np.float32).reshape(-1)

    def predict(batch):
        features = np.asarray(compiled(np.ascontiguousarray(batch, dtype=np.float32))[0])
        n, c, h, w = features.shape
        mixed = np.matmul(kernel, features.reshape(n, c, h * w)).reshape(n, -1, h, w)
        return np.moveaxis(mixed, 1, -1) + offset

    return predict


predictors = {
    "float32": OpenVINOPredictor(xml),
    "bfloat16, whole net": OpenVINOPredictor(xml, "bfloat16", float32_head=False),
    "bfloat16, last layer in NumPy float32 (before)": numpy_head(xml),
    "bfloat16, last layer kept in float32 by OpenVINO (now)": OpenVINOPredictor(xml, "bfloat16"),
}
tnbc = load_dataset("../shared/data/tnbc")
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
print(f"CPU: {cpu_summary()}")
print(f"{model}: OpenVINO, batches of two 1024 x 1024 tiles of TNBC, {REPEATS} repeats alternated")
print("| precision | median s per batch | megapixels/s | ratio to float32 (median of pairs) |")
print("|---|---:|---:|---:|")
for name, values in seconds.items():
    ratio = np.median(np.asarray(seconds["float32"]) / np.asarray(values))
    print(f"| {name} | {np.median(values):.3f} | {2 * 1.048576 / np.median(values):.2f} | {ratio:.2f} |")

_, config = model_and_config(str(model))
methods = {name: ((lambda p: lambda image: predict_nucleus_map(p, image))(p), config) for name, p in predictors.items()}
methods["float32, output rounded to bfloat16"] = (
    lambda image: predict_nucleus_map(rounded_to_bfloat16(predictors["float32"]), image),
    config,
)
_, patients = evaluate_methods(methods, tnbc)
summary = summarize_folds(patients)
print(f"\nTNBC, {len(tnbc)} tiles, mean over 11 patients (post-processing: threshold {config.dist_threshold}, "
      f"lambda {config.dist_lambda})")
print("| precision | F1 | AJI | object F1 | PQ |")
print("|---|---:|---:|---:|---:|")
for row in summary.itertuples():
    print(f"| {row.arch} | {row.f1_mean:.3f} | {row.aji_mean:.3f} | {row.object_f1_mean:.3f} | {row.pq_mean:.3f} |")
