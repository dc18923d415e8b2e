"""Prediction on images of any size, with a trained Keras model or an exported SavedModel.

A net's nucleus map is its nucleus probability (two-channel output: background, nucleus) or,
for DIST, its distance map (one channel); `nucleus_channel` tells them apart by the output's
channels, so a model needs nothing beside it to be used.

Images up to `tile` pixels a side are padded (mirror) to a multiple of 32 and predicted in
one go. Larger ones go through the large-image engine (`large.py`, as slides do): overlapping
tiles, each pixel taken from the tile whose core holds it, so the net's memory stays bounded by
the tile size and no tile edge is used.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from nucseg.config import PRECISIONS, SIZE_MULTIPLE
from nucseg.errors import InputError, ModelLoadError  # noqa: F401  (ModelLoadError: re-exported)
from nucseg.io import write_png_atomic
from nucseg.inference.large import is_blank, nucleus_channel, stitched_map
from nucseg.inference.regions import ArrayRegion
from nucseg.inference.tiles import tile_starts  # noqa: F401  (re-exported)

__all__ = ["ModelLoadError", "is_blank", "nucleus_channel", "tile_starts"]  # re-exported


def load_predictor(path: str | Path, precision: str = "float32", engine: str = "tensorflow"):
    """A function (1, H, W, 3) float32 0..255 -> (1, H, W, C) outputs (C = 2 probabilities, or
    C = 1 distance), from a `.keras` file or a SavedModel folder (`model.export`).

    engine "openvino": compiled by OpenVINO (nucseg.inference.engines), from either export.
    precision "bfloat16": with TensorFlow (a `.keras` file only) the net computes in bfloat16 but
    for its output layer; with OpenVINO, its CPU plugin's bfloat16 but for a last 1x1 convolution
    (see nucseg.inference.engines for where either is faster)."""
    path = Path(path)
    is_keras = path.is_file() and path.suffix == ".keras"
    is_saved_model = path.is_dir() and (path / "saved_model.pb").is_file()
    if engine == "openvino":
        from nucseg.inference.engines import openvino_predictor

        if not path.exists():
            raise ModelLoadError(f"{path}: no such file or folder. Pass a model.keras file or a SavedModel folder.")
        if is_keras or is_saved_model:
            return openvino_predictor(path, precision)
    if not (is_keras or is_saved_model):
        raise ModelLoadError(
            f"{path}: not a .keras file nor a SavedModel folder (with saved_model.pb). "
            "Pass <run>/<arch>/<patient>/model.keras or .../saved_model."
        )
    if precision not in PRECISIONS:
        raise ModelLoadError(f"--precision {precision}: choose one of {', '.join(PRECISIONS)}")
    if precision != "float32" and not is_keras:
        raise ModelLoadError(
            f"{path}: --precision {precision} needs the model's .keras file (a SavedModel's "
            "graph is fixed in float32); pass <run>/<arch>/<patient>/model.keras"
        )
    if is_saved_model:
        import tensorflow as tf

        from nucseg.models.loading import load_saved_model

        loaded = load_saved_model(path)  # keep it: `serve` alone lets its variables go
        return lambda batch: np.asarray(loaded.serve(tf.constant(batch, tf.float32)))
    from nucseg.models import in_mixed_precision
    from nucseg.models.loading import load_keras_model

    model = load_keras_model(path)
    model = in_mixed_precision(model, "mixed_bfloat16") if precision == "bfloat16" else model
    # Keras's compiled predict step: 0.69 s a 1024 x 1024 tile for the cpu-profile U-Net where the
    # eager call takes 0.79 s; with XLA (jit_compile=True) it took 0.82 s on the CPU, so no XLA.
    model.compile(jit_compile=False)
    return model_predictor(model)


def model_predictor(model):
    """The predictor of an in-memory Keras model (inference mode), `load_predictor`'s for a
    `.keras` file too: Keras's predict step, traced once, not the model called eagerly. The same outputs to the
    bit; a 512 x 512 TNBC tile of the `cpu` DIST in 0.19 against 0.32 s on a 2-core EPYC (a fold's
    choice of post-processing and scoring; docs/speed.md, twenty-fourth round)."""
    return lambda batch: np.asarray(model.predict_on_batch(batch))


def _pad_to_multiple(image: np.ndarray, multiple: int) -> np.ndarray:
    height, width = image.shape[:2]
    pad = ((0, -height % multiple), (0, -width % multiple), (0, 0))
    return np.pad(image, pad, mode="reflect" if min(height, width) > 1 else "edge")


def check_tiling(tile: int, overlap: int) -> None:
    if tile < SIZE_MULTIPLE or tile % SIZE_MULTIPLE:
        raise InputError(f"--tile {tile}: the tile side must be a positive multiple of {SIZE_MULTIPLE} (e.g. 512).")
    if not 0 <= overlap < tile // 2:
        raise InputError(
            f"--overlap {overlap}: the overlap must be at least 0 and less than half the tile "
            f"({tile // 2}); 64 is usual."
        )


def output_names(paths) -> list[str]:
    """One output name per input image, unique per input path (its suffix included): the file
    name without extension; where two inputs share that, their path below the common folder with
    '/' as '__' (a/x.png -> a__x); where that is shared too, with the extension (same.png ->
    same_png, same.jpg -> same_jpg); a name that would still collide gets a short hash of its path."""
    import hashlib

    paths = [Path(p) for p in paths]
    resolved = [p.resolve() for p in paths]
    if len(set(resolved)) < len(resolved):
        twice = sorted({str(p) for p, r in zip(paths, resolved) if resolved.count(r) > 1})
        raise InputError(f"{', '.join(twice)}: the same image is given twice; give each image once.")
    common = Path(os.path.commonpath([r.parent for r in resolved]))

    def by_path(path: Path) -> str:
        relative = path.relative_to(common)
        return "__".join([*relative.parent.parts, path.stem])

    rules = [
        lambda path: path.stem,
        by_path,
        lambda path: f"{by_path(path)}_{path.suffix.lstrip('.').lower()}",
        lambda path: f"{by_path(path)}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}",
    ]
    names = [rules[0](path) for path in resolved]
    for rule in rules[1:]:
        clashing = {n for n in names if names.count(n) > 1}
        if not clashing:
            break
        names = [rule(path) if name in clashing else name for name, path in zip(names, resolved)]
    return names


def with_tta(predictor):
    """The predictor averaged over the 8 flips and rotations of its input (the dihedral group of
    the square), each prediction turned back before it is added."""

    def predict(batch):
        total = 0.0
        for quarter_turns in range(4):
            for flip in (False, True):
                view = np.rot90(batch, quarter_turns, axes=(1, 2))
                view = view[:, :, ::-1] if flip else view
                output = np.asarray(predictor(np.ascontiguousarray(view)))
                output = output[:, :, ::-1] if flip else output
                total = total + np.rot90(output, -quarter_turns, axes=(1, 2))
        return total / 8.0

    return predict


def output_kind_of(predictor) -> str:
    """ "probability" or "distance": what a predictor outputs, asked of the predictor itself."""
    channels = np.asarray(predictor(np.zeros((1, 32, 32, 3), np.float32))).shape[-1]
    return "distance" if channels == 1 else "probability"


class UsableModel(NamedTuple):
    predictor: object  # (N, H, W, 3) float32 0..255 -> (N, H, W, C), see nucseg.inference.engines
    config: object  # the nucseg.config.Config its maps are post-processed with
    runs_as: str  # the engine and precision it runs in, on which CPU (engines.describe)
    has_saved_config: bool  # False: no config.json beside it, the defaults of its output kind


def usable_model(model_path: str | Path, overrides: dict | None = None, precision="float32", engine="tensorflow"):
    """A model ready to apply, as predict, evaluate, slide and a Ray slide task load it: its
    predictor on the engine and precision chosen for this machine (engines.choose_engine,
    choose_precision), and its Config (model_config), then `overrides` (None values ignored)."""
    from nucseg.inference.engines import choose_engine, choose_precision, describe, has_int8_copy
    from nucseg.inference.saved import model_config

    engine = choose_engine(engine)
    precision = choose_precision(precision, engine, has_int8_copy(model_path))
    predictor = load_predictor(model_path, precision, engine)
    saved, config = model_config(model_path, output_kind_of(predictor))
    changes = {key: value for key, value in (overrides or {}).items() if value is not None}
    config = config.replace(**changes) if changes else config
    return UsableModel(predictor, config, describe(engine, precision), saved is not None)


def predict_nucleus_map(
    predictor, image: np.ndarray, tile: int = 512, overlap: int = 64, tta: bool = False
) -> np.ndarray:
    """Nucleus map (H, W) float32 of an RGB image (H, W, 3), values 0..255: the nucleus
    probability, or DIST's distance in pixels."""
    check_tiling(tile, overlap)
    if tta:
        predictor = with_tta(predictor)
    height, width = image.shape[:2]
    if height <= tile and width <= tile:
        if is_blank(image):
            return np.zeros((height, width), np.float32)
        padded = _pad_to_multiple(image.astype(np.float32), SIZE_MULTIPLE)
        return nucleus_channel(np.asarray(predictor(padded[None])))[0, :height, :width]
    return stitched_map(ArrayRegion(image), tile, overlap, predictor)


def write_prediction(
    nucleus_map: np.ndarray, mask: np.ndarray, out_dir: Path, stem: str, output_kind: str = "probability"
) -> tuple[Path, Path]:
    """`<stem>_prob.png` (nucleus probability x 255; DIST: `<stem>_dist.png`, the distance in
    pixels, clipped to 255: the output kind's map image) and `<stem>_mask.png` (the foreground, 0/255)."""
    from nucseg.postprocess.kinds import kind_named

    kind = kind_named(output_kind)
    map_png = write_png_atomic(out_dir / f"{stem}_{kind.map_suffix}.png", kind.map_image(nucleus_map))
    mask_png = write_png_atomic(out_dir / f"{stem}_mask.png", (np.asarray(mask) * 255).astype(np.uint8))
    return map_png, mask_png
