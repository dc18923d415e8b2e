"""Where a slide tile's nuclei time goes: cProfile of `batch_nuclei` (what a nuclei worker runs) on
12 interior tiles of 992 x 992 of the glioma mosaic that `nucseg bench slide` builds, with the
default model's distance maps (predicted first, not profiled).

    .venv/bin/python results/measured/speed/nuclei_profile.py > results/measured/speed/nuclei_profile.txt
"""

import cProfile
import pstats
import time

from nucseg import pretrained
from nucseg.bench.slide import mosaic_block
from nucseg.data.dataset import load_dataset
from nucseg.hardware import cpu_summary
from nucseg.inference.large import predicted_batches
from nucseg.inference.predict import usable_model
from nucseg.inference.regions import ArrayRegion
from nucseg.inference.tiles import SlidePlan, batch_nuclei, tile_cores
from nucseg.postprocess.kinds import kind_of

TILE, OVERLAP, SIDE = 992, 128, 20000  # the 20,000 x 20,000 benchmark's tiles (fitted_tile)
STARTS = [864, 1728, 2592, 3456, 4320]  # interior tiles: every edge is shared with a neighbour
PARTS = {  # nucseg's functions, by what they do
    "maxima (h-maxima per piece)": "_maxima_per_piece",
    "watershed split": "_split",
    "outlines": "outline_points",
    "table (nuclei_table)": "nuclei_table",
    "pieces beyond the core cleared": "without_pieces_beyond_core",
    "which nuclei the tile keeps": "kept_nuclei",
    "GeoJSON features": "geojson_features",
}

usable = usable_model(pretrained.resolve(None))
config = usable.config
group = [(x, y) for y in STARTS[:3] for x in STARTS[:4]]
block = mosaic_block(load_dataset("../shared/data/tcga_glioma"), 0, 0, STARTS[-1] + TILE, STARTS[-1] + TILE)
images, maps = [], []
for _, batch_images, batch_maps in predicted_batches(ArrayRegion(block), group, TILE, usable.predictor, 2):
    images.extend(batch_images)
    maps.extend(batch_maps)
plan = SlidePlan("mosaic", (0, 0, SIDE, SIDE), 0, 1.0, TILE, OVERLAP, tuple(group), SIDE, SIDE, config.mpp)
cores = tile_cores(SIDE, TILE, OVERLAP)


def run():
    return batch_nuclei(plan, config, cores, cores, kind_of(config).map_column, group, images, maps)


run()  # warm-up
start = time.perf_counter()
found = run()
seconds = time.perf_counter() - start
print(f"{len(group)} tiles of {TILE}: {seconds:.2f} s, {1000 * seconds / len(group):.0f} ms a tile, "
      f"{sum(len(texts) for texts, *_ in found)} nuclei kept")
profile = cProfile.Profile()
profile.runcall(run)
stats = pstats.Stats(profile).stats
total = next(v[3] for k, v in stats.items() if k[2] == "batch_nuclei")
print(f"under cProfile: {total:.2f} s; share of each part (cumulative time):")
for label, function in PARTS.items():
    cumulative = sum(v[3] for k, v in stats.items() if k[2] == function and "nucseg" in k[0])
    print(f"  {label:32s} {100 * cumulative / total:5.1f} %")
print(cpu_summary())
