"""OpenVINO runs each of the default model's 4 skip concatenations (channels last) in its generic
Concat kernel ("ref": 12 of about 103 ms a batch for the full-resolution one in bfloat16, PERF_COUNT).
Does the same arithmetic without them run faster: each Concat -> Convolution rewritten as two
convolutions on the inputs, their kernels (or the int8 copy's quantised kernels and scales) the
halves of the original along the input channels, added? The net alone on 2 x 992 x 992 random
images, alternated 3 times, 4 batches a figure. MODE: bf16 or f32 (the model, compiled with that
INFERENCE_PRECISION_HINT), or int8 (its int8 copy, float32 hint, as --precision int8 runs it).

    .venv/bin/python results/measured/engines/concat_split.py MODE >> results/measured/engines/concat_split_xeon.txt
"""

import sys
import time

import nucseg  # noqa: F401  first, as the nucseg command imports it
import numpy as np
import openvino as ov
import openvino.opset13 as ops

from nucseg import pretrained
from nucseg.hardware import cpu_summary
from nucseg.inference.engines import int8_model_file, openvino_model_file


def sliced(node, lo, hi):
    """The weights subgraph `node` cut to input channels lo:hi (axis 1), or None."""
    kind = node.get_type_name()
    if kind == "Constant":
        return ops.constant(np.ascontiguousarray(node.get_data()[:, lo:hi]))
    if kind == "Convert":
        inner = sliced(node.input_value(0).get_node(), lo, hi)
        return None if inner is None else ops.convert(inner, node.get_output_element_type(0))
    if kind == "Multiply":
        data, scale = node.input_value(0).get_node(), node.input_value(1).get_node()
        if scale.get_type_name() != "Constant" or scale.get_output_partial_shape(0)[1].get_length() != 1:
            return None
        inner = sliced(data, lo, hi)
        return None if inner is None else ops.multiply(inner, scale)
    return None


def split_concat_convs(model):
    n = 0
    for op in model.get_ordered_ops():
        if op.get_type_name() != "Concat" or op.get_input_size() != 2 or op.get_attributes()["axis"] not in (1, -3):
            continue
        consumers = list(op.output(0).get_target_inputs())
        if len(consumers) != 1 or consumers[0].get_node().get_type_name() != "Convolution":
            continue
        conv = consumers[0].get_node()
        a, b = op.input_value(0), op.input_value(1)
        ca = a.get_partial_shape()[1].get_length()
        cw = conv.input_value(1).get_partial_shape()[1].get_length()
        wa, wb = sliced(conv.input_value(1).get_node(), 0, ca), sliced(conv.input_value(1).get_node(), ca, cw)
        if wa is None:
            print("left: weights through", conv.input_value(1).get_node().get_type_name())
            continue
        attrs = conv.get_attributes()
        kw = dict(
            strides=attrs["strides"],
            pads_begin=attrs["pads_begin"],
            pads_end=attrs["pads_end"],
            dilations=attrs["dilations"],
            auto_pad=attrs["auto_pad"],
        )
        total = ops.add(ops.convolution(a, wa, **kw), ops.convolution(b, wb, **kw))
        for target in list(conv.output(0).get_target_inputs()):
            target.replace_source_output(total.output(0))
        n += 1
    model.validate_nodes_and_infer_types()
    return n


core = ov.Core()
m = pretrained.model_file()
path = str(int8_model_file(m) if sys.argv[1] == "int8" else openvino_model_file(m))
hint = {"INFERENCE_PRECISION_HINT": "f32" if sys.argv[1] != "bf16" else "bf16"}
base, split = core.read_model(path), core.read_model(path)
print(sys.argv[1], "rewritten:", split_concat_convs(split))
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
