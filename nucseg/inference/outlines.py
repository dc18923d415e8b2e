"""Nuclei outlines: one closed polygon per nucleus of a label image, all nuclei traced at once.

The outline is skimage's `find_contours(mask, 0.5)` of the nucleus's mask (its longest contour:
the outer edge of its largest piece): marching squares, crossing each side of a 2 x 2 cell of
pixel centres half-way where one pixel is inside and the other outside, diagonal neighbours not
joined (find_contours' fully_connected="low"). Points in the middle of straight runs are
dropped (lossless). Coordinates are pixel corners: (0, 0) is the top-left corner of the top-left
pixel, so a pixel's centre is (col + 0.5, row + 0.5) and an outline runs half-way between
centres, on pixel edges and cutting corners.

Our own tracing rather than calling find_contours per nucleus: find_contours assembles each
contour in Python, a nucleus at a time, which took a quarter of a tile's nuclei time and 2.4
times as long as this (results/measured/speed/postprocess.txt). Here the cells' segments come
from one table lookup for the whole label image and are chained by a sort; only walking the
chains is a Python loop (one step per outline point). The same vertices as find_contours
(tested on real tiles in tests/test_objects.py); the ring may start elsewhere.
"""

from __future__ import annotations

import numpy as np

# Corners of a cell (its four pixel centres), clockwise from the top-left, in doubled
# coordinates (2 row, 2 col): pixel centres are even, the half-way crossings odd.
_CORNERS = np.array([(0, 0), (0, 2), (2, 2), (2, 0)])
_SIDES = (_CORNERS + np.roll(_CORNERS, -1, axis=0)) // 2  # side k joins corner k and k + 1


def _cell_segments() -> tuple[np.ndarray, np.ndarray]:
    """For each of the 16 cases (bit k: corner k inside), its segments as (start, end) offsets
    (2, 2) in doubled coordinates, the inside on the right of each (row down, col right); and how
    many there are (0 to 2). A saddle (two diagonal corners inside) cuts each inside corner off."""
    segments, counts = np.zeros((16, 2, 2, 2), np.int64), np.zeros(16, np.int64)
    for case in range(16):
        inside = [bool(case >> k & 1) for k in range(4)]
        crossed = [k for k in range(4) if inside[k] != inside[(k + 1) % 4]]
        if len(crossed) == 4:
            pairs = [((k - 1) % 4, k, [k]) for k in range(4) if inside[k]]
        elif len(crossed) == 2:
            pairs = [(crossed[0], crossed[1], [k for k in range(4) if inside[k]])]
        else:
            pairs = []
        for n, (side_a, side_b, corners) in enumerate(pairs):
            start, end = _SIDES[side_a], _SIDES[side_b]
            towards_inside = _CORNERS[corners].mean(axis=0) - (start + end) / 2
            d_row, d_col = end - start
            if np.dot([d_col, -d_row], towards_inside) < 0:  # the inside must be on the right
                start, end = end, start
            segments[case, n] = start, end
        counts[case] = len(pairs)
    return segments, counts


_SEGMENTS, _SEGMENT_COUNTS = _cell_segments()


def nucleus_outlines(
    labels: np.ndarray, top: float = 0, left: float = 0, scale: float = 1
) -> dict[int, list[list[float]]]:
    """{id: closed outline [[x, y], ..., first point again]} of every nucleus of a label image,
    in pixel-corner coordinates times `scale`, shifted by (left, top), rounded to 0.01."""
    padded = np.pad(np.asarray(labels).astype(np.int64, copy=False), 1)
    rows, cols, ids, cases = _boundary_cells(padded)
    if not len(ids):
        return {}
    starts, ends, owners = _segments(rows, cols, ids, cases)
    width = 2 * padded.shape[1]
    start_keys = owners * (2 * padded.shape[0] * width) + starts[:, 0] * width + starts[:, 1]
    end_keys = owners * (2 * padded.shape[0] * width) + ends[:, 0] * width + ends[:, 1]
    order = np.argsort(start_keys)
    following = order[np.searchsorted(start_keys[order], end_keys)]  # the segment each one leads to
    rings = sorted(_longest_rings(following, owners))
    lengths = np.array([len(ring) for _, ring in rings])
    points = starts[np.concatenate([ring for _, ring in rings])]
    kept = _turns(points, lengths)
    xy = np.round((points[kept][:, ::-1] / 2 - 0.5) * scale + (left, top), 2).tolist()  # doubled, padded -> corners
    counts = np.bincount(np.repeat(np.arange(len(rings)), lengths)[kept], minlength=len(rings)).tolist()
    outlines, first = {}, 0
    for (owner, _), count in zip(rings, counts):
        outlines[owner] = [*xy[first : first + count], xy[first]]
        first += count
    return outlines


