"""The tiling plan shared by every large image: tiles of `tile` pixels overlapping by `overlap`,
each with a core, and the rule of which tile keeps a nucleus.

The tiles' cores partition the region (the border between two neighbouring tiles' cores is the
middle of their overlap). A tile keeps a nucleus whose centroid lies in its core and which does
not touch a tile edge inside the region (there it would be cut). So a nucleus narrower than half
the overlap is kept once, whole, by the tile whose core holds its centroid; one wider than that
may be lost (counted as `cut`).

No Keras here: the nuclei of tiles are found in worker processes that start without TensorFlow.
What a worker runs (its initializer too) lives here for that reason: a function of a module that
imports TensorFlow makes every worker import it when it unpickles the function (4.6 s a worker).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time

import numpy as np
import orjson

from nucseg.config import SIZE_MULTIPLE
from nucseg.labels import kept_pixels, nucleus_means, nucleus_pixels


@dataclasses.dataclass(frozen=True)
class SlidePlan:
    """What a run processes: the region (level-0 x, y, w, h), the level read and the scale from
    processing pixels (at Config.mpp) to level-0 pixels, and the tiles (processing x, y)."""

    slide: str
    region: tuple[int, int, int, int]
    level: int
    to_level0: float  # level-0 pixels per processing pixel
    tile: int
    overlap: int
    tiles: tuple[tuple[int, int], ...]
    width: int  # the region in processing pixels
    height: int
    mpp: float  # microns per processing pixel (Config.mpp)

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(dataclasses.asdict(self), sort_keys=True).encode()).hexdigest()[:12]


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Starts of tiles of `tile` pixels covering `length`, overlapping by at least `overlap`
    (the last one is moved back to end at `length`)."""
    if length <= tile:
        return [0]
    return sorted(set(range(0, length - tile, tile - overlap)) | {length - tile})


def fitted_tile(width: int, height: int, tile: int, overlap: int) -> int:
    """The side of a region's tiles: at most `tile`, a multiple of SIZE_MULTIPLE, and just large
    enough that tile_starts lays no more tiles on either axis than `tile` would. With `tile` itself
    the last tile of a row is moved back over its neighbour: a 4096-pixel side takes five tiles of
    1024 (5120 pixels of net input), where five of 928 (4640) cover it; a 20,000-pixel side, 23 of
    992 instead of 1024; a region smaller than a tile, one tile of its own size instead of white
    fill. The net and the nuclei then see fewer pixels (docs/speed.md, tenth round)."""

    def needed(length: int) -> int:
        if length <= tile:
            return length
        count = math.ceil((length - overlap) / (tile - overlap))
        return math.ceil((length + (count - 1) * overlap) / count)

    side = max(needed(width), needed(height), overlap + 1)
    return min(tile, math.ceil(side / SIZE_MULTIPLE) * SIZE_MULTIPLE)


def tile_cores(length: int, tile: int, overlap: int) -> dict[int, tuple[float, float]]:
    """{tile start: its core} along one axis: from the middle of its overlap with the previous
    tile to the middle of its overlap with the next one (0 and `length` at the ends)."""
    starts = tile_starts(length, tile, overlap)
    middles = [(starts[i + 1] + starts[i] + tile) / 2 for i in range(len(starts) - 1)]
    return dict(zip(starts, zip([0.0, *middles], [*middles, float(length)])))


