"""Seconds per 1024 x 1024 RGB tile of the hematoxylin density: skimage's rgb2hed (what nucseg
used before) against nucseg's lookup table per channel (`nucseg.inference.baseline.hematoxylin`),
alternated in one run on four 2 x 2 mosaics of 512 x 512 glioma tiles, and their largest difference.

    .venv/bin/python results/measured/speed/hematoxylin.py > results/measured/speed/hematoxylin.txt
"""

import time

import numpy as np
from skimage.color import rgb2hed

from nucseg.data.dataset import load_dataset
from nucseg.inference.baseline import hematoxylin
from nucseg.hardware import cpu_summary

REPEATS = 5
tiles = load_dataset("../shared/data/tcga_glioma")
images = []
for k in range(4):
    four = [tiles[4 * k + i].image[:512, :512] for i in range(4)]
    images.append(np.concatenate([np.concatenate(four[:2], 1), np.concatenate(four[2:], 1)], 0))
ways = {"rgb2hed (before)": lambda image: rgb2hed(image)[..., 0], "lookup table (now)": hematoxylin}
seconds = {name: [] for name in ways}
for _ in range(REPEATS):
    for image in images:
        for name, way in ways.items():
            start = time.perf_counter()
            way(image)
            seconds[name].append(time.perf_counter() - start)
difference = max(float(np.abs(hematoxylin(image) - rgb2hed(image)[..., 0]).max()) for image in images)
print(f"CPU: {cpu_summary()}")
print(f"4 tiles of 1024 x 1024, {REPEATS} repeats, alternated; largest difference {difference:.1e}")
print("| way | median seconds per tile |")
print("|---|---:|")
for name, values in seconds.items():
    print(f"| {name} | {np.median(values):.4f} |")
