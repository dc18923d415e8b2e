"""OpenVINO runs each of the default model's 4 skip concatenations (channels last) in its generic
Concat kernel ("ref": 12 of about 103 ms a batch for the full-resolution one in bfloat16, PERF_COUNT).
Does the same arithmetic without them run faster: each Concat -> Convolution rewritten as two
convolutions on the inputs, their kernels (or the int8 copy's quantised kernels and scales) the
halves of the original along the input channels, added? The net alone on 2 x 992 x 992 random
images, alternated 3 times, 4 batches a figure. MODE: bf16 or f32 (the model, compiled with that
INFERENCE_PRECISION_HINT), or int8 (its int8 copy, float32 hint, as --precision int8 runs it).
The rewrite is the engine's own (nucseg.inference.openvino_graph), which it makes in float32 only.

    .venv/bin/python results/measured/engines/concat_split.py MODE >> results/measured/engines/concat_split_xeon.txt
"""

import sys
import time

import nucseg  # noqa: F401  first, as the nucseg command imports it
import numpy as np
import openvino as ov

from nucseg import pretrained
from nucseg.hardware import cpu_summary
from nucseg.inference.engines import int8_model_file, openvino_model_file
from nucseg.inference.openvino_graph import convolutions_without_concatenation


core = ov.Core()
m = pretrained.model_file()
path = str(int8_model_file(m) if sys.argv[1] == "int8" else openvino_model_file(m))
hint = {"INFERENCE_PRECISION_HINT": "f32" if sys.argv[1] != "bf16" else "bf16"}
base, split = core.read_model(path), core.read_model(path)
print(sys.argv[1], "rewritten:", convolutions_without_concatenation(split))
x = np.stack([np.random.default_rng(i).uniform(0, 255, (992, 992, 3)) for i in range(2)]).astype(np.float32)
cb, cs = core.compile_model(base, "CPU", hint), core.compile_model(split, "CPU", hint)
ob, o2 = cb(x)[0], cs(x)[0]
print("max diff", float(np.abs(ob - o2).max()), "mean", float(np.abs(ob - o2).mean()))
for rep in range(3):
    for name, c in [("base", cb), ("split", cs)]:
        t = time.perf_counter()
        for _ in range(4):
            c(x)
        print(rep, name, round(8 * 992 * 992 / 1e6 / (time.perf_counter() - t), 2), "megapixels/s")
print(cpu_summary())
