"""OpenVINO runs each of the default model's 4 skip concatenations (channels last) in its generic
Concat kernel ("ref": 12 of about 103 ms a batch for the full-resolution one in bfloat16, PERF_COUNT).
Does the same arithmetic without them run faster: each Concat -> Convolution rewritten as two
convolutions on the inputs, their kernels the halves of the original along the input channels,
added? The net alone on 2 x 992 x 992 random images, alternated 3 times, 4 batches a figure.
HINT: OpenVINO's INFERENCE_PRECISION_HINT (bf16 by default, or f32).

    .venv/bin/python results/measured/engines/concat_split.py [HINT] >> results/measured/engines/concat_split_xeon.txt
"""

import sys
import time

import nucseg  # noqa: F401  first, as the nucseg command imports it
import numpy as np
import openvino as ov
import openvino.opset13 as ops

from nucseg import pretrained
from nucseg.hardware import cpu_summary
from nucseg.inference.engines import openvino_model_file

m = pretrained.model_file()
core = ov.Core()


def split_concat_convs(model):
    n = 0
    for op in model.get_ordered_ops():
        if op.get_type_name() != "Concat" or op.get_input_size() != 2:
            continue
        consumers = list(op.output(0).get_target_inputs())
        if len(consumers) != 1:
            continue
        conv = consumers[0].get_node()
        if conv.get_type_name() != "Convolution" or op.get_attributes()["axis"] not in (1, -3):
            continue
        w_node = conv.input_value(1).get_node()
        if w_node.get_type_name() != "Constant":
            print("left: weights through", w_node.get_type_name())
            continue
        w = w_node.get_data()
        a, b = op.input_value(0), op.input_value(1)
        ca = a.get_partial_shape()[1].get_length()
        attrs = conv.get_attributes()
        kw = dict(
            strides=attrs["strides"],
            pads_begin=attrs["pads_begin"],
            pads_end=attrs["pads_end"],
            dilations=attrs["dilations"],
            auto_pad=attrs["auto_pad"],
        )
        conv_a = ops.convolution(a, ops.constant(np.ascontiguousarray(w[:, :ca])), **kw)
        conv_b = ops.convolution(b, ops.constant(np.ascontiguousarray(w[:, ca:])), **kw)
        total = ops.add(conv_a, conv_b)
        for target in list(conv.output(0).get_target_inputs()):
            target.replace_source_output(total.output(0))
        n += 1
    model.validate_nodes_and_infer_types()
    return n


x = np.stack([np.random.default_rng(i).uniform(0, 255, (992, 992, 3)) for i in range(2)]).astype(np.float32)
path = str(openvino_model_file(m))
base = core.read_model(path)
split = core.read_model(path)
print("concatenations rewritten:", split_concat_convs(split))
hint = {"INFERENCE_PRECISION_HINT": sys.argv[1] if len(sys.argv) > 1 else "bf16"}
print(hint)
cb, cs = core.compile_model(base, "CPU", hint), core.compile_model(split, "CPU", hint)
ob, os_ = cb(x)[0], cs(x)[0]
print("max diff", float(np.abs(ob - os_).max()), "mean", float(np.abs(ob - os_).mean()))
for rep in range(3):
    for name, c in [("base", cb), ("split", cs)]:
        t = time.perf_counter()
        for _ in range(4):
            c(x)
        print(rep, name, round(8 * 992 * 992 / 1e6 / (time.perf_counter() - t), 2), "megapixels/s")
print(cpu_summary())
