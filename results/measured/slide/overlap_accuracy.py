"""How much overlap do the slide route's tiles need? Two measures, on the four annotated sets:

1. How far a nucleus reaches from its centroid (the annotations, at the model's resolution). The
   slide route keeps a nucleus whole when it reaches less than half the overlap from its centroid
   (`nucseg.inference.tiles`: its centroid in a tile's core, none of its pixels on the tile's edge).
   From each annotated nucleus's reach up, down, left and right, the share of such nuclei a slide
   would lose, their centroids falling anywhere in a core of 1024 - overlap pixels: along an axis a
   nucleus is cut where its centroid lies closer to the core's side than its reach that way, less
   half the overlap. And the share no tile could keep whole under any rule of which tile keeps it
   (a rule that lets a neighbour keep a nucleus its owner cuts): along an axis, a nucleus fits in
   no tile where it reaches past both ends of an overlap.
2. The default model over a 4096 x 4096 mosaic of each set's annotated crops (what `nucseg bench
   slide` times), its label image scored against the mosaic of the crops' labels crop by crop, as
   `tiling_accuracy.py` does (crops of 512 x 512, CoNSeP's 256 x 256), with `--overlap` 128 (the
   default), 96 and 64. A smaller overlap also
   gives the net less context beyond a tile's core; this scores both effects together. The nuclei
   the route counts as cut (they touch a tile's edge inside the region) come from its summary.

The shipped model was trained on these sets, so the scores are in-sample: they compare one overlap
with another, not the model with others.

    .venv/bin/python results/measured/slide/overlap_accuracy.py > results/measured/slide/overlap_accuracy.txt
"""

import tempfile
from pathlib import Path

import numpy as np
import tifffile

from nucseg import pretrained
from nucseg.bench.slide import mosaic_crop, write_mosaic_slide
from nucseg.data.dataset import load_dataset
from nucseg.hardware import cpu_summary
from nucseg.inference.predict import usable_model
from nucseg.inference.slide import run_slide
from nucseg.inference.tiles import fitted_tile

from tiling_accuracy import DATA, SIDE, TILE, label_mosaic, pooled_scores  # noqa: I001 (beside this file)

SETS = ("tnbc", "tcga_glioma", "consep", "monuseg_train")
OVERLAPS = (128, 96, 64)


def reaches(label: np.ndarray) -> np.ndarray:
    """(N, 5): each nucleus's largest distance from its centroid to one of its pixels, and how far
    its pixels reach from the centroid up, down, left and right (pixels)."""
    ys, xs = np.nonzero(label)
    order = np.argsort(label[ys, xs], kind="stable")
    ys, xs = ys[order], xs[order]
    _, starts, counts = np.unique(label[ys, xs], return_index=True, return_counts=True)
    cy, cx = np.add.reduceat(ys, starts) / counts, np.add.reduceat(xs, starts) / counts
    dy, dx = ys - np.repeat(cy, counts), xs - np.repeat(cx, counts)
    largest = np.maximum.reduceat(np.hypot(dy, dx), starts)
    up, down = -np.minimum.reduceat(dy, starts), np.maximum.reduceat(dy, starts)
    left, right = -np.minimum.reduceat(dx, starts), np.maximum.reduceat(dx, starts)
    return np.stack([largest, up, down, left, right], axis=1)


def share_lost(positions: list[np.ndarray], core: int) -> float:
    """The mean over nuclei of the chance that a centroid placed anywhere in a core of `core` x
    `core` pixels falls where it is lost along either axis, given each nucleus's number of such
    positions along rows and along columns."""
    rows, cols = (np.minimum(p / core, 1) for p in positions)
    return float(np.mean(1 - (1 - rows) * (1 - cols)))


AXES = ((1, 2), (3, 4))  # reach's (up, down) and (left, right) columns


