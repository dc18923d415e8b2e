"""Seconds per 1024 x 1024 tile of DIST's nuclei (dynamic watershed), whole-image h-maxima
against the h-maxima bounded per piece of the foreground, interleaved in one run, on the
shipped model's distance maps of TNBC tiles (four 2 x 2 mosaics of 512 x 512 crops).

    .venv/bin/python results/measured/speed/postprocess.py > results/measured/speed/postprocess.txt
"""

import json
import time

import numpy as np

from nucseg import pretrained
from nucseg.data.dataset import load_dataset
from nucseg.inference.engines import cpu_summary
from nucseg.inference.objects import nuclei_table, nucleus_outlines
from nucseg.inference.predict import load_predictor, predict_nucleus_map
from nucseg.postprocess.instances import distance_maxima, instances_from_distance

REPEATS = 5

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
           "nuclei (the default)": [], "outlines": [], "table": []}
for _ in range(REPEATS):
    for image, distance in zip(images, maps):
        start = time.perf_counter()
        whole = distance_maxima(distance, h)
        seconds["whole-image h-maxima"].append(time.perf_counter() - start)
        start = time.perf_counter()
        distance_maxima(distance, h, above=threshold)
        seconds["bounded h-maxima (the default)"].append(time.perf_counter() - start)
        start = time.perf_counter()
        instances_from_distance(distance, threshold, h, 30, maxima=distance_maxima(distance, h))
        seconds["nuclei, whole-image h-maxima"].append(time.perf_counter() - start)
        start = time.perf_counter()
        labels = instances_from_distance(distance, threshold, h, 30)
        seconds["nuclei (the default)"].append(time.perf_counter() - start)
        start = time.perf_counter()
        nucleus_outlines(labels)
        seconds["outlines"].append(time.perf_counter() - start)
        start = time.perf_counter()
        nuclei_table(labels, image, distance, "mean_distance")
        seconds["table"].append(time.perf_counter() - start)

print(f"CPU: {cpu_summary()}")
print(f"4 tiles of 1024 x 1024, {REPEATS} repeats, one core; threshold {threshold}, lambda {h}")
print("| step | median seconds per tile |")
print("|---|---:|")
for step, values in seconds.items():
    print(f"| {step} | {np.median(values):.3f} |")
