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
from one table lookup for the whole label image, are chained by a sort and ordered along their
rings by pointer jumping, all in arrays. The same vertices as find_contours
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
    ids, points, lengths = outline_points(labels, top, left, scale)
    return outlines_by_id(ids, points.tolist(), lengths)


def outline_points(
    labels: np.ndarray, top: float = 0, left: float = 0, scale: float = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, points, lengths): nucleus_outlines as arrays. `points` (P, 2) holds every outline's
    (x, y) one after the other, ids[k]'s in lengths[k] rows (its first point again at its end);
    ids ascending."""
    padded = np.pad(np.asarray(labels), 1)  # its own integer type: a slide tile's uint16 is a quarter of int64's bytes
    rows, cols, ids, cases = _boundary_cells(padded)
    if not len(ids):
        return np.zeros(0, np.int64), np.zeros((0, 2)), np.zeros(0, np.int64)
    starts, ends, owners = _segments(rows, cols, ids.astype(np.int64), cases)
    width = 2 * padded.shape[1]
    start_keys = owners * (2 * padded.shape[0] * width) + starts[:, 0] * width + starts[:, 1]
    end_keys = owners * (2 * padded.shape[0] * width) + ends[:, 0] * width + ends[:, 1]
    order = np.argsort(start_keys)
    following = order[np.searchsorted(start_keys[order], end_keys)]  # the segment each one leads to
    ring_ids, in_order, lengths = _longest_rings(following, owners)
    points = starts[in_order]
    kept = _turns(points, lengths)
    xy = np.round((points[kept][:, ::-1] / 2 - 0.5) * scale + (left, top), 2)  # doubled, padded -> corners
    counts = np.bincount(np.repeat(np.arange(len(lengths)), lengths)[kept], minlength=len(lengths))
    ends_of_rings = np.cumsum(counts)
    closed = np.insert(xy, ends_of_rings, xy[ends_of_rings - counts], axis=0)  # each ring's first point again
    return ring_ids, closed, counts + 1


def outlines_by_id(ids: np.ndarray, points, lengths: np.ndarray) -> dict:
    """{id: its outline} from outline_points' (ids, points, lengths): slices of `points`, views of
    the array itself, or nucleus_outlines' [[x, y], ...] lists when given points.tolist()."""
    ends = np.cumsum(lengths).tolist()
    return {index: points[end - length : end] for index, end, length in zip(ids.tolist(), ends, lengths.tolist())}


def nucleus_polygon(mask: np.ndarray, top: int = 0, left: int = 0) -> list[list[float]]:
    """The closed outline of a binary mask (of its largest piece), as nucleus_outlines gives it."""
    return nucleus_outlines(np.asarray(mask, bool).astype(np.uint8), top, left)[1]


def _boundary_cells(padded: np.ndarray):
    """(row, col, id, case) of every cell that a nucleus's outline crosses, once per nucleus."""
    corners = [padded[:-1, :-1], padded[:-1, 1:], padded[1:, 1:], padded[1:, :-1]]  # clockwise from top-left
    cells = np.flatnonzero((corners[0] != corners[1]) | (corners[1] != corners[2]) | (corners[2] != corners[3]))
    row, col = np.divmod(cells, padded.shape[1] - 1)
    top_left = row * padded.shape[1] + col  # in padded.ravel(): by flat indices, a fifth of the time
    values = [np.take(padded.ravel(), top_left + offset) for offset in (0, 1, padded.shape[1] + 1, padded.shape[1])]
    # Which corners hold the same id, each pair compared once; corner k's case has bit j where
    # corner j holds corner k's id, and k's id is counted in the first corner that holds it.
    same = {}
    for k in range(4):
        for j in range(k):
            same[j, k] = same[k, j] = values[j] == values[k]
    found = []
    for k in range(4):
        case = np.full(len(cells), 1 << k, np.uint8)
        first = values[k] > 0
        for j in range(4):
            if j == k:
                continue
            case |= same[j, k].astype(np.uint8) << j
            if j < k:
                first &= ~same[j, k]
        found.append((row[first], col[first], values[k][first], case[first].astype(np.intp)))
    return tuple(np.concatenate(parts) for parts in zip(*found))


def _segments(rows, cols, ids, cases):
    """Every segment's start and end (doubled coordinates) and its nucleus."""
    counts = _SEGMENT_COUNTS[cases]
    cell = np.repeat(np.arange(len(cases)), counts)
    nth = np.arange(len(cell)) - np.repeat(np.cumsum(counts) - counts, counts)
    origin = np.stack([2 * rows[cell], 2 * cols[cell]], axis=1)
    offsets = _SEGMENTS[cases[cell], nth]  # (segments, 2: start/end, 2: row/col)
    return origin + offsets[:, 0], origin + offsets[:, 1], ids[cell]


def _longest_rings(following: np.ndarray, owners: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids ascending, segment indices of their rings one after the other, ring lengths): each
    nucleus's longest closed chain of segments (on a tie, the one holding the lowest segment
    index), starting at its lowest segment index.

    The chains are the cycles of `following`, found with arrays rather than walked a segment at a
    time in Python (which took 6 % of a slide tile's nuclei time): pointer jumping gives each
    segment its cycle's lowest index (`ring`) and its distance from it."""
    count = len(following)
    ring, jump = np.arange(count), following
    while True:  # ring[i]: the lowest index of i's next 2^k segments; stable once 2^k passes the cycle
        lower = np.minimum(ring, ring[jump])
        if np.array_equal(lower, ring):
            break
        ring, jump = lower, jump[jump]
    # Cut each cycle before its lowest index (into an end that leads to itself) and count each
    # segment's steps to the cut.
    end = count
    jump = np.append(np.where(following == ring, end, following), end)  # i leads to its cycle's lowest: cut
    to_end = (jump != end).astype(np.int64)
    while (jump[:-1] != end).any():
        to_end += to_end[jump]
        jump = jump[jump]
    length = np.bincount(ring, minlength=count)
    heads = np.flatnonzero(length)
    by_owner = np.lexsort((heads, -length[heads], owners[heads]))  # per owner: longest, then lowest index
    best = heads[by_owner][np.r_[True, np.diff(owners[heads][by_owner]) != 0]]
    chosen, offset = np.zeros(count, bool), np.zeros(count, np.int64)
    chosen[best] = True
    offset[best] = np.cumsum(length[best]) - length[best]  # where each chosen ring starts in the result
    members = np.flatnonzero(chosen[ring])
    in_order = np.empty(int(length[best].sum()), np.int64)
    in_order[offset[ring[members]] + length[ring[members]] - 1 - to_end[members]] = members
    return owners[best], in_order, length[best]


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
