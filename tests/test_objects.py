"""Nuclei as objects: label image, GeoJSON polygons (QuPath's layout) and the per-nucleus table."""

import json

import numpy as np
import pandas as pd
from PIL import Image
from skimage.draw import polygon2mask

from nucseg.inference.objects import TABLE_COLUMNS, nucleus_polygon, write_label_image, write_nuclei
from conftest import blob_label


def rasterise(points, shape):
    """Pixels whose centres lie inside a polygon in pixel-corner coordinates."""
    xy = np.asarray(points)
    return polygon2mask(shape, np.stack([xy[:, 1] - 0.5, xy[:, 0] - 0.5], axis=1))


def test_polygons_cover_the_nuclei_of_the_label_image(tmp_path):
    label = blob_label(96, centres=((20, 20), (20, 34), (60, 70), (90, 5)), radius=9)  # the last one is cut by the edge
    image = np.full((96, 96, 3), 200, np.uint8)
    image[label > 0] = (80, 40, 140)
    written = write_nuclei(label, image, (label > 0).astype(np.float32), tmp_path, "tile")
    collection = json.loads(written["geojson"].read_text())
    assert collection["type"] == "FeatureCollection" and len(collection["features"]) == 4
    for feature in collection["features"]:
        assert feature["properties"]["objectType"] == "detection"
        assert feature["properties"]["classification"]["name"] == "Nucleus"
        ring = feature["geometry"]["coordinates"][0]
        assert feature["geometry"]["type"] == "Polygon" and ring[0] == ring[-1]
        nucleus = int(feature["properties"]["measurements"]["id"])
        truth, drawn = label == nucleus, rasterise(ring, label.shape)
        assert (truth & drawn).sum() / (truth | drawn).sum() > 0.9, nucleus

    table = pd.read_csv(written["table"])
    assert list(table.columns) == TABLE_COLUMNS + ["mean_probability"]
    assert list(table["id"]) == [1, 2, 3, 4]
    assert table.loc[2, "centroid_x"] == 70.5 and table.loc[2, "centroid_y"] == 60.5  # pixel (60, 70)'s centre
    assert (table["mean_probability"] == 1.0).all() and (table["solidity"] > 0.9).all()
    assert (table["area"] == [np.sum(label == k) for k in range(1, 5)]).all()
    assert np.array_equal(np.asarray(Image.open(written["label"])), label)


def test_polygon_is_placed_in_full_image_coordinates():
    mask = np.ones((2, 3), bool)
    ring = nucleus_polygon(mask, top=10, left=100)
    xs, ys = [p[0] for p in ring], [p[1] for p in ring]
    assert min(xs) == 100 and max(xs) == 103 and min(ys) == 10 and max(ys) == 12


def test_outlines_have_the_vertices_of_skimages_find_contours(glioma_tiles):
    from skimage.measure import find_contours

    from nucseg.inference.objects import nucleus_outlines

    def cyclic(points):  # a ring without its closing point, from its smallest point
        points = [tuple(p) for p in points]
        first = points.index(min(points))
        return points[first:] + points[:first]

    checked = 0
    for tile in glioma_tiles[:4]:  # real nuclei, touching ones among them
        outlines = nucleus_outlines(tile.label, top=3, left=5)
        assert sorted(outlines) == [int(k) for k in np.unique(tile.label) if k]
        for index, ring in outlines.items():
            contour = max(find_contours(np.pad(tile.label == index, 1).astype(np.float32), 0.5), key=len)[:-1]
            turns = np.cross(contour - np.roll(contour, 1, 0), np.roll(contour, -1, 0) - contour) != 0
            expected = contour[turns] if turns.sum() >= 3 else contour
            assert ring[0] == ring[-1]
            assert cyclic(ring[:-1]) == cyclic(expected[:, ::-1] - 0.5 + (5, 3)), index
            checked += 1
        scaled = nucleus_outlines(tile.label, top=30, left=50, scale=2.5)  # a slide's level-0 pixels
        for index, ring in outlines.items():
            expected = np.round((np.asarray(ring) - (5, 3)) * 2.5 + (50, 30), 2)
            assert np.array_equal(scaled[index], expected), index
    assert checked > 100


def test_a_nucleus_in_pieces_or_with_a_hole_is_outlined_by_its_longest_ring():
    """The longest closed ring of each nucleus, as find_contours' longest contour: the larger of
    two pieces, the outer edge around a hole; and the same points as outline_points' arrays."""
    from nucseg.inference.outlines import nucleus_outlines, outline_points

    label = np.zeros((20, 30), np.int32)
    label[2:5, 2:5] = 1  # nucleus 1: a small piece first (its ring holds the lowest segments) ...
    label[8:15, 3:9] = 1  # ... and a larger one
    label[3:14, 14:25] = 2  # nucleus 2: a square with a hole
    label[6:10, 18:21] = 0
    label[15:18, 20:23] = 3
    outlines = nucleus_outlines(label)
    alone = label.copy()
    alone[2:5, 2:5] = 0
    assert outlines[1] == nucleus_polygon(alone == 1)
    filled = label == 2
    filled[6:10, 18:21] = True
    assert outlines[2] == nucleus_polygon(filled)
    assert outlines[3] == nucleus_polygon(label == 3)
    ids, points, lengths = outline_points(label)
    assert ids.tolist() == [1, 2, 3]
    rings = [points[end - n : end].tolist() for end, n in zip(np.cumsum(lengths), lengths)]
    assert rings == [outlines[k] for k in (1, 2, 3)]


