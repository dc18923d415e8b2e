"""Whole-slide images into nuclei, through OpenSlide (.svs, .ndpi, .mrxs, pyramidal TIFF, ...).

The slide is read at the pyramid level closest to the model's training resolution
(`Config.mpp`) without being coarser, and resized to it where the level differs. Tissue is
found on a low-resolution level; tiles without tissue are skipped. Tiles of at most `tile`
pixels (fitted to the region: `tiles.fitted_tile`) overlapping by `overlap` are read
(`regions.SlideRegion`) and predicted in batches by the large-image engine (`large.py`, which
`predict` uses too), and each one's nuclei are found alone.

Which tile keeps a nucleus: see `nucseg.inference.tiles` (the tile whose core holds its centroid,
unless it touches a tile edge there: then it is counted as `cut` in `slide.json`). The nuclei of
each predicted batch are found in worker processes while the next batches are read and
predicted (`nuclei_workers`; 0: one thread of this process).

Resumable and bounded in memory: the tiles are processed in parts of `PART_TILES`; each part's
nuclei are written to `parts/NNNNN.json` (atomically) and a rerun skips the parts on disk. The
outputs are then assembled from the parts in order, so a resumed run writes the same files as an
uninterrupted one: `nuclei.geojson` (or `.geojson.gz`), `nuclei.csv`, `overview.jpg`,
`slide.json`, and on request `labels.tif` (`label_image.py`). Coordinates are level-0 pixels of
the slide (QuPath's); areas in µm², perimeters in µm.
"""

from __future__ import annotations

import base64
import functools
import gzip
import json
import math
import time
import multiprocessing
import sys
from collections import deque
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import orjson

from nucseg.hardware import usable_cores
from nucseg.inference.label_image import write_label_tiff
from nucseg.inference.large import predicted_batches
from nucseg.inference.regions import SlideError, SlideRegion, choose_level, open_slide, slide_mpp
from nucseg.inference.tiles import (
    ID_PLACEHOLDER,
    NAME_PLACEHOLDER,
    SlidePlan,
    batch_nuclei,
    csv_fields,
    fitted_tile,
    start_nuclei_worker,
    tile_cores,
    tile_starts,
    timed,
)
from nucseg.inference.tissue import tissue_mask
from nucseg.postprocess.kinds import kind_of
from nucseg.io import save_with, write_jpeg_atomic, write_json_atomic, write_text_atomic

PART_TILES = 16
OVERVIEW_SIDE = 2048
__all__ = ["SlideError", "choose_level", "tile_cores"]  # re-exported


def plan_slide(
    slide, path, config, region=None, tile: int = 1024, overlap: int = 128, mpp: float | None = None
) -> SlidePlan:
    base_mpp = slide_mpp(slide, path, mpp)
    full_w, full_h = slide.dimensions
    region = tuple(int(v) for v in (region or (0, 0, full_w, full_h)))
    x, y, w, h = region
    if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > full_w or y + h > full_h:
        raise SlideError(f"{path}: --region {x} {y} {w} {h} is not inside the slide (0 0 {full_w} {full_h})")
    level = choose_level(slide.level_downsamples, base_mpp, config.mpp)
    to_level0 = config.mpp / base_mpp
    width, height = max(1, round(w / to_level0)), max(1, round(h / to_level0))
    tissue, per_mask_pixel = tissue_mask(slide, region)
    tile = fitted_tile(width, height, tile, overlap)
    tiles = []
    for ty in tile_starts(height, tile, overlap):
        for tx in tile_starts(width, tile, overlap):
            box = [int(v * to_level0 / per_mask_pixel) for v in (ty, ty + tile, tx, tx + tile)]
            if tissue[box[0] : box[1] + 1, box[2] : box[3] + 1].any():
                tiles.append((tx, ty))
    return SlidePlan(str(path), region, level, to_level0, tile, overlap, tuple(tiles), width, height, config.mpp)


def nuclei_pool(workers: int):
    """Where the nuclei of batches are found: `workers` processes (spawned, not forked: the parent
    runs TensorFlow's or OpenVINO's threads, which a fork does not carry safely), or for 0 one
    thread of this process (NumPy, SciPy and scikit-image let go of the GIL for part of the work).
    The processes run at a lower priority (niceness +10): the net, whose threads wait for each
    other, gets the cores when it wants them and the nuclei fill the gaps. On 2 cores that was 8 %
    less wall time end to end, side by side (results/measured/engines/bench_slide_4096_nice.txt)."""
    if workers <= 0:
        return ThreadPoolExecutor(max_workers=1)
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=start_nuclei_worker
    )
    for _ in range(workers):
        pool.submit(int)  # a process is started per task waiting: all start now, not at the first batches
    return pool


