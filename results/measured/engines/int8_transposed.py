"""The default model's shipped int8 copy with its transposed convolutions as before (run in float32
by OpenVINO) and rewritten (run in int8: nucseg.inference.openvino_graph.
transposed_convolutions_without_output_shape, as the engine now runs the copy), against float32,
on the four data sets: F1 / AJI / object F1 / PQ, pooled over each set's tiles.

    .venv/bin/python results/measured/engines/int8_transposed.py > results/measured/engines/int8_transposed_xeon.txt
"""

import nucseg  # noqa: F401  first, as the nucseg command imports it
import openvino as ov

from nucseg import pretrained
from nucseg.data.dataset import load_dataset
from nucseg.hardware import cpu_summary
from nucseg.inference.engines import OpenVINOPredictor, int8_model_file, openvino_predictor
from nucseg.inference.predict import usable_model
from nucseg.study.evaluate import pooled_scores, predict_tiles

SETS = ("tnbc", "tcga_glioma", "consep", "monuseg_train")
model = pretrained.resolve(None)
config = usable_model(model).config
predictors = {
    "float32": openvino_predictor(model, "float32"),
    "int8 as before": OpenVINOPredictor(int8_model_file(model), "float32", split_concatenations=False),
    "int8 rewritten": OpenVINOPredictor(int8_model_file(model), "float32", int8_copy=True),
}
print(f"default model {model}, OpenVINO {ov.__version__}; {cpu_summary()}")
print("transposed convolutions rewritten:", predictors["int8 rewritten"].transposed_rewritten)
print("set: F1 / AJI / object F1 / PQ for " + ", ".join(predictors))
for name in SETS:
    tiles = load_dataset(f"../shared/data/{name}")
    rows = []
    for predictor in predictors.values():
        s = pooled_scores(predict_tiles(predictor, tiles, config))
        rows.append(" / ".join(f"{s[k]:.3f}" for k in ("f1", "aji", "object_f1", "pq")))
    print(f"  {name:14} " + " | ".join(rows), flush=True)
