"""Seconds of a DIST fold's choice of post-processing (nucseg.postprocess.tuning.choose_postprocess:
the grid's 5 distance thresholds x 4 lambdas, pooled AJI over 16 training tiles) in one thread
against one thread per core, alternated in one process, on the shipped model's distance maps of the
16 TNBC tiles the fold of patient_01 chooses on. It checks that both choose the same, to the bit.

    .venv/bin/python results/measured/speed/choice_threads.py [REPEATS] > results/measured/speed/choice_threads_CPU.txt
"""

import sys
import time

from nucseg import pretrained
from nucseg.config import Config
from nucseg.data.dataset import load_dataset
from nucseg.hardware import cpu_summary, usable_cores
from nucseg.inference.predict import load_predictor, predict_nucleus_map
from nucseg.postprocess import tuning

repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 3
tiles = tuning.spread([t for t in load_dataset("../shared/data/tnbc") if t.patient != "patient_01"])
predictor = load_predictor(pretrained.resolve(None))
maps = [predict_nucleus_map(predictor, t.image) for t in tiles]
labels = [t.label for t in tiles]
config = Config.from_profile("cpu", arch="dist")
cores = usable_cores()
print(f"# {cpu_summary()}; {len(tiles)} tiles, {cores} cores usable")
chosen, seconds = {}, {1: [], cores: []}
for _ in range(repeats):
    for threads in (1, cores):
        tuning.usable_cores = lambda threads=threads: threads  # the one the choice asks
        start = time.perf_counter()
        chosen.setdefault(threads, []).append(tuning.choose_postprocess(maps, labels, config))
        seconds[threads].append(time.perf_counter() - start)
for threads in (1, cores):
    print(f"{threads} thread(s): " + ", ".join(f"{s:.2f}" for s in seconds[threads]) + " s")
pairs = [b / a for a, b in zip(seconds[1], seconds[cores])]
print("ratio, pair by pair: " + ", ".join(f"{r:.2f}" for r in pairs))
every = [c for runs in chosen.values() for c in runs]
print("the same choice every time:", all(c == every[0] for c in every), every[0])
