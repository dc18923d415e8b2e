"""The study on Ray (a local instance of 2 CPUs): the same folds table as the sequential run, a
worker killed mid-fold rerun from its checkpoint, and a clear message where Ray is missing."""

import json
import os
import signal
import sys
from pathlib import Path

import pandas as pd
import pytest

from nucseg.cli import main
from nucseg.config import Config
from nucseg.study.lopo import run_fold, run_lopo
from nucseg.study.results import read_folds

pytestmark = pytest.mark.slow  # every test here starts Ray and trains folds

PATIENTS = ["TCGA-DB-5270", "TCGA-DB-5275"]


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the killing wrapper below runs in workers
    yield ray
    ray.shutdown()


def killed_once_mid_fold(job, tiles, out_dir, verbose):
    """In the worker: the first time the second patient's fold runs, the worker process kills
    itself (SIGKILL, as a lost machine) right after the fold's first checkpoint."""
    from nucseg.training.train import CHECKPOINT, EpochCheckpoint

    marker = Path(out_dir) / f"killed_{job.val_patient}.json"
    if job.val_patient == PATIENTS[1]:
        if not marker.exists():
            original = EpochCheckpoint.on_epoch_end

            def then_die(self, epoch, logs=None):
                original(self, epoch, logs)
                marker.write_text(json.dumps({"killed_after_epoch": epoch}))
                os.kill(os.getpid(), signal.SIGKILL)

            EpochCheckpoint.on_epoch_end = then_die
        else:
            state = json.loads(marker.read_text())
            state["checkpoint_when_rerun"] = (job.fold_dir / CHECKPOINT).is_file()
            marker.write_text(json.dumps(state))
    return run_fold(job, tiles, out_dir, verbose)


def test_a_ray_study_with_a_worker_killed_mid_fold_gives_the_sequential_folds_table(
    ray_local, tmp_path, nucseg_messages
):
    """One study on Ray whose worker dies in the second fold (after its first checkpoint): the
    fold is rerun from that checkpoint, and the table is the sequential study's. On small
    synthetic tiles: what is tested is the folds' bookkeeping, three studies of two folds each."""
    from conftest import make_generic_dataset
    from nucseg.data.dataset import load_dataset
    from nucseg.distributed import RayRunner

    data = make_generic_dataset(tmp_path / "data", patients=PATIENTS, tiles=2, size=96)
    tiles, out = load_dataset(data), tmp_path / "ray"
    config = Config.from_profile("quick", data=str(data), steps=20, steps_per_epoch=10, crop=64, tune_postprocess=False,
                                 checkpoint_seconds=0)
    sequential = run_lopo(config, ["pangnet"], tmp_path / "seq", tiles, PATIENTS, verbose=0)
    on_ray = run_lopo(config, ["pangnet"], out, tiles, PATIENTS, verbose=0,
                      runner=RayRunner(cpus_per_fold=1, fold_function=killed_once_mid_fold))
    assert any(r.startswith("ray: 2 folds submitted") for r in nucseg_messages)
    state = json.loads((out / f"killed_{PATIENTS[1]}.json").read_text())
    assert state == {"killed_after_epoch": 0, "checkpoint_when_rerun": True}
    losses = json.loads((out / "pangnet" / PATIENTS[1] / "losses.json").read_text())
    assert sorted(losses) == ["0", "1"]  # epoch 0 from the killed worker, epoch 1 from the rerun
    assert len(read_folds(out / "folds.csv")) == 2

    keys = ["arch", "val_patient", "steps", "seed", "config_hash", "flags"]
    pd.testing.assert_frame_equal(on_ray[keys], sequential[keys])
    scores = ["accuracy", "f1", "aji", "pq"]
    pd.testing.assert_frame_equal(on_ray[scores], sequential[scores], atol=0.02, rtol=0)  # threads differ: round-off
    assert (out / "summary.md").is_file() and (out / "figures" / "boxplots.png").is_file()
    assert len(list((out / "figures").glob("overlay_*.png"))) == 2

    again = run_lopo(config, ["pangnet"], out, tiles, PATIENTS, verbose=0, runner=RayRunner())
    pd.testing.assert_frame_equal(again, on_ray)  # rerun: every fold skipped, nothing submitted


def test_a_ray_task_counts_the_cpus_it_was_given_not_the_machines(ray_local):
    """Folds side by side on Ray (--cpus-per-fold 1): the training stream's maps and the choice's
    threads, which count usable_cores(), take the task's share; the driver still counts its own."""
    from nucseg.hardware import usable_cores

    machine = len(os.sched_getaffinity(0))

    def cores_in_a_task():
        return usable_cores()

    one, two = (ray_local.remote(num_cpus=n)(cores_in_a_task) for n in (1, 2))
    assert ray_local.get(one.remote()) == 1
    assert ray_local.get(two.remote()) == min(2, machine)
    assert usable_cores() == machine