def expected_cut(reach: np.ndarray, overlap: int, tile: int = 1024) -> float:
    """The share of the nuclei that tiles of `tile` overlapping by `overlap` would cut, each
    nucleus's centroid placed anywhere in a core (see the module's text)."""
    half = overlap / 2
    return share_lost(
        [np.clip(reach[:, a] - half, 0, None) + np.clip(reach[:, b] - half, 0, None) for a, b in AXES], tile - overlap
    )


def uncoverable(reach: np.ndarray, overlap: int, tile: int = 1024) -> float:
    """The share of the nuclei that fit in no tile whole (see the module's text): along an axis, a
    nucleus of w = up + down + 1 pixels reaches past both ends of an overlap of `overlap` rows in
    w - overlap - 1 of the core's positions. Never more than `expected_cut`."""
    return share_lost([np.clip(reach[:, a] + reach[:, b] - overlap, 0, None) for a, b in AXES], tile - overlap)


def main() -> None:
    model = usable_model(pretrained.path() / "model.keras", precision="auto", engine="auto")
    print(f"{cpu_summary()}; {model.runs_as}; model {pretrained.DEFAULT}, {model.config.mpp} microns a pixel")
    print()
    print("## 1. How far the annotated nuclei reach from their centroids (pixels at the model's resolution)")
    print()
    print(
        "| data | nuclei | median | 99th percentile | 99.9th | largest | reaching 32 or more | 48 or more | "
        + " | ".join(f"cut in 100,000 at --overlap {overlap}" for overlap in OVERLAPS)
        + " | "
        + " | ".join(f"in no tile whole at {overlap}" for overlap in OVERLAPS)
        + " |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|" + "---:|" * 2 * len(OVERLAPS))
    loaded = {}
    for name in SETS:
        tiles = load_dataset(DATA / name, mpp=model.config.mpp)
        loaded[name] = tiles
        # A nucleus touching its crop's edge is cut by the crop: its reach is not its own.
        whole = []
        for tile in tiles:
            label = tile.label
            edge = np.unique(np.concatenate([label[0], label[-1], label[:, 0], label[:, -1]]))
            label = np.where(np.isin(label, edge), 0, label)
            whole.append(reaches(label))
        reach = np.concatenate(whole)
        r = reach[:, 0]
        cuts = " | ".join(f"{1e5 * expected_cut(reach, overlap):.1f}" for overlap in OVERLAPS)
        cuts += " | " + " | ".join(f"{1e5 * uncoverable(reach, overlap):.1f}" for overlap in OVERLAPS)
        print(
            f"| {name} | {len(r)} | {np.median(r):.1f} | {np.percentile(r, 99):.1f} | {np.percentile(r, 99.9):.1f} "
            f"| {r.max():.1f} | {(r >= 32).sum()} | {(r >= 48).sum()} | {cuts} |",
            flush=True,
        )
    print()
    print(f"## 2. The label image of a {SIDE} x {SIDE} mosaic of each set's crops, --tile {TILE}, scored")
    print()
    print("| data | --overlap | tile side | tiles | nuclei | cut | F1 | AJI | object F1 | PQ |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in SETS:
        tiles = loaded[name]
        truth = label_mosaic(tiles)
        with tempfile.TemporaryDirectory() as work:
            slide = write_mosaic_slide(Path(work) / "mosaic.tif", tiles, SIDE)
            for overlap in OVERLAPS:
                out = Path(work) / f"overlap_{overlap}"
                summary = run_slide(
                    model.predictor, model.config, slide, out, TILE, overlap, verbose=0, label_image=True
                )
                predicted = tifffile.imread(out / "labels.tif").astype(np.int64)
                assert predicted.shape == truth.shape, predicted.shape
                s = pooled_scores(predicted, truth, mosaic_crop(tiles))
                side = fitted_tile(SIDE, SIDE, TILE, overlap)
                print(
                    f"| {name} | {overlap} | {side} | {summary['tiles']} | {summary['nuclei']} | {summary['cut']} "
                    f"| {s['f1']:.4f} | {s['aji']:.4f} | {s['object_f1']:.4f} | {s['pq']:.4f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
