"""Rewrites of an OpenVINO model before it is compiled for the CPU: each keeps the net's
arithmetic and changes where OpenVINO's CPU plugin would otherwise run it slower or rounder.
Written here because the plugin has no option for either: they are graph changes."""

from __future__ import annotations

import numpy as np


def float32_linear_head(model) -> bool:
    """Rewrites the model's last 1x1 convolution (DIST's linear head) in place as a product and a
    sum over the channels, which OpenVINO's CPU plugin keeps in float32 under a bfloat16 hint (it
    leaves the ops after a net's last convolution in the model's precision "to maintain accuracy":
    its Graph::EnforceInferencePrecision). True where it did; False, the model untouched, where the
    model does not end in a 1x1 convolution with one output (a net with a softmax).
    Written as (features x weights) summed over the channels, in (N, C, H, W): the net within about
    a tenth of its speed all in bfloat16; a 5-D product serving several outputs ran 40 % slower.

    Why: DIST's distances rounded to bfloat16 (steps of 1/32 to 1/16 of a pixel at the distances
    of nuclei) become plateaus that merge or split the dynamic watershed's maxima: TNBC's AJI
    fell from 0.619 to 0.603 with only the output rounded, the rest of the net in float32. The
    head is 16 multiply-adds a pixel: in float32 on the bfloat16 net's features, it gives
    float32's nuclei back (results/measured/engines/README.md)."""
    import openvino.opset13 as ops

    tail = model.get_results()[0].input(0).get_source_output().get_node()
    if tail.get_type_name() not in ("Reshape", "Transpose"):
        return False
    add = tail.input(0).get_source_output().get_node()
    if add.get_type_name() != "Add":
        return False
    conv, bias = (add.input(k).get_source_output().get_node() for k in (0, 1))
    if conv.get_type_name() != "Convolution" or bias.get_type_name() != "Constant":
        return False
    weights = conv.input(1).get_source_output().get_node()
    if weights.get_type_name() != "Constant" or tuple(weights.get_output_shape(0))[2:] != (1, 1):
        return False
    if list(conv.get_attributes()["strides"]) != [1, 1] or any(conv.get_attributes()["pads_begin"]):
        return False
    if weights.get_output_shape(0)[0] != 1:
        return False  # DIST's head has one output; nucseg has no other net with a linear head
    kernel = weights.get_data().astype(np.float32).reshape(1, -1, 1, 1)
    product = ops.multiply(conv.input(0).get_source_output(), ops.constant(kernel))  # (N, features, H, W)
    mixed = ops.reduce_sum(product, ops.constant(np.array([1], np.int64)), keep_dims=True)
    add.input(0).replace_source_output(mixed.output(0))
    model.validate_nodes_and_infer_types()
    return True


def convolutions_without_concatenation(model) -> int:
    """Rewrites in place each concatenation of two inputs along the channels whose one consumer is
    a convolution (a U-Net's or DIST's skip connection: the encoder's features beside the
    upsampled ones, then the block's first 3x3 convolution) as two convolutions, one on each input
    with its part of the kernel's input channels, added: the same sums of products, without the
    concatenated tensor. Returns how many it rewrote (0 for nets without them: PangNet, FCN-8s,
    DeconvNet).

    Why: OpenVINO's CPU plugin (2026.4) runs these concatenations, channels last, in its generic
    Concat kernel ("ref" in its PERF_COUNT): for the default model, 18 ms of a float32 batch of 2 x
    992 x 992 for the full-resolution one alone. Rewritten, the net ran 1.08-1.12 times as fast
    in float32 on an AMX Xeon and 1.02-1.09 with oneDNN held to its AVX2 kernels, outputs equal to
    1e-6; in bfloat16 it was level, and the int8 copy ran 0.93-0.97 as fast, so the engine does
    it in float32 only (results/measured/engines/concat_split_xeon.txt, docs/speed.md)."""
    import openvino.opset13 as ops

    rewritten = 0
    for concat in model.get_ordered_ops():
        if concat.get_type_name() != "Concat" or concat.get_input_size() != 2:
            continue
        if concat.get_attributes()["axis"] not in (1, -3):  # (N, C, H, W): the channels
            continue
        consumers = list(concat.output(0).get_target_inputs())
        if len(consumers) != 1 or consumers[0].get_node().get_type_name() != "Convolution":
            continue
        conv = consumers[0].get_node()
        first, second = concat.input_value(0), concat.input_value(1)
        if not first.get_partial_shape()[1].is_static:
            continue
        split = first.get_partial_shape()[1].get_length()
        kernel = conv.input_value(1).get_node()
        halves = _kernel_part(kernel, slice(None, split)), _kernel_part(kernel, slice(split, None))
        if halves[0] is None:
            continue
        attributes = conv.get_attributes()
        settings = {key: attributes[key] for key in ("strides", "pads_begin", "pads_end", "dilations", "auto_pad")}
        added = ops.add(ops.convolution(first, halves[0], **settings), ops.convolution(second, halves[1], **settings))
        for target in list(conv.output(0).get_target_inputs()):
            target.replace_source_output(added.output(0))
        rewritten += 1
    model.validate_nodes_and_infer_types()
    return rewritten


