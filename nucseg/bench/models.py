"""Per-net benchmark: parameters, multiply-adds per megapixel, training steps/s and samples/s on
synthetic batches, and the time to predict one 512x512 tile, on whatever backend Keras runs
(KERAS_BACKEND)."""

from __future__ import annotations

import dataclasses
import time

import keras
import numpy as np

from nucseg.config import Config
from nucseg.models import build_model
from nucseg.training.optimizer import compile_model


@dataclasses.dataclass(frozen=True)
class ModelBenchmark:
    arch: str
    backend: str
    parameters: int
    gmac_per_megapixel: float
    seconds_per_step: float
    samples_per_second: float
    predict_512_seconds: float


def synthetic_batch(config: Config, rng: np.random.Generator):
    images = rng.uniform(0, 255, (config.batch_size, config.crop, config.crop, 3)).astype(np.float32)
    target = (rng.uniform(size=(config.batch_size, config.crop, config.crop)) < 0.25).astype(np.float32)
    return images, np.stack([target, np.ones_like(target)], axis=-1)


def gmac_per_megapixel(model: keras.Model, side: int = 512) -> float:
    """Billions of multiply-adds of the convolutions per megapixel of input, counted layer by layer
    on a side x side input (the other layers cost little beside them)."""
    fixed = keras.models.clone_model(model, input_tensors=keras.Input((side, side, 3)))
    macs = 0
    for layer in fixed.layers:
        if not isinstance(
            layer,
            (
                keras.layers.Conv2D,
                keras.layers.Conv2DTranspose,
                keras.layers.SeparableConv2D,
                keras.layers.DepthwiseConv2D,
            ),
        ):
            continue
        kh, kw = layer.kernel_size
        c_in = layer.input.shape[-1]
        h_out, w_out, c_out = layer.output.shape[1:]
        if isinstance(layer, keras.layers.SeparableConv2D):
            macs += h_out * w_out * (kh * kw * c_in + c_in * c_out)
        elif isinstance(layer, keras.layers.Conv2DTranspose):
            h_in, w_in = layer.input.shape[1:3]
            macs += h_in * w_in * kh * kw * c_in * c_out
        else:
            macs += h_out * w_out * kh * kw * c_in * c_out
    return macs / 1e9 / (side * side / 1e6)


def bench_model(config: Config, steps: int) -> ModelBenchmark:
    model = compile_model(build_model(config), config, total_steps=1000)
    images, y = synthetic_batch(config, np.random.default_rng(0))
    model.train_on_batch(images, y)  # compile
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(images, y)
    per_step = (time.perf_counter() - start) / steps
    tile = np.zeros((1, 512, 512, 3), np.float32)
    model.predict_on_batch(tile)
    start = time.perf_counter()
    model.predict_on_batch(tile)
    return ModelBenchmark(
        config.arch,
        keras.backend.backend(),
        model.count_params(),
        gmac_per_megapixel(model),
        per_step,
        config.batch_size / per_step,
        time.perf_counter() - start,
    )


def bench_models(config: Config, archs, steps: int) -> list[ModelBenchmark]:
    return [bench_model(config.replace(arch=arch), steps) for arch in archs]


def format_model_benchmarks(results: list[ModelBenchmark]) -> str:
    lines = [
        "| net | backend | parameters | GMAC/megapixel | s/step | samples/s | predict 512x512 (s) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.arch} | {r.backend} | {r.parameters:,} | {r.gmac_per_megapixel:.1f} | {r.seconds_per_step:.3f} | "
        f"{r.samples_per_second:.1f} | {r.predict_512_seconds:.3f} |"
        for r in results
    ]
    return "\n".join(lines)