def kept_nuclei(
    labels: np.ndarray, plan: SlidePlan, tx: int, ty: int, core_x, core_y, pixels=None
) -> tuple[list[int], int]:
    """Ids of the tile's nuclei that it keeps (see the module's rule), and how many were cut.
    `pixels`: nucleus_pixels(labels), where the caller has them."""
    ids = np.arange(1, int(labels.max()) + 1)
    if not len(ids):
        return [], 0
    rows, cols, owner, area = pixels if pixels is not None else nucleus_pixels(labels)
    centroids = np.stack([nucleus_means(owner, area, rows), nucleus_means(owner, area, cols)], axis=1)
    in_core = (
        (area > 0)
        & (core_y[0] <= ty + centroids[:, 0] + 0.5)
        & (ty + centroids[:, 0] + 0.5 < core_y[1])
        & (core_x[0] <= tx + centroids[:, 1] + 0.5)
        & (tx + centroids[:, 1] + 0.5 < core_x[1])
    )
    edges = [  # the tile's edges inside the region: a nucleus touching one is cut there
        line
        for line, inside in (
            (labels[0], ty > 0),
            (labels[-1], ty + plan.tile < plan.height),
            (labels[:, 0], tx > 0),
            (labels[:, -1], tx + plan.tile < plan.width),
        )
        if inside
    ]
    touching = np.zeros(len(ids) + 1, bool)
    for line in edges:
        touching[line] = True
    touching = touching[1:]  # by id 1..N, as in_core
    return ids[in_core & ~touching].tolist(), int(np.sum(in_core & touching))


# In a slide's part files each nucleus's GeoJSON Feature is text, written here in the worker; its
# name and id, which follow the order of the whole slide, take the place of these placeholders at
# assembly, so that the assembly neither parses the outline's numbers nor writes them again.
NAME_PLACEHOLDER, ID_PLACEHOLDER = "nucleus @ID@", "@ID@"


def tile_nuclei(labels, image, nucleus_map, plan: SlidePlan, tx, ty, core_x, core_y, map_name: str):
    """(GeoJSON Feature texts, outlines, table, cut) of the nuclei the tile keeps, in level-0
    coordinates. The outlines as one (P, 2) array of (x, y) and each one's number of points (in the
    order of the features): hundreds of small arrays a tile cost more to make and to send. The
    table as (its columns, each row's CSV text without the id: csv_fields)."""
    from nucseg.inference.objects import geojson_features, nuclei_table
    from nucseg.inference.outlines import outline_points, outlines_by_id

    pixels = nucleus_pixels(labels)
    kept, cut = kept_nuclei(labels, plan, tx, ty, core_x, core_y, pixels)
    if not kept:
        return [], (np.zeros((0, 2)), np.zeros(0, np.int64)), ([], []), cut
    keep = np.zeros(int(labels.max()) + 1, bool)
    keep[kept] = True
    labels = np.where(keep, np.arange(len(keep)), 0).astype(labels.dtype)[labels]  # a lookup table: np.isin sorts
    pixels = kept_pixels(pixels, keep)
    scale, (x0, y0) = plan.to_level0, plan.region[:2]
    ids, points, lengths = outline_points(labels, top=y0 + ty * scale, left=x0 + tx * scale, scale=scale)  # level 0
    table = nuclei_table(labels, image, nucleus_map, map_name, pixels=pixels)
    table = table.rename(columns={"area": "area_um2", "perimeter": "perimeter_um"})
    table["area_um2"] = table["area_um2"] * plan.mpp**2
    table["perimeter_um"] = table["perimeter_um"] * plan.mpp
    features = geojson_features(outlines_by_id(ids, points, lengths), table)  # in the order of ids, as the table
    for feature in features:
        feature["properties"]["name"] = NAME_PLACEHOLDER
        feature["properties"]["measurements"]["id"] = ID_PLACEHOLDER
    # orjson, not json: a tenth of json.dumps's time (which was 7 % of a tile's nuclei time), and
    # it writes the outlines' arrays without making Python lists of them first.
    texts = [orjson.dumps(feature, option=orjson.OPT_SERIALIZE_NUMPY).decode() for feature in features]
    table["centroid_x"] = x0 + (tx + table["centroid_x"]) * scale
    table["centroid_y"] = y0 + (ty + table["centroid_y"]) * scale
    table = table.drop(columns="id")
    return texts, (points, lengths), (list(table.columns), [csv_fields(row) for row in table.to_numpy().tolist()]), cut


