"""int8 of an OpenVINO model by NNCF's post-training quantisation (`pip install -e '.[quantise]'`;
only to make an int8 model: running one needs OpenVINO alone).

Three parts stay in float32, where int8 moved the nuclei (results/measured/engines/README.md):
- the net's per-image standardisation (from the input to its division by the standard
  deviation): quantised, its image mean was clipped to the calibration images' range, and a
  brighter set's distances all shrank (TNBC: pixel F1 0.805 -> 0.740);
- the first block's convolutions (full resolution, before the first pooling), which read the
  standardised image: with them in int8, AJI was 0.001 to 0.009 lower on each data set; in
  float32, level with float32's or higher, and the net 0.71 of float32's time (int8 whole: 0.67);
- the last convolution (DIST's linear head), as under bfloat16.
NNCF's full bias correction, not its fast one (closer to float32's distances on TNBC).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CROP = 256  # calibration crops of this side


def calibration_crops(tiles, per_set: int, seed: int = 0) -> list[np.ndarray]:
    """`per_set` random crops (1, CROP, CROP, 3) float32 from each list of tiles in `tiles`."""
    rng = np.random.default_rng(seed)
    crops = []
    for set_tiles in tiles:
        for k in rng.choice(len(set_tiles), per_set, replace=per_set > len(set_tiles)):
            image = set_tiles[k].image
            y = rng.integers(0, image.shape[0] - CROP + 1)
            x = rng.integers(0, image.shape[1] - CROP + 1)
            crops.append(image[None, y : y + CROP, x : x + CROP].astype(np.float32))
    return crops


def quantised(model_xml: str | Path, crops: list[np.ndarray]):
    """The OpenVINO model at `model_xml` with int8 convolutions, calibrated on `crops`."""
    import logging

    import nncf
    import openvino as ov

    nncf.set_log_level(logging.WARNING)  # not a line per node on the standard output
    model = ov.Core().read_model(str(model_xml))
    ops = model.get_ordered_ops()
    standardised = [op for op in ops if op.get_type_name() == "Divide"]
    convolutions = [op for op in ops if op.get_type_name() == "Convolution"]
    pooled = [i for i, op in enumerate(ops) if op.get_type_name() == "MaxPool"]
    if not standardised or not convolutions or not pooled:
        raise ValueError(f"{model_xml}: not a nucseg net (no standardisation, convolution or pooling)")
    full_resolution = [op for op in ops[: pooled[0]] if op.get_type_name() == "Convolution"]  # the first block's
    in_float32 = [op.get_friendly_name() for op in [*full_resolution, convolutions[-1]]]
    standardisation = nncf.Subgraph(
        inputs=[p.get_friendly_name() for p in model.get_parameters()],
        outputs=[standardised[-1].get_friendly_name()],
    )
    return nncf.quantize(
        model,
        nncf.Dataset(crops),
        subset_size=len(crops),
        fast_bias_correction=False,
        ignored_scope=nncf.IgnoredScope(subgraphs=[standardisation], names=in_float32, validate=False),
    )
