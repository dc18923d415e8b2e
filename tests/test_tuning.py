import json

import numpy as np
from scipy import ndimage

from conftest import blob_label, noisy_distance_map
from nucseg.config import Config
from nucseg.postprocess.tuning import POSTPROCESS_FILE, choose_postprocess, spread, with_saved_postprocess


def test_the_threshold_that_recovers_the_nuclei_is_chosen():
    label = blob_label(size=96, centres=((20, 20), (20, 60), (60, 40)), radius=8)
    ring = ndimage.binary_dilation(label > 0, iterations=3) & (label == 0)
    probability = np.where(label > 0, 0.65, np.where(ring, 0.45, 0.05)).astype(np.float32)
    chosen = choose_postprocess([probability], [label], Config(min_object_size=10))
    assert chosen["threshold"] in (0.5, 0.6)  # 0.4 would add the ring to every nucleus
    assert chosen["training_aji"] > 0.95 and chosen["tiles"] == 1


def test_dist_choice_scores_each_setting_by_the_nuclei_prediction_finds(glioma_tiles):
    """The choice reuses its h-maxima over the grid's thresholds; the AJI it keeps must be that of
    the nuclei `nucseg predict` finds with the chosen setting, and no other setting may beat it."""
    import itertools

    from nucseg.metrics import ObjectCounts, object_counts
    from nucseg.postprocess.kinds import instances_from_config, kind_of

    rng = np.random.default_rng(1)
    labels = [tile.label[:256, :256] for tile in glioma_tiles[:2]]
    maps = [noisy_distance_map(label, rng, 2.0).astype(np.float32) for label in labels]
    config = Config(arch="dist")
    chosen = choose_postprocess(maps, labels, config)

    def predicted_aji(setting):
        trial = config.replace(**setting)
        counts = (object_counts(instances_from_config(m, trial), label) for m, label in zip(maps, labels))
        return sum(counts, ObjectCounts()).scores()["aji"]

    grid = kind_of(config).grid
    ajis = [predicted_aji(dict(zip(grid, values))) for values in itertools.product(*grid.values())]
    kept = {name: chosen[name] for name in grid}
    assert chosen["training_aji"] == round(predicted_aji(kept), 4) == round(max(ajis), 4)
    assert len(set(np.round(ajis, 4))) > 5  # the settings give different nuclei: the choice mattered


def test_the_choice_is_the_same_to_the_bit_in_one_thread_or_several(glioma_tiles, monkeypatch):
    """The tiles are scored in threads (one per core); each setting's pooled counts, sums of
    floats among them, must not depend on how many threads there were or which finished first."""
    from nucseg.postprocess import tuning

    rng = np.random.default_rng(2)
    labels = [tile.label[:192, :192] for tile in glioma_tiles[:5]]
    maps = [noisy_distance_map(label, rng, 2.0).astype(np.float32) for label in labels]
    chosen = {}
    for threads in (1, 2, 5):
        monkeypatch.setattr(tuning, "usable_cores", lambda threads=threads: threads)
        chosen[threads] = choose_postprocess(maps, labels, Config(arch="dist"))
    assert chosen[1] == chosen[2] == chosen[5] and chosen[1]["tiles"] == 5


def test_the_fold_folders_choice_is_what_its_model_is_used_with(tmp_path):
    (tmp_path / POSTPROCESS_FILE).write_text(json.dumps({"threshold": 0.6, "watershed_min_distance": 5,
                                                         "watershed_footprint": 9, "training_aji": 0.6, "tiles": 3}))
    config = with_saved_postprocess(Config(), tmp_path)
    assert (config.threshold, config.watershed_min_distance, config.watershed_footprint) == (0.6, 5, 9)
    assert with_saved_postprocess(Config(), tmp_path / "elsewhere") == Config()


def test_spread_takes_tiles_from_the_whole_list():
    assert spread(list(range(40)), 4) == [0, 13, 26, 39]
    assert spread([1, 2], 4) == [1, 2]