def test_ray_missing_says_how_to_install(glioma_path, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if it were not installed
    code = main(["lopo", "--data", str(glioma_path), "--arch", "pangnet", "--profile", "quick", "--ray",
                 "--out", str(tmp_path / "run")])
    assert code == 2
    assert 'pip install -e ".[ray]"' in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_lodo_on_ray_gives_the_sequential_table(ray_local, tmp_path, nucseg_messages):
    from conftest import make_generic_dataset
    from nucseg.distributed import RayRunner
    from nucseg.study.lodo import run_lodo, train_without

    a = make_generic_dataset(tmp_path / "lab_a", patients=("P1", "P2"), tiles=1, size=96)
    b = make_generic_dataset(tmp_path / "lab_b", patients=("P1", "P2"), tiles=1, size=96)
    config = Config.from_profile("quick", data=[str(a), str(b)], steps=10, steps_per_epoch=10, crop=64,
                                 tune_postprocess=False, arch="pangnet")
    sequential = run_lodo(config, ["pangnet"], tmp_path / "seq", verbose=0)
    on_ray = run_lodo(config, ["pangnet"], tmp_path / "ray", verbose=0,
                      runner=RayRunner(cpus_per_fold=1, fold_function=train_without))
    assert any(r.startswith("ray: 2 folds submitted") for r in nucseg_messages)
    key = ["left_out", "method"]
    sequential = sequential.sort_values(key).reset_index(drop=True)
    on_ray = on_ray.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(on_ray[key + ["patients", "tiles", "config_hash"]],
                                  sequential[key + ["patients", "tiles", "config_hash"]])
    pd.testing.assert_frame_equal(on_ray[["f1", "aji"]], sequential[["f1", "aji"]], atol=0.05, rtol=0)


def test_slides_on_ray_give_the_nuclei_of_the_sequential_run(ray_local, small_dist_fold, glioma_tiles, tmp_path):
    """`nucseg slide --ray`: a task per slide, each the same nuclei as `nucseg slide` on this machine."""
    import numpy as np
    from test_slide import write_pyramid

    from nucseg.distributed import run_slides_on_ray
    from nucseg.inference.predict import load_predictor
    from nucseg.inference.saved import model_config
    from nucseg.inference.slide import run_slide

    model = small_dist_fold / "model.keras"
    slides = []
    for k in range(2):
        mosaic = np.concatenate([t.image[:512, :768] for t in glioma_tiles[2 * k : 2 * k + 2]], 0)
        slides.append(write_pyramid(tmp_path / f"slide{k}.tif", mosaic))
    options = {"tile": 512, "overlap": 128, "engine": "openvino", "precision": "float32"}
    summaries = run_slides_on_ray(model, [(s, tmp_path / "ray" / s.stem) for s in slides], options)
    assert sorted(s["nuclei"] for s in summaries) == sorted(
        pd.read_csv(tmp_path / "ray" / s.stem / "nuclei.csv").shape[0] for s in slides
    )
    _, config = model_config(model, "distance")
    predictor = load_predictor(model, engine="openvino")
    for slide in slides:
        run_slide(predictor, config, slide, tmp_path / "here" / slide.stem, tile=512, overlap=128, verbose=0)
        on_ray = pd.read_csv(tmp_path / "ray" / slide.stem / "nuclei.csv")
        here = pd.read_csv(tmp_path / "here" / slide.stem / "nuclei.csv")
        assert len(on_ray) > 10
        columns = ["centroid_x", "centroid_y", "area_um2"]
        pd.testing.assert_frame_equal(on_ray[columns], here[columns], atol=1e-6, rtol=0)


def test_a_slide_task_sets_up_tensorflow_only_where_it_runs_the_net(small_dist_fold, monkeypatch):
    """A slide task whose net runs in OpenVINO does not import TensorFlow to set its threads (6.7 s
    and 0.6 GB a task on a 2-core AMD EPYC); one whose net runs in TensorFlow gives it the task's CPUs."""
    import nucseg.distributed as distributed
    import nucseg.inference.slide

    tensorflow_threads = []
    monkeypatch.setattr(distributed, "_threads_for", tensorflow_threads.append)
    monkeypatch.setattr(nucseg.inference.slide, "run_slide", lambda predictor, config, *_, **options: options)
    model = str(small_dist_fold / "model.keras")
    task = distributed._slide_task(model, {}, "slide.tif", "out", {"engine": "openvino", "precision": "float32"}, 1)
    assert task["nuclei_workers"] == 1 and tensorflow_threads == []
    distributed._slide_task(model, {}, "slide.tif", "out", {"engine": "tensorflow", "precision": "float32"}, 1)
    assert tensorflow_threads == [1]


def test_a_slide_on_ray_that_cannot_be_read_says_so_in_one_line(ray_local, small_dist_fold, tmp_path):
    """nucseg's own error from a task is raised as the sequential run raises it: the CLI prints its
    one line, not the worker's traceback that Ray's wrapper carries."""
    from nucseg.distributed import run_slides_on_ray
    from nucseg.inference.regions import SlideError

    broken = tmp_path / "broken.svs"
    broken.write_text("not a slide")
    with pytest.raises(SlideError) as caught:
        run_slides_on_ray(small_dist_fold / "model.keras", [(broken, tmp_path / "out")],
                          {"engine": "openvino", "precision": "float32"})
    assert type(caught.value) is SlideError
    assert str(broken) in str(caught.value) and "ray::" not in str(caught.value)
    assert len(str(caught.value).splitlines()) == 1
