"""Memory benchmark of the training input: the shared tiles plus one very large tile.

Before pieces (`nucseg.data.pipeline.prepare_tiles`), every tile was padded to the largest one: 36
tiles of 512 x 512 beside one 6000 x 6000 tile took 37 x 6000 x 6000 x 11 bytes (about 15 GB).
`nucseg bench memory` builds such a tile as a mosaic of the data set's own tiles, prepares the
training stack, draws batches, and prints the stack's size and the process's peak memory.
"""

from __future__ import annotations

import resource
import time

import numpy as np

from nucseg.data.dataset import Tile
from nucseg.data.pipeline import prepare_tiles, training_dataset

BYTES_PER_PIXEL = 3 + 2 * 4  # uint8 RGB, float32 target and weight


def mosaic_tile(tiles: list[Tile], side: int) -> Tile:
    """A side x side tile made of the given tiles repeated; nuclei keep distinct ids."""
    image_rows, label_rows, next_id, k = [], [], 0, 0
    height = tiles[0].label.shape[0]
    for _ in range(-(-side // height)):
        images, labels, width = [], [], 0
        while width < side:
            tile = tiles[k % len(tiles)]
            k += 1
            label = np.where(tile.label > 0, tile.label + next_id, 0)
            next_id = int(label.max())
            images.append(tile.image[:height])
            labels.append(label[:height])
            width += tile.label.shape[1]
        image_rows.append(np.concatenate(images, axis=1)[:, :side])
        label_rows.append(np.concatenate(labels, axis=1)[:, :side])
    image = np.concatenate(image_rows)[:side]
    label = np.concatenate(label_rows)[:side]
    return Tile("mosaic", f"mosaic_{side}", image, label.astype(np.int32))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def bench_training_memory(tiles: list[Tile], config, big_side: int = 6000, batches: int = 20) -> dict:
    big = mosaic_tile(tiles, big_side)
    all_tiles = [*tiles, big]
    before = peak_rss_mb()
    start = time.perf_counter()
    stack = prepare_tiles(all_tiles, config)
    prepared = time.perf_counter() - start
    stream = iter(training_dataset(stack, config))
    start = time.perf_counter()
    for _ in range(batches):
        next(stream)
    return {
        "tiles": len(all_tiles),
        "largest_tile": f"{big_side}x{big_side}",
        "pixels_mpx": sum(t.label.size for t in all_tiles) / 1e6,
        "stack_mb": (stack.images.nbytes + stack.targets_weights.nbytes) / 2**20,
        "padded_to_largest_mb": len(all_tiles) * big_side**2 * BYTES_PER_PIXEL / 2**20,
        "pieces": len(stack.sizes),
        "prepare_seconds": prepared,
        "seconds_per_batch": (time.perf_counter() - start) / batches,
        "peak_rss_before_mb": before,
        "peak_rss_mb": peak_rss_mb(),
    }


def format_memory(result: dict) -> str:
    return "\n".join(
        [
            f"{result['tiles']} tiles, the largest {result['largest_tile']}: {result['pixels_mpx']:.1f} megapixels",
            f"training stack: {result['pieces']} pieces, {result['stack_mb']:.0f} MB "
            f"(padding every tile to the largest would take {result['padded_to_largest_mb']:.0f} MB)",
            f"prepared in {result['prepare_seconds']:.1f} s; {result['seconds_per_batch'] * 1000:.0f} ms per batch",
            f"peak memory of the process: {result['peak_rss_mb']:.0f} MB "
            f"({result['peak_rss_before_mb']:.0f} MB before the stack was made)",
        ]
    )
