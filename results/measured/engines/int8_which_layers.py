"""Which convolutions' int8 costs the AJI: the standardisation and the head in float32 (the recipe
then), and besides them the full-resolution decoder's or encoder's two convolutions or both;
scored on CoNSeP and TNBC only (calibrated on the other three), forward time against float32 on
batches of two 992 x 992 tiles (5 pairs). Glioma and MoNuSeg were not looked at here.

    .venv/bin/pip install -e '.[quantise]'
    .venv/bin/python results/measured/engines/int8_which_layers.py > results/measured/engines/int8_which_layers_amd.txt
"""

import logging
import tempfile
import time

import nncf
import numpy as np
import openvino as ov

from nucseg import pretrained
from nucseg.data.dataset import load_dataset
from nucseg.inference.engines import OpenVINOPredictor, openvino_model_file, openvino_predictor
from nucseg.inference.predict import usable_model
from nucseg.inference.quantise import calibration_crops
from nucseg.study.evaluate import pooled_scores, predict_tiles

nncf.set_log_level(logging.WARNING)

SETS = ("tnbc", "tcga_glioma", "consep", "monuseg_train")
model = pretrained.resolve(None)
config = usable_model(model).config
xml = openvino_model_file(model)
data = {n: load_dataset(f"../shared/data/{n}") for n in SETS}
m = ov.Core().read_model(str(xml))
ops = m.get_ordered_ops()
convs = [op.get_friendly_name() for op in ops if op.get_type_name() == "Convolution"]
div = [op for op in ops if op.get_type_name() == "Divide"][-1].get_friendly_name()
sub = nncf.Subgraph(inputs=[p.get_friendly_name() for p in m.get_parameters()], outputs=[div])
variants = {
    "int8 (head and standardisation in float32)": [],
    "+ full-res decoder f32": convs[-3:-1],
    "+ full-res encoder f32": convs[0:2],
    "+ both": convs[0:2] + convs[-3:-1],
}
batch = np.random.default_rng(1).integers(0, 256, (2, 992, 992, 3)).astype(np.float32)
f32 = openvino_predictor(model)
folder = tempfile.mkdtemp()
for held in ("consep", "tnbc"):
    crops = calibration_crops([data[n] for n in SETS if n != held], per_set=12)
    s = pooled_scores(predict_tiles(f32, data[held], config))
    print(f"{held} float32: F1 {s['f1']:.3f} AJI {s['aji']:.3f} PQ {s['pq']:.3f}", flush=True)
    for name, keep in variants.items():
        q = nncf.quantize(
            ov.Core().read_model(str(xml)),
            nncf.Dataset(crops),
            subset_size=len(crops),
            fast_bias_correction=False,
            ignored_scope=nncf.IgnoredScope(subgraphs=[sub], names=[convs[-1], *keep], validate=False),
        )
        ov.save_model(q, f"{folder}/q.xml", compress_to_fp16=False)
        p = OpenVINOPredictor(f"{folder}/q.xml")
        s = pooled_scores(predict_tiles(p, data[held], config))
        ratio = ""
        if held == "consep":
            p(batch)
            f32(batch)
            r = []
            for _ in range(5):
                t = time.perf_counter()
                f32(batch)
                a = time.perf_counter() - t
                t = time.perf_counter()
                p(batch)
                r.append((time.perf_counter() - t) / a)
            ratio = f", forward time / float32's {np.median(r):.3f}"
        print(f"  {name}: F1 {s['f1']:.3f} AJI {s['aji']:.3f} PQ {s['pq']:.3f}{ratio}", flush=True)
