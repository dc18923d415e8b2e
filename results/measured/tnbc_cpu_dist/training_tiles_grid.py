"""Training-tile scores of each DIST fold model over a post-processing grid (held-out tiles not used)."""
import itertools, json, sys
from pathlib import Path
import numpy as np
from nucseg.config import Config
from nucseg.data.dataset import load_dataset
from nucseg.study.folds import fold_for
from nucseg.data.dataset import patients_of
from nucseg.postprocess.tuning import spread
from nucseg.inference.predict import load_predictor, predict_nucleus_map
from nucseg.postprocess.instances import distance_maxima, instances_from_distance
from nucseg.metrics import PixelCounts, ObjectCounts, pixel_counts, object_counts, all_scores

run = Path(sys.argv[1]); tta = len(sys.argv) > 2 and sys.argv[2] == "tta"
tiles = load_dataset("/work/shared/data/tnbc")
rows = []
for fold_dir in sorted((run / "dist").glob("patient_*")):
    p = fold_dir.name
    train = [t for t in tiles if t.patient in fold_for(patients_of(tiles), p).train_patients]
    chosen = spread(train)
    pred = load_predictor(fold_dir / "model.keras")
    maps = [predict_nucleus_map(pred, t.image, tta=tta) for t in chosen]
    for lam in (0.5, 1.0, 2.0, 3.0):
        maxima = [distance_maxima(m, lam) for m in maps]
        for thr in (0.5, 0.75, 1.0, 1.5):
            pix, obj = PixelCounts(), ObjectCounts()
            for m, mx, t in zip(maps, maxima, chosen):
                pix = pix + pixel_counts(m > thr, t.label)
                obj = obj + object_counts(instances_from_distance(m, thr, lam, 30, maxima=mx), t.label)
            s = all_scores(pix, obj)
            rows.append({"fold": p, "thr": thr, "lam": lam, **{k: round(s[k], 4) for k in ("f1", "aji", "object_f1", "pq")}})
    print(p, flush=True)
import pandas as pd
df = pd.DataFrame(rows); df.to_csv(run.name + ("_tta" if tta else "") + "_train_grid.csv", index=False)
print(df.groupby(["thr", "lam"])[["f1", "aji", "object_f1", "pq"]].mean().round(4))
