"""Post-processing chosen without the held-out patient: after a fold is trained, its model
predicts some of its own training tiles, and the threshold and watershed distance with the best
pooled AJI there are kept for the held-out patient (`postprocess.json` in the fold folder, which
`nucseg predict` and `nucseg evaluate` read with the model). The held-out tiles play no part."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np

from nucseg.metrics import ObjectCounts, object_counts
from nucseg.postprocess import instances_from_config

POSTPROCESS_FILE = "postprocess.json"
GRID = {"threshold": (0.4, 0.5, 0.6), "watershed_min_distance": (5, 7, 10)}
MAX_TILES = 16  # training tiles predicted for the choice, spread over the patients


def spread(tiles: list, most: int = MAX_TILES) -> list:
    """At most `most` tiles, taken evenly over the list (which is sorted by patient)."""
    if len(tiles) <= most:
        return list(tiles)
    return [tiles[i] for i in np.linspace(0, len(tiles) - 1, most).round().astype(int)]


def choose_postprocess(probabilities: list[np.ndarray], labels: list[np.ndarray], config) -> dict:
    """The GRID setting with the best AJI pooled over the given tiles (ties: the first)."""
    best, best_aji = None, -1.0
    for values in itertools.product(*GRID.values()):
        setting = dict(zip(GRID, values))
        trial = config.replace(**setting, watershed_footprint=2 * setting["watershed_min_distance"] - 1)
        counts = sum((object_counts(instances_from_config(p, trial), label) for p, label in zip(probabilities, labels)),
                     ObjectCounts())
        aji = counts.scores()["aji"]
        if aji > best_aji:
            best, best_aji = {**setting, "watershed_footprint": trial.watershed_footprint}, aji
    return {**best, "training_aji": round(best_aji, 4), "tiles": len(labels)}


def write_postprocess(out_dir: Path, chosen: dict) -> None:
    from nucseg.io import write_json_atomic

    write_json_atomic(Path(out_dir) / POSTPROCESS_FILE, chosen)


def with_saved_postprocess(config, out_dir: Path):
    """config with the post-processing chosen for the fold of out_dir, where one was chosen."""
    path = Path(out_dir) / POSTPROCESS_FILE
    if not path.is_file():
        return config
    chosen = json.loads(path.read_text())
    return config.replace(**{k: chosen[k] for k in ("threshold", "watershed_min_distance", "watershed_footprint")})