def run_slide(
    predictor,
    config,
    path,
    out_dir,
    tile: int = 1024,
    overlap: int = 128,
    batch_size: int = 2,
    region=None,
    mpp: float | None = None,
    gzip_geojson: bool = False,
    verbose: int = 1,
    timings: dict | None = None,
    nuclei_workers: int | None = None,
    label_image: bool = False,
) -> dict:
    """Nuclei of a slide (or of a region of it) into out_dir; returns the summary (slide.json).
    `nuclei_workers`: processes that find the nuclei (default: one per CPU; 0: a thread).
    `timings`, where given, gets the seconds spent in each stage (read, predict, nuclei, wait,
    assemble): "nuclei" is the time the workers spent, beside reading and predicting, and
    "nuclei_cpu" the CPU-seconds of it; "wait" is the time the pipeline stood waiting for them.
    `label_image`: also write `labels.tif` (see `nucseg.inference.label_image`)."""
    from nucseg.inference.predict import check_tiling

    check_tiling(tile, overlap)
    if batch_size < 1:
        raise SlideError(f"--batch-size {batch_size}: at least 1 tile per prediction")
    if nuclei_workers is not None and nuclei_workers < 0:
        raise SlideError(f"--nuclei-workers {nuclei_workers}: 0 (one thread) or more processes")
    out_dir = Path(out_dir)
    slide = open_slide(path)
    plan = plan_slide(slide, path, config, region, tile, overlap, mpp)
    _claim(out_dir, plan, config)
    start = time.perf_counter()
    parts = [plan.tiles[i : i + PART_TILES] for i in range(0, len(plan.tiles), PART_TILES)]
    map_name = kind_of(config).map_column
    find_nuclei = functools.partial(
        timed,
        functools.partial(
            batch_nuclei,
            plan,
            config,
            tile_cores(plan.width, plan.tile, plan.overlap),
            tile_cores(plan.height, plan.tile, plan.overlap),
            map_name,
        ),
    )
    timings = timings if timings is not None else {}
    for stage in ("read", "predict", "nuclei", "nuclei_cpu", "wait", "assemble"):
        timings.setdefault(stage, 0.0)
    workers = usable_cores() if nuclei_workers is None else nuclei_workers  # one per CPU this process may use

    def part_path(number: int) -> Path:
        return out_dir / "parts" / f"{number:05d}.json"

    todo = [number for number in range(len(parts)) if not _part_done(part_path(number))]
    done = len(plan.tiles) - sum(len(parts[number]) for number in todo)
    bar = TileProgress(len(plan.tiles), done) if verbose and todo else None
    with nuclei_pool(workers) as pool:
        source, in_flight = SlideRegion(slide, plan), max(workers, 1) + 1
        pipeline = _nuclei_by_part(
            source, parts, todo, plan.tile, predictor, batch_size, find_nuclei, pool, in_flight, timings
        )
        for number, found in pipeline:
            _write_part(part_path(number), _part_record(found))
            done += len(parts[number])
            if bar:
                bar.update(done)
    assembling = time.perf_counter()
    summary = _assemble(slide, plan, out_dir, len(parts), gzip_geojson)
    if label_image:
        summary["label_image"] = write_label_tiff(
            out_dir / "labels.tif", _outlines(plan, out_dir, len(parts)), plan.width, plan.height, plan.mpp, plan.tile
        ).name
    timings["assemble"] += time.perf_counter() - assembling
    summary["seconds"] = round(time.perf_counter() - start, 1)
    write_json_atomic(out_dir / "slide.json", summary)
    return summary


def _nuclei_by_part(source, parts, numbers, side, predictor, batch_size, find_nuclei, pool, in_flight, timings):
    """(part number, the nuclei of its tiles) for each part of `numbers`, in order, as each is
    complete. One pipeline for all: each batch's nuclei are found (`find_nuclei(group, images,
    maps)`) in `pool` while the next batches are read and predicted, the next part's too (waiting
    for a part's last batches before reading the next part's left a core idle at every part's
    end); at most `in_flight` batches wait in the pool (memory stays bounded)."""
    found = {number: [] for number in numbers}
    batches_left = {number: math.ceil(len(parts[number]) / batch_size) for number in numbers}
    pending = deque()

    def collect_oldest():
        number, future = pending.popleft()
        waiting = time.perf_counter()
        result, seconds, cpu_seconds = future.result()
        timings["wait"] += time.perf_counter() - waiting
        timings["nuclei"] += seconds
        timings["nuclei_cpu"] += cpu_seconds
        found[number].extend(result)
        batches_left[number] -= 1
        return [(number, found.pop(number))] if not batches_left[number] else []

    for number in numbers:
        for group, images, maps in predicted_batches(source, parts[number], side, predictor, batch_size, timings):
            pending.append((number, pool.submit(find_nuclei, group, images, maps)))
            while len(pending) >= in_flight:
                yield from collect_oldest()
    while pending:
        yield from collect_oldest()


