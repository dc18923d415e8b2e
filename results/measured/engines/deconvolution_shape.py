"""OpenVINO converts Keras's Conv2DTranspose with its output's shape as a third input, worked out
from the input's at run time; its CPU plugin then keeps the int8 copy's 4 transposed convolutions
in float32 (PERF_COUNT: brgconv_*_f32). Does the same net run faster with them rewritten without
that input (nucseg.inference.openvino_graph.transposed_convolutions_without_output_shape)? The net
alone, each model with the engine's other rewrites as it makes them (float32: the skip
concatenations split; bfloat16: the head in float32; int8: none), on 2 x 992 x 992 random images,
alternated 3 times, 4 batches a figure; then where the transposed convolutions' time goes.
MODE: bf16 or f32 (the model, compiled with that INFERENCE_PRECISION_HINT), or int8 (its int8
copy, float32 hint, as --precision int8 runs it). ONEDNN_MAX_CPU_ISA=AVX2 holds oneDNN to the
kernels an AVX2-only CPU gets (a partial stand-in: see docs/speed.md).

    [ONEDNN_MAX_CPU_ISA=AVX2] .venv/bin/python results/measured/engines/deconvolution_shape.py MODE
"""

import collections
import sys
import time

import nucseg  # noqa: F401  first, as the nucseg command imports it
import numpy as np
import openvino as ov

from nucseg import pretrained
from nucseg.hardware import cpu_summary
from nucseg.inference.engines import int8_model_file, openvino_model_file
from nucseg.inference.openvino_graph import (
    convolutions_without_concatenation,
    float32_linear_head,
    transposed_convolutions_without_output_shape,
)

mode = sys.argv[1]
core = ov.Core()
m = pretrained.model_file()
path = str(int8_model_file(m) if mode == "int8" else openvino_model_file(m))
config = {"INFERENCE_PRECISION_HINT": "bf16" if mode == "bf16" else "f32", "PERF_COUNT": True}
base, plain = core.read_model(path), core.read_model(path)
for model in (base, plain):
    if mode == "f32":
        convolutions_without_concatenation(model)
    if mode == "bf16":
        float32_linear_head(model)
print(mode, "rewritten:", transposed_convolutions_without_output_shape(plain))
x = np.stack([np.random.default_rng(i).uniform(0, 255, (992, 992, 3)) for i in range(2)]).astype(np.float32)
compiled = {"base": core.compile_model(base, "CPU", config), "plain": core.compile_model(plain, "CPU", config)}
requests = {name: c.create_infer_request() for name, c in compiled.items()}
outputs = {name: r.infer({0: x})[0].copy() for name, r in requests.items()}
difference = np.abs(outputs["base"] - outputs["plain"])
print("max diff", float(difference.max()), "mean", float(difference.mean()))
for rep in range(3):
    for name, request in requests.items():
        t = time.perf_counter()
        for _ in range(4):
            request.infer({0: x})
        print(rep, name, round(8 * 992 * 992 / 1e6 / (time.perf_counter() - t), 2), "megapixels/s")
for name, request in requests.items():
    spent = collections.Counter()
    for layer in request.profiling_info:
        if layer.node_type == "Deconvolution" or "Backprop" in layer.node_type:
            spent[layer.exec_type] += layer.real_time.total_seconds() * 1000
    total = sum(layer.real_time.total_seconds() * 1000 for layer in request.profiling_info)
    print(f"{name}: the last batch {total:.1f} ms by PERF_COUNT, transposed convolutions:",
          ", ".join(f"{kernel} {ms:.1f} ms" for kernel, ms in spent.items()))
print(cpu_summary())