def _kernel_part(node, channels: slice):
    """The convolution kernel `node` cut to its input channels `channels` (axis 1), in the form it
    has: a constant; a constant converted (weights saved compressed, or quantised); or either of
    those times a scale per output channel (an int8 copy's kernels). None for any other kernel."""
    import openvino.opset13 as ops

    kind = node.get_type_name()
    if kind == "Constant":
        return ops.constant(np.ascontiguousarray(node.get_data()[:, channels]))
    if kind == "Convert":
        part = _kernel_part(node.input_value(0).get_node(), channels)
        return None if part is None else ops.convert(part, node.get_output_element_type(0))
    if kind == "Multiply":
        scale = node.input_value(1).get_node()
        if scale.get_type_name() != "Constant" or scale.get_output_partial_shape(0)[1].get_length() != 1:
            return None  # a scale that varies along the input channels would need cutting too
        part = _kernel_part(node.input_value(0).get_node(), channels)
        return None if part is None else ops.multiply(part, scale)
    return None


def transposed_convolutions_without_output_shape(model) -> int:
    """Rewrites in place each transposed convolution given its output's shape as an input (as
    OpenVINO converts Keras's Conv2DTranspose: the shape worked out from the input's at run time)
    whose kernel is as wide as its stride (a U-Net's or DIST's upsampling: 2 x 2, stride 2) as one
    without it: with no padding, its output is then the input's sides times the stride, which is
    what the shape input gives (checked on the model set to one static size before anything is
    rewritten). Returns how many it rewrote (0 for nets without such layers: PangNet, DeconvNet;
    FCN-8s's kernels are wider than their strides and are left as they are).

    Why: OpenVINO's CPU plugin (2026.4) runs a transposed convolution whose output shape is an
    input outside its int8 kernels: the int8 copy's 4 ran in float32, 16 of 126 ms a batch of 2 x
    992 x 992 on an AMX Xeon. Rewritten, they run in its int8 kernels and the int8 copy ran 1.22-1.25
    times as fast there (1.09-1.13 with oneDNN held to its AVX2 kernels), its nuclei as before on
    the four data sets; in float32 and bfloat16 the net ran level (0.96-1.10), so the engine
    rewrites the int8 copy only, on CPUs with AVX512: without it, the plugin keeps the layers in
    float32 at a slide's sizes whatever the graph (results/measured/engines/deconvolution_shape_xeon.txt,
    docs/speed.md)."""
    import openvino.opset13 as ops

    candidates = [op for op in model.get_ordered_ops() if _stride_wide_with_shape_input(op)]
    if not candidates or not _shape_input_is_stride_times_input(model, {op.get_friendly_name() for op in candidates}):
        return 0
    for op in candidates:
        attributes = op.get_attributes()
        zero = [0] * len(attributes["strides"])
        plain = ops.convolution_backprop_data(
            op.input_value(0),
            op.input_value(1),
            strides=attributes["strides"],
            pads_begin=zero,
            pads_end=zero,
            dilations=attributes["dilations"],
            auto_pad="explicit",
            output_padding=zero,
        )
        for target in list(op.output(0).get_target_inputs()):
            target.replace_source_output(plain.output(0))
    model.validate_nodes_and_infer_types()
    return len(candidates)


def _stride_wide_with_shape_input(op) -> bool:
    if op.get_type_name() != "ConvolutionBackpropData" or op.get_input_size() != 3:
        return False
    attributes = op.get_attributes()
    kernel = op.input_value(1).get_partial_shape()
    if not kernel.is_static:
        return False
    sides = [dim.get_length() for dim in kernel][2:]
    return (
        sides == list(attributes["strides"])
        and set(attributes["dilations"]) == {1}
        and not any(attributes["output_padding"])
    )


def _shape_input_is_stride_times_input(model, names: set, side: int = 96) -> bool:
    """Whether each transposed convolution named in `names` gives an output of its input's sides
    times its stride, on a copy of the model set to one static size: batch 1, and its dynamic
    sides `side`, `side` + 32, ... (unequal, so that a shape input with height and width swapped
    is caught). False where the model cannot be set to it."""
    copy = model.clone()
    static, extra = [1], 0  # batch 1
    for dim in list(copy.inputs[0].get_partial_shape())[1:]:
        static.append(side + extra if dim.is_dynamic else dim.get_length())
        extra += 32 if dim.is_dynamic else 0
    try:
        copy.reshape({copy.inputs[0]: static})
    except Exception:  # OpenVINO's own errors: a shape the net does not take
        return False
    for op in copy.get_ordered_ops():
        if op.get_friendly_name() not in names:
            continue
        given, made = op.get_input_partial_shape(0), op.get_output_partial_shape(0)
        if given.is_dynamic or made.is_dynamic:
            return False
        strides = op.get_attributes()["strides"]
        if [d.get_length() for d in made][2:] != [d.get_length() * s for d, s in zip(list(given)[2:], strides)]:
            return False
    return True
