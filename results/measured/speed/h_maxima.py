"""The dynamic watershed's markers on real distance maps: nucseg's h-maxima from the maxima's
dynamics (nucseg.postprocess.dynamics, twelfth round) against scikit-image's h_maxima of each
piece alone (what nucseg called before), pixel for pixel and in seconds, interleaved in one run.

Maps: both shipped models on the first 8 tiles of each of the four data sets, post-processed at
the model's own (threshold, lambda) and at three other settings. The pieces are those the
dynamic watershed hands to the h-maxima: the foreground's 8-connected pieces (holes filled)
with two local-maximum plateaus or more.

    .venv/bin/python results/measured/speed/h_maxima.py > results/measured/speed/h_maxima.txt
"""

import json
import time

import numpy as np
from scipy import ndimage
from skimage.morphology import h_maxima

from nucseg import pretrained
from nucseg.data.dataset import load_dataset
from nucseg.hardware import cpu_summary
from nucseg.inference.predict import load_predictor, predict_nucleus_map
from nucseg.postprocess.dynamics import piece_h_maxima
from nucseg.postprocess.instances import fill_holes, max_of_3x3

SETS = ["tnbc", "tcga_glioma", "consep", "monuseg_train"]
EIGHT = np.ones((3, 3), bool)


def pieces_with_several_maxima(distance, threshold):
    pieces, count = ndimage.label(fill_holes(distance > threshold), structure=EIGHT)
    top = (distance == max_of_3x3(distance)) & (pieces > 0)
    plateaus, n_plateaus = ndimage.label(top, structure=EIGHT)
    piece_of_plateau = np.zeros(n_plateaus + 1, np.int64)
    piece_of_plateau[plateaus[top]] = pieces[top]
    return pieces, np.flatnonzero(np.bincount(piece_of_plateau[1:], minlength=count + 1) > 1)


def skimage_per_piece(distance, h, pieces, which):
    maxima = np.zeros(distance.shape, bool)
    boxes = ndimage.find_objects(pieces)
    for piece in which:
        inside = pieces[boxes[piece - 1]] == piece
        crop = np.where(inside, distance[boxes[piece - 1]], np.float32(-1))
        maxima[boxes[piece - 1]] |= h_maxima(crop, np.float32(h)).astype(bool) & inside
    return maxima


print(f"CPU: {cpu_summary()}; one core")
print(
    "| model | data set | maps x settings | pieces | marker pixels | differing pixels | skimage per piece, s/Mpx | dynamics, s/Mpx |"
)
print("|---|---|---:|---:|---:|---:|---:|---:|")
for name in pretrained.available():
    model_file = pretrained.model_file(name)
    predictor = load_predictor(model_file)
    chosen = json.loads((model_file.parent / "postprocess.json").read_text())
    settings = [(chosen["dist_threshold"], chosen["dist_lambda"]), (0.5, 2.0), (2.0, 0.5), (1.0, 3.0)]
    for data in SETS:
        tiles = load_dataset(f"../shared/data/{data}")[:8]
        maps = [np.maximum(predict_nucleus_map(predictor, t.image, tile=1024, overlap=0), 0) for t in tiles]
        n_pieces = pixels = differ = 0
        seconds = {"skimage": 0.0, "dynamics": 0.0}
        for distance in maps:
            for threshold, h in settings:
                pieces, which = pieces_with_several_maxima(distance, threshold)
                start = time.perf_counter()
                expected = skimage_per_piece(distance, h, pieces, which)
                middle = time.perf_counter()
                found = piece_h_maxima(distance, h, pieces, which)
                seconds["skimage"] += middle - start
                seconds["dynamics"] += time.perf_counter() - middle
                n_pieces, pixels, differ = (
                    n_pieces + len(which),
                    pixels + int(expected.sum()),
                    differ + int((expected != found).sum()),
                )
        megapixels = sum(m.size for m in maps) * len(settings) / 1e6
        print(
            f"| {name} | {data} | {len(maps)} x {len(settings)} | {n_pieces} | {pixels} | {differ} | "
            f"{seconds['skimage'] / megapixels:.3f} | {seconds['dynamics'] / megapixels:.3f} |"
        )