def _part_record(found: list[tuple]) -> dict:
    """What parts/NNNNN.json holds: the nuclei of a part's tiles (tile_nuclei's tuples)."""
    outlines = [outline for _, outline, _, _ in found]
    points = np.concatenate([points for points, _ in outlines]) if outlines else np.zeros((0, 2))
    return {
        "features": [text for texts, _, _, _ in found for text in texts],
        "outline_lengths": [length for _, lengths in outlines for length in lengths.tolist()],
        # every outline's points, for the overview and the label image: the binary doubles, which
        # decode at once (parsing them from the features' text was most of the assembly's time)
        "outline_points": base64.b64encode(points.astype("<f8").tobytes()).decode("ascii"),
        "columns": next((columns for _, _, (columns, lines), _ in found if lines), []),
        "csv_lines": [line for _, _, (_, lines), _ in found for line in lines],
        "cut": sum(cut for *_, cut in found),
    }


def _write_part(path: Path, record: dict) -> None:
    """A part file, written by the main process while the net runs. orjson, not json: a part of a
    dense slide is 14 MB of text (its features' GeoJSON inside JSON strings), which json.dumps took
    78 ms to write and orjson 12. orjson would write a NaN as null (json wrote NaN, which is not JSON);
    the table's measurements are finite."""
    write_text_atomic(path, orjson.dumps(record).decode() + "\n")


def _part_done(path: Path) -> bool:
    """A part file of this version (one of an earlier nucseg, with the outlines only in its
    features' text, is found again rather than refused)."""
    return path.is_file() and '"outline_points":' in path.read_text()


def _read_part(out_dir: Path, number: int) -> tuple[dict, np.ndarray]:
    """A part file, and its outlines' points as one (P, 2) array of level-0 (x, y) (split them by
    its "outline_lengths": _split_outlines)."""
    text = (out_dir / "parts" / f"{number:05d}.json").read_bytes()
    try:
        part = orjson.loads(text)  # half of json.loads's time
    except orjson.JSONDecodeError:  # a part json wrote with NaN in it (orjson reads no NaN)
        part = json.loads(text)
    if "csv_lines" not in part:  # a part of an earlier nucseg, with its table's rows as numbers
        part["csv_lines"] = [csv_fields(values) for values in part.pop("rows")]
    return part, np.frombuffer(base64.b64decode(part["outline_points"]), "<f8").reshape(-1, 2)


def _split_outlines(points: np.ndarray, lengths: list[int]) -> list[np.ndarray]:
    return np.split(points, np.cumsum(lengths)[:-1]) if lengths else []


class TileProgress:
    """One line on stderr, rewritten in place: tiles done, seconds a tile, time left. Written here
    because keras.utils.Progbar (used before) imports Keras and so TensorFlow: 6.7 s and 0.6 GB on a
    2-core AMD EPYC, in a process whose net may run in OpenVINO."""

    def __init__(self, total: int, done_before: int = 0):
        """`done_before`: tiles of parts a resumed run found on disk (not timed)."""
        self.total, self.first, self.start = total, done_before, time.perf_counter()

    def update(self, done: int) -> None:
        per_tile = (time.perf_counter() - self.start) / max(done - self.first, 1)
        left = round(per_tile * (self.total - done))
        end = "\n" if done >= self.total else ""
        print(
            f"\r{done}/{self.total} tiles, {per_tile:.2f} s a tile, {left // 60}:{left % 60:02d} left",
            end=end,
            file=sys.stderr,
            flush=True,
        )