def nucleus_polygon(mask: np.ndarray, top: int = 0, left: int = 0) -> list[list[float]]:
    """The closed outline of a binary mask (of its largest piece), as nucleus_outlines gives it."""
    return nucleus_outlines(np.asarray(mask, bool).astype(np.uint8), top, left)[1]


def _boundary_cells(padded: np.ndarray):
    """(row, col, id, case) of every cell that a nucleus's outline crosses, once per nucleus."""
    corners = [padded[:-1, :-1], padded[:-1, 1:], padded[1:, 1:], padded[1:, :-1]]  # clockwise from top-left
    crossed = np.nonzero((corners[0] != corners[1]) | (corners[1] != corners[2]) | (corners[2] != corners[3]))
    values = np.stack([corner[crossed] for corner in corners], axis=1)  # (cells, 4)
    found = []
    for k in range(4):
        ids = values[:, k]
        first = (ids > 0) & np.all(values[:, :k] != ids[:, None], axis=1)  # each id once per cell
        cases = ((values[first] == ids[first, None]) << np.arange(4)).sum(axis=1)
        found.append((crossed[0][first], crossed[1][first], ids[first], cases))
    return tuple(np.concatenate(parts) for parts in zip(*found))


def _segments(rows, cols, ids, cases):
    """Every segment's start and end (doubled coordinates) and its nucleus."""
    counts = _SEGMENT_COUNTS[cases]
    cell = np.repeat(np.arange(len(cases)), counts)
    nth = np.arange(len(cell)) - np.repeat(np.cumsum(counts) - counts, counts)
    origin = np.stack([2 * rows[cell], 2 * cols[cell]], axis=1)
    offsets = _SEGMENTS[cases[cell], nth]  # (segments, 2: start/end, 2: row/col)
    return origin + offsets[:, 0], origin + offsets[:, 1], ids[cell]


def _longest_rings(following: np.ndarray, owners: np.ndarray):
    """(id, segment indices in order) of each nucleus's longest closed chain of segments."""
    following, owners = following.tolist(), owners.tolist()
    seen = bytearray(len(following))
    longest: dict[int, list[int]] = {}
    for first in range(len(following)):
        if seen[first]:
            continue
        ring, index = [], first
        while not seen[index]:
            seen[index] = 1
            ring.append(index)
            index = following[index]
        owner = owners[first]
        if len(ring) > len(longest.get(owner, ())):
            longest[owner] = ring
    return longest.items()


def _turns(points: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Which points of the rings (concatenated; `lengths` points each) are where the ring's
    direction changes; all of a ring's points where fewer than 3 are."""
    ring_start = np.repeat(np.cumsum(lengths) - lengths, lengths)
    position = np.arange(len(points)) - ring_start
    before = ring_start + (position - 1) % np.repeat(lengths, lengths)
    after = ring_start + (position + 1) % np.repeat(lengths, lengths)
    step_in, step_out = points - points[before], points[after] - points
    turns = step_in[:, 0] * step_out[:, 1] != step_in[:, 1] * step_out[:, 0]  # integer coordinates: exact
    few = np.add.reduceat(turns, np.cumsum(lengths) - lengths) < 3
    return turns | np.repeat(few, lengths)
