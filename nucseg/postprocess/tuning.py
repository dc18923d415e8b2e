"""Post-processing chosen without the held-out patient: after a fold is trained, its model
predicts some of its own training tiles, and the threshold and watershed distance (DIST: the
distance threshold and lambda of its dynamic watershed) with the best pooled AJI there are kept
for the held-out patient (`postprocess.json` in the fold folder, which
`nucseg predict` and `nucseg evaluate` read with the model). The held-out tiles play no part."""

from __future__ import annotations

import itertools
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from nucseg.hardware import usable_cores
from nucseg.metrics import ObjectCounts, object_counts
from nucseg.postprocess.kinds import KINDS, kind_of

POSTPROCESS_FILE = "postprocess.json"
GRIDS = {name: kind.grid for name, kind in KINDS.items()}  # each output kind's grid (nucseg.postprocess.kinds)
CHOSEN_FIELDS = ("threshold", "watershed_min_distance", "watershed_footprint", "dist_threshold", "dist_lambda")
MAX_TILES = 16  # training tiles predicted for the choice, spread over the patients


def spread(tiles: list, most: int = MAX_TILES) -> list:
    """At most `most` tiles, taken evenly over the list (which is sorted by patient)."""
    if len(tiles) <= most:
        return list(tiles)
    return [tiles[i] for i in np.linspace(0, len(tiles) - 1, most).round().astype(int)]


def _with_footprint(setting: dict) -> dict:
    """The watershed's footprint follows its minimum distance (a square twice as wide)."""
    if "watershed_min_distance" not in setting:
        return setting
    return {**setting, "watershed_footprint": 2 * setting["watershed_min_distance"] - 1}


def choose_postprocess(nucleus_maps: list[np.ndarray], labels: list[np.ndarray], config) -> dict:
    """The setting of the net's grid (its output kind's) with the best AJI pooled over
    the given tiles (ties: the first).

    The tiles are scored in threads, as many as the process has cores: scipy's and scikit-image's
    loops release the GIL for much of the work (16 TNBC tiles, 20 settings, 2 cores: 0.70-0.77 of
    one thread's time, results/measured/speed/choice_threads_amd.txt), and threads need no copy of
    the maps and no new process beside TensorFlow's. Each setting's counts are summed in the
    tiles' order, so the choice is the same to the bit whatever the number of threads."""
    kind = kind_of(config)
    grid = kind.grid
    settings = [_with_footprint(dict(zip(grid, values))) for values in itertools.product(*grid.values())]
    trials = [config.replace(**setting) for setting in settings]

    def counts_of_every_setting(nucleus_map: np.ndarray, label: np.ndarray) -> list[ObjectCounts]:
        maxima_cache = {}  # this tile's h-maxima, per lambda: see the kind's instances()
        return [object_counts(kind.instances(nucleus_map, trial, maxima_cache), label) for trial in trials]

    with ThreadPoolExecutor(max(1, min(usable_cores(), len(labels)))) as pool:
        per_tile = list(pool.map(counts_of_every_setting, nucleus_maps, labels))
    best, best_aji = None, -1.0
    for i, setting in enumerate(settings):
        aji = sum((tile_counts[i] for tile_counts in per_tile), ObjectCounts()).scores()["aji"]
        if aji > best_aji:
            best, best_aji = setting, aji
    return {**best, "training_aji": round(best_aji, 4), "tiles": len(labels)}


def write_postprocess(out_dir: Path, chosen: dict) -> None:
    from nucseg.io import write_json_atomic

    write_json_atomic(Path(out_dir) / POSTPROCESS_FILE, chosen)


def with_saved_postprocess(config, out_dir: Path):
    """config with the post-processing chosen for the fold of out_dir, where one was chosen."""
    path = Path(out_dir) / POSTPROCESS_FILE
    if not path.is_file():
        return config
    try:
        chosen = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        from nucseg.errors import InputError

        raise InputError(
            f"{path}: not readable ({err}); it was cut short or edited by hand. Remove it to use the "
            "default post-processing, or train the fold again."
        ) from err
    return with_chosen(config, chosen)


def with_chosen(config, chosen: dict):
    """config with a choice's post-processing fields (as choose_postprocess returns them)."""
    return config.replace(**{k: chosen[k] for k in CHOSEN_FIELDS if k in chosen})
