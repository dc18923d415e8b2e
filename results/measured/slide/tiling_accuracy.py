"""Do the slide route's tiles change how well it finds nuclei? The shipped model over a mosaic
slide of a data set's annotated 512 x 512 crops (what `nucseg bench slide` times), its label image
(`run_slide(..., label_image=True)`) scored against the mosaic of the crops' own labels, crop by
crop (the scores' sums pooled over the crops, as the study pools a patient's tiles). Two tilings
of the same slide: tiles fitted to the region (`nucseg.inference.tiles.fitted_tile`, the
default), and tiles of exactly `--tile` as before, the last one moved back over its neighbour
(`fitted_tile` replaced here by one that returns `--tile`).

The shipped model was trained on these data sets, so the scores are in-sample: they compare one
tiling with the other, not the model with others.

    .venv/bin/python results/measured/slide/tiling_accuracy.py > results/measured/slide/tiling_accuracy.txt
"""

import contextlib
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import tifffile

from nucseg import pretrained
from nucseg.bench.slide import mosaic_crop, mosaic_tile, write_mosaic_slide
from nucseg.data.dataset import load_dataset
from nucseg.hardware import cpu_summary
from nucseg.inference.predict import usable_model
from nucseg.inference.slide import run_slide
from nucseg.inference.tiles import fitted_tile
from nucseg.metrics import ObjectCounts, PixelCounts, all_scores, object_counts, pixel_counts

SIDE, TILE, OVERLAP = 4096, 1024, 128
DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"


def label_mosaic(tiles) -> np.ndarray:
    """The labels of the mosaic `write_mosaic_slide` makes (its crops placed by
    `bench.slide.mosaic_tile`), each block's nuclei numbered apart from the others'."""
    mosaic, offset, side = np.zeros((SIDE, SIDE), np.int64), 0, mosaic_crop(tiles)
    for by in range(0, SIDE, side):
        for bx in range(0, SIDE, side):
            crop = tiles[mosaic_tile(by // side, bx // side, len(tiles))].label[:side, :side].astype(np.int64)
            crop = crop[: SIDE - by, : SIDE - bx]
            mosaic[by : by + side, bx : bx + side] = np.where(crop > 0, crop + offset, 0)
            offset += int(crop.max()) + 1
    return mosaic


def pooled_scores(predicted: np.ndarray, truth: np.ndarray, side: int) -> dict:
    """Scores of the mosaic's blocks (each one of the data set's crops, `side` pixels), their counts summed."""
    pixels, objects = PixelCounts(), ObjectCounts()
    for by in range(0, SIDE, side):
        for bx in range(0, SIDE, side):
            window = (slice(by, by + side), slice(bx, bx + side))
            pixels = pixels + pixel_counts(predicted[window], truth[window])
            objects = objects + object_counts(predicted[window], truth[window])
    return all_scores(pixels, objects)


def main() -> None:
    model = usable_model(pretrained.path() / "model.keras", precision="auto", engine="auto")
    print(f"{cpu_summary()}; {model.runs_as}")
    print(f"mosaic {SIDE} x {SIDE} of each set's 512 x 512 crops; --tile {TILE} --overlap {OVERLAP}; in-sample model")
    print("| data | tiling | tile side | nuclei | F1 | AJI | object F1 | PQ |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    exactly = {"fitted": fitted_tile(SIDE, SIDE, TILE, OVERLAP), "exactly --tile": TILE}
    for name in ("tnbc", "tcga_glioma"):
        tiles = load_dataset(DATA / name)  # as `nucseg bench slide --data` loads them
        truth = label_mosaic(tiles)
        with tempfile.TemporaryDirectory() as work:
            slide = write_mosaic_slide(Path(work) / "mosaic.tif", tiles, SIDE)
            for tiling, side in exactly.items():
                out = Path(work) / tiling.replace(" ", "_")
                before = mock.patch("nucseg.inference.slide.fitted_tile", lambda width, height, tile, overlap: tile)
                with contextlib.nullcontext() if tiling == "fitted" else before:
                    summary = run_slide(
                        model.predictor, model.config, slide, out, TILE, OVERLAP, verbose=0, label_image=True
                    )
                predicted = tifffile.imread(out / "labels.tif").astype(np.int64)
                assert predicted.shape == truth.shape, predicted.shape
                s = pooled_scores(predicted, truth, mosaic_crop(tiles))
                print(
                    f"| {name} | {tiling} | {side} | {summary['nuclei']} | {s['f1']:.4f} | {s['aji']:.4f} | "
                    f"{s['object_f1']:.4f} | {s['pq']:.4f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
