"""The end of a `cpu` DIST fold, timed apart from its training: the choice of post-processing on
the fold's training tiles and the held-out patient's scoring, with a trained fold's model.keras
(loaded and compiled as saved; TNBC, the held-out patient the fold's). Prints each part's seconds,
the setting chosen and the scores, so that two commits can be shown to give the same. The code
measured is the nucseg that Python imports (PYTHONPATH=DIR for a checkout).

    .venv/bin/python results/measured/speed/fold_tail.py FOLD_DIR
"""

import json
import sys
import time
from pathlib import Path

import nucseg  # noqa: F401  first, as the nucseg command imports it: it has TensorFlow use oneDNN
import keras

from nucseg.config import Config
from nucseg.data.dataset import load_dataset
from nucseg.hardware import cpu_summary
from nucseg.models import custom_objects
from nucseg.postprocess.tuning import with_chosen
from nucseg.study.evaluate import score_held_out
from nucseg.study.fold import choose_on_training_tiles

if __name__ == "__main__":
    fold = Path(sys.argv[1])
    config = Config.read_json(fold / "config.json")
    held_out = json.loads((fold / "scores.json").read_text())["val_patient"]
    model = keras.models.load_model(fold / "model.keras", custom_objects=custom_objects())
    tiles = load_dataset("../shared/data/tnbc", mpp=config.mpp)
    start = time.perf_counter()
    chosen = choose_on_training_tiles(model, [t for t in tiles if t.patient != held_out], config)
    chose = time.perf_counter()
    _, scores = score_held_out(model, [t for t in tiles if t.patient == held_out], with_chosen(config, chosen))
    scored = time.perf_counter()
    print(
        f"choice {chose - start:.2f} s, scoring {scored - chose:.2f} s; chosen {chosen}; "
        f"AJI {scores['aji']:.6f}, F1 {scores['f1']:.6f}, PQ {scores['pq']:.6f}; {cpu_summary()}"
    )