def test_pixels_of_the_kept_nuclei_are_nucleus_pixels_of_their_label_image(glioma_tiles):
    from nucseg.labels import kept_pixels, nucleus_pixels

    label = glioma_tiles[0].label
    rng = np.random.default_rng(0)
    for keep_fraction in (0.5, 0.0, 1.0):
        keep = rng.uniform(size=int(label.max()) + 1) < keep_fraction
        keep[0] = False
        expected = nucleus_pixels(np.where(keep[label], label, 0))
        found = kept_pixels(nucleus_pixels(label), keep)
        assert all(np.array_equal(a, b) for a, b in zip(found, expected)), keep_fraction


def test_more_than_65535_nuclei_go_to_a_32_bit_tiff(tmp_path):
    import tifffile

    labels = np.arange(70000, dtype=np.uint32).reshape(280, 250)
    path = write_label_image(labels, tmp_path / "big_label")
    assert path.suffix == ".tif" and np.array_equal(tifffile.imread(path), labels)


def test_table_measures_real_nuclei_as_regionprops_does(glioma_tiles):
    """The table measures all nuclei at once; on annotated tiles it gives regionprops' centroid,
    area, perimeter, eccentricity and mean intensity, and its solidity to within 2.5 %."""
    from skimage.measure import regionprops_table
    from skimage.segmentation import relabel_sequential

    from nucseg.inference.baseline import hematoxylin
    from nucseg.inference.objects import nuclei_table

    tile = glioma_tiles[0]
    label = relabel_sequential(tile.label.astype(np.int64))[0]
    ours = nuclei_table(label, tile.image)
    theirs = regionprops_table(label, intensity_image=hematoxylin(tile.image),
                               properties=("label", "centroid", "area", "perimeter", "eccentricity", "solidity",
                                           "intensity_mean"))
    assert len(ours) == label.max() > 50 and list(ours["id"]) == list(theirs["label"])
    pairs = {"centroid_y": theirs["centroid-0"] + 0.5, "centroid_x": theirs["centroid-1"] + 0.5, "area": theirs["area"],
             "perimeter": theirs["perimeter"], "eccentricity": theirs["eccentricity"],
             "mean_hematoxylin_od": theirs["intensity_mean"]}
    for column, expected in pairs.items():
        np.testing.assert_allclose(ours[column], expected, rtol=1e-9, atol=1e-9, err_msg=column)
    ratio = ours["solidity"] / theirs["solidity"]  # its hull's pixels counted by Pick's theorem
    assert abs(np.median(ratio) - 1) < 0.003 and np.abs(ratio - 1).max() < 0.025


def hull_areas_by_qhull(labels, border, count):
    """What nuclei_table counted before: scipy's ConvexHull of each region's border pixel centres,
    A + P / 2 + 1 (Pick), the longest side + 1 for pixels on one line."""
    from scipy.spatial import ConvexHull, QhullError

    areas = np.full(count, np.nan)
    for index in range(1, count + 1):
        points = np.argwhere(border & (labels == index)).astype(np.float64)
        if len(points):
            try:
                hull = ConvexHull(points)
                areas[index - 1] = hull.volume + hull.area / 2 + 1
            except QhullError:
                areas[index - 1] = np.ptp(points, axis=0).max() + 1
    return areas


def test_hull_areas_of_all_regions_at_once_are_qhulls(glioma_tiles):
    """The convex hulls of all regions at once give scipy's (Qhull's) areas and perimeters, on
    annotated nuclei and on the shapes a hull can degenerate to (a pixel, lines, an L, a gap)."""
    from nucseg.inference.objects import _border, _hull_areas
    from nucseg.labels import nucleus_pixels

    shapes = np.zeros((40, 40), np.int64)
    shapes[2, 2] = 1  # one pixel
    shapes[5, 3:12] = 2  # a row
    shapes[8:20, 1] = 3  # a column
    shapes[np.arange(22, 32), np.arange(3, 13)] = 4  # a diagonal: 8-connected only
    shapes[10:20, 20] = shapes[19, 20:30] = 5  # an L
    shapes[25:30, 20:24] = shapes[25:30, 30:35] = 6  # two blocks, one id
    images = [shapes] + [tile.label.astype(np.int64) for tile in glioma_tiles[:3]]
    for labels in images:
        count = int(labels.max())
        border = _border(np.pad(labels, 1), *nucleus_pixels(labels)[:3])
        np.testing.assert_array_equal(np.stack(np.nonzero(border.image)), np.stack([border.rows, border.cols]))
        np.testing.assert_allclose(_hull_areas(labels, border, count),
                                   hull_areas_by_qhull(labels, border.image, count), rtol=1e-9, atol=1e-9)


def test_hematoxylin_by_lookup_table_is_skimages_rgb2hed(glioma_tiles):
    """The uint8 route (a table per channel) gives rgb2hed's hematoxylin channel but for round-off,
    on real tiles and on every grey level; other dtypes go through rgb2hed itself."""
    from skimage.color import rgb2hed

    from nucseg.inference.baseline import hematoxylin

    grey = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)
    for image in [tile.image for tile in glioma_tiles[:4]] + [grey]:
        assert image.dtype == np.uint8
        np.testing.assert_allclose(hematoxylin(image), rgb2hed(image)[..., 0], rtol=1e-12, atol=1e-12)
    as_float = glioma_tiles[0].image / 255.0
    np.testing.assert_array_equal(hematoxylin(as_float), rgb2hed(as_float)[..., 0])
