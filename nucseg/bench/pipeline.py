"""Benchmarks that print numbers: the augmented input pipeline against two references.

`nucseg bench pipeline` measures, in one run on the same tiles and crop size:
- nucseg's tf.data pipeline, all augmentations on;
- elasticdeform.deform_random_grid through tf.numpy_function (plus crop, flips and rotation);
- keras.layers.RandomElasticTransform in tf.data.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import tensorflow as tf

from nucseg.data.pipeline import TileStack, prepare_tiles, training_dataset
from nucseg.hardware import usable_cores


@dataclasses.dataclass(frozen=True)
class Throughput:
    name: str
    samples_per_second: float
    cores: int

    @property
    def per_core(self) -> float:
        return self.samples_per_second / self.cores


def measure(dataset: tf.data.Dataset, batch_size: int, seconds: float, warmup_batches: int = 3) -> float:
    batches = iter(dataset)
    for _ in range(warmup_batches):
        next(batches)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        next(batches)
        count += batch_size
    return count / (time.perf_counter() - start)


def elasticdeform_dataset(stack: TileStack, config) -> tf.data.Dataset:
    """The reference path: crop + flips + rotation + elasticdeform in NumPy, per sample."""
    import elasticdeform

    rng_seed = config.seed

    def deform(index):
        rng = np.random.default_rng([rng_seed, int(index)])
        i = rng.integers(len(stack.sizes))
        size = config.crop
        y, x = (rng.integers(0, max(s - size, 0) + 1) for s in stack.sizes[i])
        image = stack.images[i, y : y + size, x : x + size].astype(np.float32)
        target = stack.targets_weights[i, y : y + size, x : x + size, 0]
        weight = stack.targets_weights[i, y : y + size, x : x + size, 1]
        k = int(rng.integers(4))
        image, target, weight = (np.rot90(a, k) for a in (image, target, weight))
        image, target, weight = elasticdeform.deform_random_grid(
            [image, target, weight],
            sigma=config.elastic_sigma,
            points=config.elastic_points,
            order=[1, 0, 0],
            axis=[(0, 1)] * 3,
            rotate=float(rng.uniform(-180, 180)),
        )
        return image.astype(np.float32), target.astype(np.int32), weight.astype(np.float32)

    def sample(index):
        image, target, weight = tf.numpy_function(deform, [index], (tf.float32, tf.int32, tf.float32))
        return (
            tf.ensure_shape(image, [config.crop, config.crop, 3]),
            tf.ensure_shape(target, [config.crop] * 2),
            tf.ensure_shape(weight, [config.crop] * 2),
        )

    samples = tf.data.Dataset.range(np.iinfo(np.int64).max).map(sample, num_parallel_calls=tf.data.AUTOTUNE)
    return samples.batch(config.batch_size).prefetch(tf.data.AUTOTUNE)


def keras_elastic_dataset(stack: TileStack, config) -> tf.data.Dataset:
    """The Keras preprocessing layer, as the keras-io examples use it in tf.data."""
    import keras

    layer = keras.layers.RandomElasticTransform(factor=1.0, scale=0.1, seed=config.seed)
    crops = tf.data.Dataset.from_tensor_slices(stack.images[:, : config.crop, : config.crop]).repeat()
    crops = crops.map(lambda p: layer(tf.cast(p, tf.float32)), num_parallel_calls=tf.data.AUTOTUNE)
    return crops.batch(config.batch_size).prefetch(tf.data.AUTOTUNE)


def bench_pipeline(tiles, config, seconds: float = 20.0) -> list[Throughput]:
    stack = prepare_tiles(tiles, config)
    cores = usable_cores()
    candidates = {
        "nucseg tf.data (all augmentations)": training_dataset(stack, config),
        "elasticdeform via tf.numpy_function": elasticdeform_dataset(stack, config),
        "keras.layers.RandomElasticTransform": keras_elastic_dataset(stack, config),
    }
    return [Throughput(name, measure(ds, config.batch_size, seconds), cores) for name, ds in candidates.items()]


def format_throughputs(results: list[Throughput], crop: int) -> str:
    lines = [f"| pipeline ({crop}x{crop} samples) | samples/s | per core |", "|---|---:|---:|"]
    lines += [f"| {r.name} | {r.samples_per_second:.0f} | {r.per_core:.0f} |" for r in results]
    reference = next(r for r in results if r.name.startswith("elasticdeform"))
    lines.append(
        f"\nnucseg / elasticdeform: {results[0].samples_per_second / reference.samples_per_second:.1f}x "
        f"on {results[0].cores} cores"
    )
    return "\n".join(lines)
