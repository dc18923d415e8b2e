"""What a fold's held-out `val_loss` costs: `score_held_out` predicts the held-out tiles (their
nuclei and scores), then runs `model.evaluate` over the same tiles for the loss, a second
forward pass and a traced test step. FOLD: a trained TNBC fold folder of patient_09 (e.g. from
`nucseg lopo --data ../shared/data/tnbc --profile cpu --arch dist --val-patients patient_09`).

    .venv/bin/python results/measured/speed/val_loss_cost.py RUN/dist/patient_09
"""

import sys
import time

import nucseg  # noqa: F401  before TensorFlow: oneDNN, as for users
from nucseg.config import Config
from nucseg.data.dataset import load_dataset
from nucseg.data.pipeline import evaluation_dataset, for_keras
from nucseg.hardware import cpu_summary
from nucseg.inference.predict import model_predictor
from nucseg.models.loading import load_keras_model
from nucseg.postprocess.kinds import kind_of
from nucseg.study.evaluate import predict_tiles
from nucseg.training.optimizer import compile_model

fold = sys.argv[1]
config = Config.read_json(f"{fold}/config.json")
tiles = [t for t in load_dataset("../shared/data/tnbc") if t.patient == "patient_09"]
model = compile_model(load_keras_model(f"{fold}/model.keras"), config, config.steps)
batches = evaluation_dataset(tiles, config, kind_of(config)).map(for_keras)  # what score_held_out evaluates
start = time.perf_counter()
predict_tiles(model_predictor(model), tiles, config)
predicted = time.perf_counter()
model.evaluate(batches, verbose=0)
evaluated = time.perf_counter()
model.evaluate(batches, verbose=0)
again = time.perf_counter()
print(
    f"{len(tiles)} tiles: predictions and nuclei {predicted - start:.2f} s, evaluate (val_loss) "
    f"{evaluated - predicted:.2f} s, evaluate again (traced) {again - evaluated:.2f} s; {cpu_summary()}"
)
