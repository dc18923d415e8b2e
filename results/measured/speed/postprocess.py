"""Seconds per 1024 x 1024 tile of DIST's nuclei (dynamic watershed), whole-image h-maxima
against the h-maxima bounded per piece of the foreground, and the outlines traced all at once
against skimage's find_contours per nucleus (what nucseg did before), interleaved in one run, on
the shipped model's distance maps of TNBC tiles (four 2 x 2 mosaics of 512 x 512 crops).

    .venv/bin/python results/measured/speed/postprocess.py > results/measured/speed/postprocess.txt
"""

import json
import time

import numpy as np
from scipy import ndimage
from skimage.measure import find_contours
from skimage.morphology import h_maxima

from nucseg import pretrained
from nucseg.data.dataset import load_dataset
from nucseg.hardware import cpu_summary
from nucseg.inference.objects import nuclei_table, nucleus_outlines
from nucseg.inference.predict import load_predictor, predict_nucleus_map
from nucseg.postprocess.instances import distance_maxima, instances_from_distance

REPEATS = 5


def whole_image_maxima(distance, h):
    """skimage's h-maxima of the whole map: what distance_maxima gave without `above` (before the
    choice of post-processing took the bounded ones too)."""
    return h_maxima(np.maximum(np.asarray(distance, np.float32), 0), np.float32(h)).astype(bool)


def outlines_per_nucleus(labels):
    """The outlines as nucseg traced them before (045412c's objects.nucleus_outlines): find_contours
    of each nucleus's mask, its points where the direction changes, as [[x, y], ...]."""
    outlines = {}
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        contour = max(find_contours(np.pad(labels[box] == index, 1).astype(np.float32), 0.5), key=len)
        contour = contour[:-1] if np.array_equal(contour[0], contour[-1]) else contour
        step_in, step_out = contour - np.roll(contour, 1, axis=0), np.roll(contour, -1, axis=0) - contour
        turns = np.abs(step_in[:, 0] * step_out[:, 1] - step_in[:, 1] * step_out[:, 0]) > 1e-9
        contour = contour[turns] if turns.sum() >= 3 else contour
        xy = np.round(contour[:, ::-1] - 0.5 + (box[1].start, box[0].start), 2)
        outlines[index] = [*xy.tolist(), xy[0].tolist()]
    return outlines


tiles = load_dataset("../shared/data/tnbc")
predictor = load_predictor(pretrained.resolve(None))
chosen = json.loads((pretrained.model_file(pretrained.DEFAULT).parent / "postprocess.json").read_text())
threshold, h = chosen["dist_threshold"], chosen["dist_lambda"]
images, maps = [], []
for k in range(4):
    four = [tiles[4 * k + i].image[:512, :512] for i in range(4)]
    image = np.concatenate([np.concatenate(four[:2], 1), np.concatenate(four[2:], 1)], 0)
    images.append(image)
    maps.append(predict_nucleus_map(predictor, image, tile=1024, overlap=0))

seconds = {"whole-image h-maxima": [], "bounded h-maxima (the default)": [], "nuclei, whole-image h-maxima": [],
           "nuclei (the default)": [], "outlines, find_contours per nucleus (before)": [],
           "outlines, all at once (the default)": [], "table": []}
for _ in range(REPEATS):
    for image, distance in zip(images, maps):
        start = time.perf_counter()
        whole_image_maxima(distance, h)
        seconds["whole-image h-maxima"].append(time.perf_counter() - start)
        start = time.perf_counter()
        distance_maxima(distance, h, above=threshold)
        seconds["bounded h-maxima (the default)"].append(time.perf_counter() - start)
        start = time.perf_counter()
        instances_from_distance(distance, threshold, h, 30, maxima=whole_image_maxima(distance, h))
        seconds["nuclei, whole-image h-maxima"].append(time.perf_counter() - start)
        start = time.perf_counter()
        labels = instances_from_distance(distance, threshold, h, 30)
        seconds["nuclei (the default)"].append(time.perf_counter() - start)
        start = time.perf_counter()
        outlines_per_nucleus(labels)
        seconds["outlines, find_contours per nucleus (before)"].append(time.perf_counter() - start)
        start = time.perf_counter()
        nucleus_outlines(labels)
        seconds["outlines, all at once (the default)"].append(time.perf_counter() - start)
        start = time.perf_counter()
        nuclei_table(labels, image, distance, "mean_distance")
        seconds["table"].append(time.perf_counter() - start)

print(f"CPU: {cpu_summary()}")
print(f"4 tiles of 1024 x 1024, {REPEATS} repeats, one core; threshold {threshold}, lambda {h}")
print("| step | median seconds per tile |")
print("|---|---:|")
for step, values in seconds.items():
    print(f"| {step} | {np.median(values):.3f} |")
