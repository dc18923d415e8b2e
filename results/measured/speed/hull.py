"""Seconds per 1024 x 1024 tile of the nuclei table's convex hulls (its solidity): one scipy
ConvexHull per nucleus (what nucseg did before 457440c) against all nuclei at once
(objects._hull_areas), interleaved in one run, on the shipped model's nuclei of TNBC tiles (four
2 x 2 mosaics of 512 x 512 crops, as postprocess.py), and the largest difference of the areas.

    .venv/bin/python results/measured/speed/hull.py > results/measured/speed/hull.txt
"""

import json
import time

import numpy as np
from scipy.spatial import ConvexHull, QhullError

from nucseg import pretrained
from nucseg.config import Config
from nucseg.data.dataset import load_dataset
from nucseg.hardware import cpu_summary
from nucseg.inference.objects import _border, _hull_areas
from nucseg.inference.predict import load_predictor, predict_nucleus_map
from nucseg.postprocess.kinds import instances_from_config

REPEATS = 5


def hull_areas_per_nucleus(labels, border, count):
    """457440c's parent's objects._hull_areas: a ConvexHull of each nucleus's border pixel centres."""
    rows, cols = np.nonzero(border)
    owner = labels[rows, cols]
    order = np.argsort(owner, kind="stable")
    points, owner = np.stack([rows, cols], axis=1)[order].astype(np.float64), owner[order]
    starts = np.searchsorted(owner, np.arange(1, count + 2))
    areas = np.full(count, np.nan)
    for index in range(count):
        region = points[starts[index] : starts[index + 1]]
        if len(region):
            try:
                hull = ConvexHull(region)
                areas[index] = hull.volume + hull.area / 2 + 1
            except QhullError:
                areas[index] = np.ptp(region, axis=0).max() + 1
    return areas


tiles = load_dataset("../shared/data/tnbc")
predictor = load_predictor(pretrained.resolve(None))
chosen = json.loads((pretrained.model_file(pretrained.DEFAULT).parent / "postprocess.json").read_text())
chosen = {k: chosen[k] for k in ("dist_threshold", "dist_lambda")}
config = Config.from_profile("cpu", arch="dist", **chosen)
label_images = []
for k in range(4):
    four = [tiles[4 * k + i].image[:512, :512] for i in range(4)]
    image = np.concatenate([np.concatenate(four[:2], 1), np.concatenate(four[2:], 1)], 0)
    label_images.append(instances_from_config(predict_nucleus_map(predictor, image, tile=1024, overlap=0), config))

seconds, worst = {"one ConvexHull per nucleus (before)": [], "all nuclei at once (now)": []}, 0.0
for _ in range(REPEATS):
    for labels in label_images:
        labels = labels.astype(np.int64)
        count, border = int(labels.max()), _border(labels)
        start = time.perf_counter()
        before = hull_areas_per_nucleus(labels, border, count)
        seconds["one ConvexHull per nucleus (before)"].append(time.perf_counter() - start)
        start = time.perf_counter()
        now = _hull_areas(labels, border, count)
        seconds["all nuclei at once (now)"].append(time.perf_counter() - start)
        worst = max(worst, float(np.nanmax(np.abs(before - now))))

print(f"CPU: {cpu_summary()}")
counts = ", ".join(str(int(x.max())) for x in label_images)
print(f"4 tiles of 1024 x 1024 ({counts} nuclei), {REPEATS} repeats, one core")
print("| hulls | median seconds per tile |")
print("|---|---:|")
for name, values in seconds.items():
    print(f"| {name} | {np.median(values):.4f} |")
print(f"largest difference of a hull's pixel count: {worst:.2e}")
