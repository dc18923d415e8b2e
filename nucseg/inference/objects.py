"""Nuclei as objects: a label image, QuPath-ready GeoJSON polygons and a per-nucleus table.

GeoJSON follows QuPath's own export (v0.4 and later): a FeatureCollection of Features, each a
Polygon in pixel coordinates of the full image (x right, y down, (0, 0) the top-left corner of
the top-left pixel), with properties `objectType: "detection"`, a `classification` and
`measurements`; QuPath's File > Import objects reads it as detections.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from nucseg.inference.baseline import hematoxylin
from nucseg.inference.outlines import nucleus_outlines, nucleus_polygon  # noqa: F401 (nucleus_polygon: API)
from nucseg.io import save_with, write_png_atomic, write_text_atomic
from nucseg.labels import nucleus_means, nucleus_pixels

NUCLEUS_CLASS = {"name": "Nucleus", "color": [200, 0, 120]}
TABLE_COLUMNS = [
    "id",
    "centroid_x",
    "centroid_y",
    "area",
    "perimeter",
    "eccentricity",
    "solidity",
    "mean_hematoxylin_od",
]


def nuclei_table(
    labels: np.ndarray,
    image: np.ndarray,
    nucleus_map: np.ndarray | None = None,
    map_name: str = "mean_probability",
    top: int = 0,
    left: int = 0,
    pixels: tuple | None = None,
) -> pd.DataFrame:
    """One row per nucleus: id, centroid (x, y, pixels of the full image), area and perimeter
    (pixels), eccentricity, solidity, mean hematoxylin optical density and the mean of the net's
    nucleus map (`map_name`: its probability, or DIST's distance).

    All nuclei are measured at once with bincounts over the label image (our own code because
    regionprops measures one region at a time in Python: a quarter of a slide's time). Centroid,
    area, eccentricity and perimeter are regionprops' (same moments, same 4-neighbour perimeter
    estimate); solidity is the area over the pixels of the nucleus's convex hull, counted as in
    regionprops to within a few pixels (see _hull_areas). `pixels`: nucleus_pixels(labels), where
    the caller has them."""
    labels = np.asarray(labels)
    count = int(labels.max(initial=0))
    rows, cols, owner, area = pixels if pixels is not None else nucleus_pixels(labels)
    ids, present = np.arange(1, count + 1), area > 0

    def mean(values):
        return nucleus_means(owner, area, values)

    centre_r, centre_c = mean(rows), mean(cols)
    d_r, d_c = rows - centre_r[owner - 1], cols - centre_c[owner - 1]
    eccentricity = _eccentricity(mean(d_r * d_r), mean(d_c * d_c), mean(d_r * d_c))
    flat = rows * labels.shape[1] + cols  # the nucleus pixels in the image's and map's pixels, found once
    padded = np.pad(labels, 1)
    border = _border(padded, rows, cols, owner)
    hull = _hull_areas(labels, border, count)[present]
    frame = pd.DataFrame(
        {
            "id": ids[present],
            "centroid_x": centre_c[present] + left + 0.5,
            "centroid_y": centre_r[present] + top + 0.5,
            "area": area[present],
            "perimeter": _perimeters(padded, border, count)[present],
            "eccentricity": eccentricity[present],
            "solidity": np.minimum(area[present] / hull, 1.0),
            "mean_hematoxylin_od": mean(hematoxylin(_gathered(image, flat)[None])[0])[present],
        }
    )
    if nucleus_map is not None:  # gathered, then made float64: not the whole map
        frame[map_name] = mean(_gathered(nucleus_map, flat).astype(np.float64))[present]
    return frame


def _gathered(image: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """The pixels `flat` (indices of image[:, :, ...] raveled over its rows and columns) with their
    channels, if any: half the time of indexing rows and columns (a scratch measure on a slide
    tile's nucleus pixels)."""
    image = np.asarray(image)
    pixels = image.reshape(image.shape[0] * image.shape[1], -1)
    return np.take(pixels, flat, axis=0).reshape(flat.shape + image.shape[2:])


def _eccentricity(var_r: np.ndarray, var_c: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """sqrt(1 - l2 / l1) of the eigenvalues l1 >= l2 of each region's coordinate covariance."""
    half_sum, radius = (var_r + var_c) / 2, np.sqrt(((var_r - var_c) / 2) ** 2 + cov**2)
    major, minor = half_sum + radius, np.maximum(half_sum - radius, 0)
    return np.sqrt(1 - np.divide(minor, major, out=np.ones_like(major), where=major > 0))


_PERIMETER_WEIGHTS = np.zeros(50)
_PERIMETER_WEIGHTS[[5, 7, 15, 17, 25, 27]] = 1
_PERIMETER_WEIGHTS[[21, 33]] = np.sqrt(2)
_PERIMETER_WEIGHTS[[13, 23]] = (1 + np.sqrt(2)) / 2


class _Neighbours:
    """The (rows, cols) pixels' neighbours (dy, dx) in images padded by one pixel of 0, all of one
    shape. Gathered at those pixels only (a tile's border pixels are a few percent of it): a fifth
    of the time of shifting whole images; and by flat indices, found once: 0.4 of the time of
    indexing rows and columns at each gather (a scratch measure on 200,000 pixels)."""

    def __init__(self, padded_shape: tuple, rows: np.ndarray, cols: np.ndarray):
        self.width = padded_shape[1]
        self.flat = (rows + 1) * self.width + cols + 1

    def __call__(self, padded: np.ndarray, dy: int, dx: int) -> np.ndarray:
        return np.take(padded.ravel(), self.flat + (dy * self.width + dx))


_SIDES, _CORNERS = [(-1, 0), (1, 0), (0, -1), (0, 1)], [(-1, -1), (-1, 1), (1, -1), (1, 1)]


class _Border(NamedTuple):
    """The pixels of a region with a 4-neighbour outside it (regionprops' perimeter pixels): as
    an image, and as their rows, columns (in raster order, np.nonzero's) and regions."""

    image: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    values: np.ndarray


def _border(padded: np.ndarray, rows: np.ndarray, cols: np.ndarray, values: np.ndarray) -> _Border:
    """The border of the label image padded by one pixel of 0 (`padded`), from its nucleus pixels
    (`rows`, `cols` in raster order and their ids `values`, as nucleus_pixels gives them). Built
    from those, not found again by np.nonzero of whole tiles (three passes over a slide tile,
    about 7 ms of its nuclei)."""
    at = _Neighbours(padded.shape, rows, cols)
    outside = np.logical_or.reduce([at(padded, dy, dx) != values for dy, dx in _SIDES])
    image = np.zeros((padded.shape[0] - 2, padded.shape[1] - 2), bool)
    image[rows[outside], cols[outside]] = True
    return _Border(image, rows[outside], cols[outside], values[outside])


def _perimeters(padded: np.ndarray, border: _Border, count: int) -> np.ndarray:
    """skimage.measure.perimeter(region, neighborhood=4) of every region 1..count at once: each
    border pixel coded by its border neighbours of the same region (1 itself, 2 per side, 10 per
    corner), and regionprops' weight per code. `padded`: the label image padded by one pixel of 0."""
    rows, cols, values = border.rows, border.cols, border.values
    padded_border, code = np.pad(border.image, 1), np.ones(len(rows), np.int64)
    at = _Neighbours(padded.shape, rows, cols)
    for offsets, weight in ((_SIDES, 2), (_CORNERS, 10)):
        for dy, dx in offsets:
            same = at(padded, dy, dx) == values
            code += weight * (at(padded_border, dy, dx) & same)
    return np.bincount(values.astype(np.intp), weights=_PERIMETER_WEIGHTS[code], minlength=count + 1)[1:]


def _hull_areas(labels: np.ndarray, border: _Border, count: int) -> np.ndarray:
    """Pixels in the convex hull of each region, as regionprops' area_convex counts them, from the
    hull of its pixel centres by Pick's theorem: a convex lattice polygon of area A and perimeter
    P holds about A + P / 2 + 1 lattice points; pixels all on one line, the line's own pixels (its
    longest side + 1). NaN for an id without pixels.

    All regions at once, without Qhull (one ConvexHull per region, called from Python, was a
    tenth of a slide tile's nuclei): a region's hull is the hull of its leftmost and rightmost
    border pixel in each row; its left side is the greatest convex minorant of the leftmost
    column as a function of the row, its right side the least concave majorant of the rightmost
    (_convex_chains). The same areas as scipy's ConvexHull to 1e-9 (tests/test_objects.py)."""
    rows, cols = border.rows, border.cols
    if not len(rows):
        return np.full(count, np.nan)
    row_key = border.values.astype(np.int64) * labels.shape[0] + rows  # region, then row
    order = np.argsort(row_key, kind="stable")  # by region, row, column
    row_key, cols = row_key[order], cols[order].astype(np.float64)
    first = np.flatnonzero(np.r_[True, row_key[1:] != row_key[:-1]])  # each region's rows
    last = np.r_[first[1:], len(row_key)] - 1
    region, row = np.divmod(row_key[first], labels.shape[0])
    row = row.astype(np.float64)
    left = _convex_chains(region, row, cols[first])
    right = _convex_chains(region, row, -cols[last])  # a concave majorant is a convex minorant, negated
    # Each region's polygon: down its left side, up its right side.
    vertex_region = np.concatenate([region[left], region[right]])
    vertex_row = np.concatenate([row[left], row[right]])
    going_up = np.r_[np.zeros(len(left), bool), np.ones(len(right), bool)]
    order = np.lexsort((np.where(going_up, -vertex_row, vertex_row), going_up, vertex_region))
    vertex_col = np.concatenate([cols[first][left], cols[last][right]])
    return _lattice_points(vertex_region[order], vertex_row[order], vertex_col[order], count)


def _lattice_points(region: np.ndarray, y: np.ndarray, x: np.ndarray, count: int) -> np.ndarray:
    """Pick's A + P / 2 + 1 of each region's convex polygon (its vertices in order, sorted by
    region); where the polygon is flat, its longest side + 1. NaN for a region without one."""
    starts = np.flatnonzero(np.r_[True, region[1:] != region[:-1]])
    following = np.arange(1, len(y) + 1)
    following[np.r_[starts[1:], len(y)] - 1] = starts  # each polygon closes on its first vertex
    twice_area = np.abs(np.add.reduceat(y * x[following] - y[following] * x, starts))
    perimeter = np.add.reduceat(np.hypot(y[following] - y, x[following] - x), starts)
    height = np.maximum.reduceat(y, starts) - np.minimum.reduceat(y, starts)
    width = np.maximum.reduceat(x, starts) - np.minimum.reduceat(x, starts)
    flat = np.isclose(twice_area, 0, atol=1e-9)
    areas = np.full(count, np.nan)
    areas[region[starts] - 1] = np.where(flat, np.maximum(height, width) + 1, twice_area / 2 + perimeter / 2 + 1)
    return areas


def _convex_chains(group: np.ndarray, t: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Indices of the points on each group's greatest convex minorant of value(t) (points sorted
    by group, then t): the points where the chain turns the wrong way (or goes straight) are
    dropped, all at once, until none is left. A vertex of the minorant is never dropped and the
    chain only sinks, so what is left is the minorant; a few rounds for round nuclei."""
    alive = np.arange(len(t))
    while True:
        g, tt, v = group[alive], t[alive], value[alive]
        middle = np.flatnonzero((g[1:-1] == g[:-2]) & (g[1:-1] == g[2:])) + 1
        before, after = middle - 1, middle + 1
        turn = (v[middle] - v[before]) * (tt[after] - tt[before]) - (v[after] - v[before]) * (tt[middle] - tt[before])
        dropped = middle[turn >= 0]  # on or above the line between its neighbours
        if not len(dropped):
            return alive
        alive = np.delete(alive, dropped)


def geojson_features(outlines: dict[int, list], table: pd.DataFrame) -> list[dict]:
    """A QuPath detection Feature per nucleus of `table`, its outline from `outlines`
    (nucleus_outlines) and its row as measurements."""
    features = []
    for row in table.round(4).to_dict("records"):
        index = int(row["id"])
        measurements = {k: v for k, v in row.items() if k not in ("centroid_x", "centroid_y")}
        measurements["id"] = index
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [outlines[index]]},
                "properties": {
                    "objectType": "detection",
                    "name": f"nucleus {index}",
                    "classification": NUCLEUS_CLASS,
                    "measurements": measurements,
                },
            }
        )
    return features


def feature_collection(features: list[dict]) -> dict:
    return {"type": "FeatureCollection", "features": features}


def write_label_image(labels: np.ndarray, path_without_suffix: Path) -> Path:
    """uint16 PNG where the ids fit, else a uint32 TIFF (written with tifffile)."""
    if labels.max(initial=0) <= np.iinfo(np.uint16).max:
        return write_png_atomic(
            path_without_suffix.with_name(path_without_suffix.name + ".png"), labels.astype(np.uint16)
        )
    import tifffile

    path = path_without_suffix.with_name(path_without_suffix.name + ".tif")
    return save_with(path, lambda p: tifffile.imwrite(p, labels.astype(np.uint32), compression="zlib"), suffix=".tif")


def write_nuclei(
    labels: np.ndarray,
    image: np.ndarray,
    nucleus_map: np.ndarray,
    out_dir: Path,
    stem: str,
    map_name: str = "mean_probability",
) -> dict[str, Path]:
    """`<stem>_label.png` (or .tif), `<stem>.geojson` and `<stem>_nuclei.csv`, each atomically."""
    out_dir = Path(out_dir)
    outlines = nucleus_outlines(labels)
    table = nuclei_table(labels, image, nucleus_map, map_name)
    geojson = feature_collection(geojson_features(outlines, table))
    return {
        "label": write_label_image(labels, out_dir / f"{stem}_label"),
        "geojson": write_text_atomic(out_dir / f"{stem}.geojson", json.dumps(geojson)),
        "table": write_text_atomic(out_dir / f"{stem}_nuclei.csv", table.to_csv(index=False)),
    }