def csv_fields(values: list) -> str:
    """A row of numbers as csv.writer writes it (floats by repr, None empty), without its line's end.
    Made in the workers: csv.writer took a fifth of a slide's assembly, on one core at the end."""
    return ",".join("" if value is None else repr(value) for value in values)


def without_pieces_beyond_core(nucleus_map: np.ndarray, config, core_rows, core_cols):
    """(the map, its foreground's pieces) with 0 (background: every threshold is at least 0) on
    each piece of its foreground (8-connected, holes filled) that cannot hold a nucleus the tile
    keeps: one whose bounding box puts no centroid in the core (`core_rows`, `core_cols`: the core
    in the tile's pixels, as kept_nuclei tests a centroid: lo <= centroid + 0.5 < hi). The pieces
    (instances.Pieces) are the cleared map's, for the nuclei, which would find them again.

    The nuclei of the other pieces are the same: the dynamic watershed and the binary nets' split
    find nuclei piece by piece (h-maxima per piece, watershed per component, and a pixel's
    distance to the background never reaches into another piece); the cleared pixels join the
    background around them (the background between two 8-connected pieces is 4-connected), so no
    hole is made. A quarter of an interior tile lies beyond its core, where clearing costs about
    what it saves; more of the tiles that a slide's edge pushes back (a third of a 4096 x 4096
    mosaic's tile area), where it gains (docs/speed.md, sixth round)."""
    from scipy import ndimage

    from nucseg.postprocess.instances import foreground_pieces
    from nucseg.postprocess.kinds import foreground

    pieces = foreground_pieces(foreground(nucleus_map, config))

    def reaches(span: slice, core) -> bool:  # some pixel index i of span with lo <= i + 0.5 < hi
        return span.start + 0.5 < core[1] and span.stop - 0.5 >= core[0]

    boxes = ndimage.find_objects(pieces.labels)
    beyond = np.array([False] + [not (reaches(rows, core_rows) and reaches(cols, core_cols)) for rows, cols in boxes])
    cleared = beyond[pieces.labels]
    return np.where(cleared, np.zeros((), nucleus_map.dtype), nucleus_map), pieces.without(cleared, boxes)


def batch_nuclei(
    plan: SlidePlan, config, cores_x: dict, cores_y: dict, map_name: str, group, images, maps
) -> list[tuple]:
    """tile_nuclei of each tile of a predicted batch (what a nuclei worker runs), the nuclei found
    only in the pieces that reach the tile's core."""
    from nucseg.postprocess.kinds import instances_from_config

    found = []
    for (tx, ty), image, nucleus_map in zip(group, images, maps):
        core_rows = (cores_y[ty][0] - ty, cores_y[ty][1] - ty)
        core_cols = (cores_x[tx][0] - tx, cores_x[tx][1] - tx)
        within, pieces = without_pieces_beyond_core(nucleus_map, config, core_rows, core_cols)
        labels = instances_from_config(within, config, pieces)
        found.append(tile_nuclei(labels, image, nucleus_map, plan, tx, ty, cores_x[tx], cores_y[ty], map_name))
    return found


NUCLEI_NICENESS = 10  # added to the nuclei workers' niceness (see nucseg.inference.slide.nuclei_pool)


def start_nuclei_worker() -> None:
    """A nuclei worker's initializer: it runs below the net's priority, with what it runs imported
    (SciPy, scikit-image, pandas: about a second, spent while the first batch is predicted)."""
    if hasattr(os, "nice"):  # POSIX only
        os.nice(NUCLEI_NICENESS)
    import nucseg.inference.objects  # noqa: F401
    import nucseg.postprocess.kinds  # noqa: F401


def timed(function, *args) -> tuple[list, float, float]:
    """function(*args), the seconds it took and the CPU-seconds of the thread that ran it
    (measured where it runs: in a worker, whose wall clock also runs while the net has the cores)."""
    start, cpu_start = time.perf_counter(), time.thread_time()
    result = function(*args)
    return result, time.perf_counter() - start, time.thread_time() - cpu_start
