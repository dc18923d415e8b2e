"""Seconds of a DIST fold's choice of post-processing (nucseg.postprocess.tuning.choose_postprocess:
the grid's 5 distance thresholds x 4 lambdas, pooled AJI over 16 training tiles), with the
h-maxima found three ways, interleaved in one run, on the shipped model's distance maps of the 16
TNBC tiles the fold of patient_01 chooses on:

- skimage's h-maxima of the whole map, once per (map, lambda) (what the choice did before);
- the bounded h-maxima of each threshold's own pieces, at every setting (what prediction does);
- the bounded h-maxima of the pieces at the grid's lowest threshold, once per (map, lambda) (now).

It checks that the three give the same pooled AJI at every setting.

    .venv/bin/python results/measured/speed/choice.py > results/measured/speed/choice.txt
"""

import itertools
import time

import numpy as np
from skimage.morphology import h_maxima

from nucseg import pretrained
from nucseg.config import Config
from nucseg.data.dataset import load_dataset
from nucseg.hardware import cpu_summary
from nucseg.inference.predict import load_predictor, predict_nucleus_map
from nucseg.metrics import ObjectCounts, object_counts
from nucseg.postprocess.instances import distance_maxima, instances_from_distance
from nucseg.postprocess.kinds import kind_of
from nucseg.postprocess.tuning import spread

REPEATS = 2

tiles = spread([t for t in load_dataset("../shared/data/tnbc") if t.patient != "patient_01"])
predictor = load_predictor(pretrained.resolve(None))
maps = [predict_nucleus_map(predictor, t.image) for t in tiles]
labels = [t.label for t in tiles]
config = Config.from_profile("cpu", arch="dist")
grid = kind_of(config).grid
lowest = min(grid["dist_threshold"])


def whole_image(distance, h, threshold):
    return h_maxima(np.maximum(distance, 0), np.float32(h)).astype(bool)


def at_lowest(distance, h, threshold):
    return distance_maxima(distance, h, above=lowest)


def choice(maxima_of):
    """{(threshold, lambda): pooled AJI}, the maxima from maxima_of (None: each threshold's own)."""
    cache, ajis = {}, {}
    for threshold, h in itertools.product(*grid.values()):
        counts = ObjectCounts()
        for index, (distance, label) in enumerate(zip(maps, labels)):
            maxima = None
            if maxima_of is not None:
                if (index, h) not in cache:
                    cache[index, h] = maxima_of(distance, h, threshold)
                maxima = cache[index, h]
            nuclei = instances_from_distance(distance, threshold, h, config.min_object_size, maxima)
            counts += object_counts(nuclei, label)
        ajis[threshold, h] = counts.scores()["aji"]
    return ajis


ways = {
    "skimage's h-maxima of the whole map, once per (map, lambda) (before)": whole_image,
    "bounded h-maxima of each threshold's pieces, every setting (as prediction)": None,
    "bounded h-maxima at the grid's lowest threshold, once per (map, lambda) (now)": at_lowest,
}
seconds, results = {way: [] for way in ways}, {}
for _ in range(REPEATS):
    for way, maxima_of in ways.items():
        start = time.perf_counter()
        results[way] = choice(maxima_of)
        seconds[way].append(time.perf_counter() - start)

reference = next(iter(results.values()))
best = max(reference, key=reference.get)
print(f"CPU: {cpu_summary()}")
print(f"{len(maps)} TNBC tiles of 512 x 512 (chosen from the training tiles of the fold of patient_01)")
print(f"{len(reference)} settings, {REPEATS} repeats interleaved, one process")
print("| h-maxima | seconds of the choice (each repeat) |")
print("|---|---|")
for way, values in seconds.items():
    print(f"| {way} | {', '.join(f'{v:.1f}' for v in values)} |")
same = all(results[way] == reference for way in results)
print(f"The same pooled AJI at every setting, three ways: {same}; best {reference[best]:.4f} at {best}")
