"""`nucseg bench slide`: megapixels per second of the whole-slide route, end to end (read,
predict, nuclei, write), and the process's peak memory, on a pyramidal TIFF made of a data
set's tiles (written tile by tile, so the slide is never in memory)."""

from __future__ import annotations

import resource
import time
from pathlib import Path

import numpy as np

from nucseg.io import save_with

TIFF_TILE = 256


MOSAIC_CROP = 512


def mosaic_crop(tiles) -> int:
    """The side of the mosaic's square crops: MOSAIC_CROP, or the smallest tile's side where a data
    set's tiles are smaller (CoNSeP's are 256 x 256)."""
    return min(MOSAIC_CROP, *(min(tile.image.shape[:2]) for tile in tiles))


def mosaic_tile(row: int, column: int, count: int) -> int:
    """Which of `count` tiles gives the mosaic's crop at (row, column), in crops of mosaic_crop."""
    return (row * 7 + column) % count


def mosaic_block(tiles, y: int, x: int, height: int, width: int, crop: int | None = None) -> np.ndarray:
    """Pixels [y, y + height) x [x, x + width) of an endless mosaic of the tiles' crops (`crop`:
    mosaic_crop(tiles), given by a caller that asks for many blocks)."""
    side = crop or mosaic_crop(tiles)
    block = np.empty((height, width, 3), np.uint8)
    for by in range(y - y % side, y + height, side):
        for bx in range(x - x % side, x + width, side):
            source = tiles[mosaic_tile(by // side, bx // side, len(tiles))].image[:side, :side]
            top, left = max(by, y), max(bx, x)
            bottom, right = min(by + side, y + height), min(bx + side, x + width)
            block[top - y : bottom - y, left - x : right - x] = source[top - by : bottom - by, left - bx : right - bx]
    return block


def write_mosaic_slide(path: Path, tiles, side: int, mpp: float = 0.25, levels: int = 3) -> Path:
    """A side x side pyramidal tiled TIFF (deflate tiles: JPEG would need imagecodecs) with resolution
    tags. Written under another name and renamed when whole: a run stopped while writing it leaves no
    partial slide for the next run to take as made."""
    import tifffile

    crop = mosaic_crop(tiles)

    def level_tiles(level):
        step = 2**level
        size = -(-side // step)
        for ty in range(0, size, TIFF_TILE):
            for tx in range(0, size, TIFF_TILE):
                h, w = min(TIFF_TILE, size - ty), min(TIFF_TILE, size - tx)
                block = mosaic_block(tiles, ty * step, tx * step, h * step, w * step, crop)[::step, ::step]
                out = np.full((TIFF_TILE, TIFF_TILE, 3), 255, np.uint8)
                out[: block.shape[0], : block.shape[1]] = block
                yield out

    def write(temporary):
        with tifffile.TiffWriter(temporary, bigtiff=True) as tif:
            for level in range(levels):
                size = -(-side // 2**level)
                tif.write(
                    level_tiles(level),
                    shape=(size, size, 3),
                    dtype=np.uint8,
                    tile=(TIFF_TILE, TIFF_TILE),
                    photometric="rgb",
                    compression="zlib",
                    subfiletype=0 if level == 0 else 1,
                    resolution=(1e4 / mpp / 2**level,) * 2,
                    resolutionunit="CENTIMETER",
                )

    return save_with(path, write, suffix=".tif")


def bench_slide(
    predictor,
    config,
    tiles,
    work_dir: Path,
    side: int,
    tile: int,
    overlap: int,
    batch_size: int,
    nuclei_workers: int | None = None,
) -> dict:
    from nucseg.inference.slide import run_slide

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    slide = work_dir / f"mosaic_{side}.tif"
    if not slide.is_file():
        write_mosaic_slide(slide, tiles, side)
    out = work_dir / f"out_{side}_{tile}_{overlap}"
    if out.exists():
        import shutil

        shutil.rmtree(out)
    start, timings, cpu_before = time.perf_counter(), {}, cpu_seconds()
    summary = run_slide(
        predictor,
        config,
        slide,
        out,
        tile=tile,
        overlap=overlap,
        batch_size=batch_size,
        verbose=1,
        timings=timings,
        nuclei_workers=nuclei_workers,
    )
    seconds = time.perf_counter() - start
    cpu = {who: spent - cpu_before[who] for who, spent in cpu_seconds().items()}
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "side": side,
        "megapixels": side * side / 1e6,
        "seconds": seconds,
        "megapixels_per_second": side * side / 1e6 / seconds,
        "nuclei": summary["nuclei"],
        "tiles": summary["tiles"],
        "tile_side": summary["tile_side"],
        "peak_memory_mb": peak_mb,
        "nuclei_workers": nuclei_workers,
        "stages": timings,
        "cpu_seconds": cpu,
        "net_megapixels_per_second": net_speed(predictor, tiles, summary["tile_side"], batch_size),
    }


def cpu_seconds() -> dict[str, float]:
    """User + system CPU-seconds so far of this process ("main": reading, the net's threads,
    handing tiles over, assembling) and of its ended child processes ("workers": the nuclei
    workers, counted once the run's pool has shut down)."""
    main, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"main": main.ru_utime + main.ru_stime, "workers": children.ru_utime + children.ru_stime}


def net_speed(predictor, tiles, tile: int, batch_size: int, repeats: int = 2) -> float:
    """Megapixels per second of the net's forward pass alone on batches of tiles: the ceiling of
    the end-to-end figure (which also reads, finds nuclei, writes, and predicts the overlaps twice)."""
    batch = np.stack([mosaic_block(tiles, 0, i * tile, tile, tile) for i in range(batch_size)]).astype(np.float32)
    predictor(batch)  # built and warmed up
    start = time.perf_counter()
    for _ in range(repeats):
        predictor(batch)
    return repeats * batch.shape[0] * tile * tile / 1e6 / (time.perf_counter() - start)


def format_slide_benchmark(result: dict) -> str:
    cpu = result["cpu_seconds"]
    return (
        f"slide {result['side']} x {result['side']} ({result['megapixels']:.0f} megapixels, "
        f"{result['tiles']} tiles of {result['tile_side']}): "
        f"{result['seconds']:.0f} s end to end, {result['megapixels_per_second']:.2f} megapixels/s, "
        f"{result['nuclei']} nuclei; peak memory of the main process {result['peak_memory_mb']:.0f} MB (the nuclei "
        "workers, which hold no model, not counted); "
        f"the net's forward pass alone: {result['net_megapixels_per_second']:.2f} megapixels/s\n"
        + "seconds by stage (nuclei: summed over the nuclei workers, beside read and predict; wait: the pipeline idle "
        "for them): "
        + ", ".join(f"{stage} {seconds:.1f}" for stage, seconds in result["stages"].items() if stage != "nuclei_cpu")
        + f"\nCPU-seconds: main process {cpu['main']:.1f}, nuclei workers {cpu['workers']:.1f} "
        f"({result['stages'].get('nuclei_cpu', 0.0):.1f} of them finding nuclei, the rest starting and receiving "
        f"tiles); {(cpu['main'] + cpu['workers']) / result['megapixels']:.2f} CPU-seconds a megapixel"
    )
