"""Where OpenVINO's time goes in the default model: its CPU plugin's own per-layer timings
(PERF_COUNT), summed by layer type and kernel, for one batch of two 992 x 992 random images after
two warm-up batches. MODEL: float32 (the model, float32 hint), bfloat16 (bf16 hint) or int8 (its
int8 copy, float32 hint, as --precision int8 runs it). ONEDNN_MAX_CPU_ISA=AVX2 holds OpenVINO's
oneDNN to the kernels an AVX2-only CPU gets.

    [ONEDNN_MAX_CPU_ISA=AVX2] .venv/bin/python results/measured/engines/layer_times.py MODEL
"""

import collections
import sys

import nucseg  # noqa: F401  first, as the nucseg command imports it
import numpy as np
import openvino as ov

from nucseg import pretrained
from nucseg.hardware import cpu_summary
from nucseg.inference.engines import int8_model_file, openvino_model_file

kind = sys.argv[1] if len(sys.argv) > 1 else "float32"
model = pretrained.model_file()
path = int8_model_file(model) if kind == "int8" else openvino_model_file(model)
hint = "bf16" if kind == "bfloat16" else "f32"
compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": hint, "PERF_COUNT": True})
request = compiled.create_infer_request()
images = np.stack([np.random.default_rng(i).uniform(0, 255, (992, 992, 3)) for i in range(2)]).astype(np.float32)
for _ in range(3):
    request.infer({0: images})
milliseconds, layers = collections.Counter(), collections.Counter()
for layer in request.profiling_info:
    key = f"{layer.node_type} ({layer.exec_type})"
    milliseconds[key] += layer.real_time.total_seconds() * 1000
    layers[key] += 1
print(f"{kind}: {sum(milliseconds.values()):.1f} ms a batch of 2 x 992 x 992, by layer type (kernel):")
for key, spent in milliseconds.most_common(14):
    print(f"  {key}: {layers[key]} layers, {spent:.1f} ms")
print(cpu_summary())