def _claim(out_dir: Path, plan: SlidePlan, config) -> None:
    """plan.json ties the folder to one plan and configuration: parts of another are never mixed in."""
    identity = {"plan": plan.digest(), "config": config.config_hash(), "slide": plan.slide}
    path = out_dir / "plan.json"
    if path.is_file():
        previous = json.loads(path.read_text())
        if {k: previous.get(k) for k in identity} != identity:
            raise SlideError(
                f"{out_dir} holds the nuclei of another slide, region, tiling or model, or of a nucseg that "
                f"laid its tiles otherwise ({previous.get('slide')}); use another --out folder, or delete this "
                "one to start again"
            )
        return
    write_json_atomic(path, {**identity, "region": plan.region, "level": plan.level, "tiles": len(plan.tiles)})


def _assemble(slide, plan: SlidePlan, out_dir: Path, n_parts: int, gzip_geojson: bool) -> dict:
    """nuclei.geojson(.gz), nuclei.csv and overview.jpg from the parts, streamed part by part;
    nucleus ids follow the parts' order, so they are the same however often the run was resumed.
    Each part is written whole (one text of its features, one of its table's lines) and its
    outlines' points are scaled to the overview at once (then drawn one by one): the assembly runs
    on one core at the end of the run, where each step per nucleus (226,250 on a 20,000 x 20,000
    slide) costs wall time."""
    from PIL import ImageDraw

    overview, per_pixel = _overview_image(slide, plan.region)
    draw = ImageDraw.Draw(overview)
    name = "nuclei.geojson.gz" if gzip_geojson else "nuclei.geojson"
    count, cut, header = 0, 0, None
    table = []

    def write_geojson(temporary):
        nonlocal count, cut, header
        opener = gzip.open if gzip_geojson else open
        with opener(temporary, "wt") as handle:
            handle.write('{"type": "FeatureCollection", "features": [\n')
            name_text, id_text = json.dumps(NAME_PLACEHOLDER), json.dumps(ID_PLACEHOLDER)  # as in the parts' text
            for number in range(n_parts):
                part, points = _read_part(out_dir, number)
                cut += part["cut"]
                ids = range(count + 1, count + 1 + len(part["features"]))
                if not ids:
                    continue
                texts = (
                    t.replace(name_text, f'"nucleus {i}"').replace(id_text, str(i))
                    for i, t in zip(ids, part["features"])
                )
                handle.write((",\n" if count else "") + ",\n".join(texts))
                header = header or ",".join(["id", *part["columns"]]) + "\r\n"  # csv.writer's line end
                table.append("".join(f"{i},{line}\r\n" for i, line in zip(ids, part["csv_lines"])))
                flat = ((points - plan.region[:2]) / per_pixel).ravel().tolist()
                ends = np.cumsum(part["outline_lengths"]) * 2
                for start, end in zip([0, *ends[:-1].tolist()], ends.tolist()):
                    draw.line(flat[start:end], fill=(0, 255, 0), width=1)
                count = ids[-1]
            handle.write("\n]}\n")

    save_with(out_dir / name, write_geojson, suffix=".gz" if gzip_geojson else ".geojson")
    write_text_atomic(out_dir / "nuclei.csv", (header or "id\n") + "".join(table))
    write_jpeg_atomic(out_dir / "overview.jpg", np.asarray(overview))
    x, y, w, h = plan.region
    return {
        "slide": plan.slide,
        "region": [x, y, w, h],
        "level": plan.level,
        "mpp": plan.mpp,
        "tiles": len(plan.tiles),
        "tile_side": plan.tile,  # at the model's resolution: --tile, fitted to the region
        "nuclei": count,
        "cut": cut,
        "megapixels": round(w * h / 1e6, 2),
        "geojson": name,
    }


def _outlines(plan: SlidePlan, out_dir: Path, n_parts: int):
    """(id, outline in processing pixels) of every nucleus of the parts, ids as `_assemble` gives them."""
    count, scale = 0, plan.to_level0
    for number in range(n_parts):
        part, points = _read_part(out_dir, number)
        for outline in _split_outlines(points, part["outline_lengths"]):
            count += 1
            yield count, ((outline - plan.region[:2]) / scale).tolist()


def _overview_image(slide, region):
    """The region at most OVERVIEW_SIDE pixels a side (RGB PIL image) and level-0 pixels per pixel."""
    x, y, w, h = region
    per_pixel = max(w, h) / OVERVIEW_SIDE if max(w, h) > OVERVIEW_SIDE else 1.0
    level = slide.get_best_level_for_downsample(per_pixel)
    downsample = slide.level_downsamples[level]
    patch = slide.read_region((x, y), level, (max(1, int(w / downsample)), max(1, int(h / downsample)))).convert("RGB")
    size = (max(1, round(w / per_pixel)), max(1, round(h / per_pixel)))
    return patch.resize(size) if patch.size != size else patch, per_pixel
