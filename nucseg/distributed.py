"""The study's folds, and slides, as Ray tasks: on this machine (a local Ray instance sized to it)
or on a running cluster (`ray start --head` / `ray up`, then --ray ADDRESS).

Each fold is one task with its resources: a GPU where the cluster has GPUs, else
`cpus_per_fold` CPU threads. A GPU task runs in a fresh worker process (max_calls=1, so that
TensorFlow's hold on the GPU's memory goes with it); CPU workers are reused (a fresh process
costs a TensorFlow import per fold). A task writes only into its own fold folder; the driver alone
writes folds.csv, the summaries and the figures (nucseg.study.lopo). A worker lost mid-fold
(killed, its machine gone) has its task run again by Ray (`max_retries`), and the fold resumes
from its last checkpoint in its folder. So on several machines the run folder must be on
storage that every node reads and writes at the same path (NFS or another shared file system).

Ray is optional (`pip install -e ".[ray]"`); without it, --ray says how to install it.
"""

from __future__ import annotations

import logging

import contextlib

import os
from pathlib import Path

from nucseg.errors import InputError, TrainingDiverged

logger = logging.getLogger(__name__)

INSTALL_HINT = 'pip install -e ".[ray]"  (or: pip install "ray>=2.40")'


class RayMissing(InputError):
    pass


def import_ray():
    try:
        import ray
    except ImportError as err:
        raise RayMissing(f"--ray needs Ray, which is not installed here: {INSTALL_HINT}") from err
    return ray


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None):
    """Ray, joined at `address` or started locally sized to this machine (num_cpus: all of its
    cores unless given); shut down at the end where this call started it (a Ray the caller
    started, as the tests do, is left running)."""
    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def task_result(ray, ref):
    """ray.get of a finished task. A task that ended in one of nucseg's own errors (a file it
    cannot read, a diverging run) raises that error here as the sequential run would, so that the
    CLI prints its one line; Ray's wrapper would carry the worker's traceback into the message."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as err:
        if isinstance(err.cause, (InputError, TrainingDiverged)):
            raise err.cause from None
        raise


def _task_resources(cpus: int, cluster_gpus: float) -> dict:
    if cluster_gpus:
        return {"num_cpus": cpus, "num_gpus": 1, "max_calls": 1}
    return {"num_cpus": cpus}


def _threads_for(cpus: int) -> None:
    """TensorFlow in a fold's worker uses the CPU threads its task was given."""
    os.environ["OMP_NUM_THREADS"] = str(cpus)
    try:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(cpus)
        tf.config.threading.set_inter_op_parallelism_threads(min(cpus, 2))
    except (ImportError, RuntimeError):  # another backend, or TensorFlow already running
        pass


def _fold_task(fold_function, job, tiles, out_dir, cpus):
    _threads_for(cpus)
    try:
        return fold_function(job, tiles, Path(out_dir), 0)
    finally:
        import keras

        keras.backend.clear_session()  # a reused worker starts its next fold without this one's graphs


class RayRunner:
    """Runs the study's folds as Ray tasks and reports each as it ends (see nucseg.study.lopo)."""

    def __init__(
        self,
        address: str | None = None,
        cpus_per_fold: int = 1,
        max_retries: int = 3,
        num_cpus: int | None = None,
        fold_function=None,
    ):
        if cpus_per_fold < 1:
            raise InputError(f"--cpus-per-fold {cpus_per_fold}: a fold needs at least 1 CPU")
        self.address, self.cpus_per_fold, self.max_retries = address, cpus_per_fold, max_retries
        self.num_cpus = num_cpus
        self.fold_function = fold_function  # None: nucseg.study.lopo.run_fold (tests wrap it)

    def run(self, jobs, tiles, out_dir: Path, verbose: int = 1):

        if not jobs:
            return
        with ray_session(self.address, self.num_cpus) as ray:
            yield from self._run_on(ray, jobs, tiles, out_dir, verbose)

    def _run_on(self, ray, jobs, tiles, out_dir: Path, verbose: int):
        from nucseg.study.lopo import run_fold

        gpus = ray.cluster_resources().get("GPU", 0)
        task = ray.remote(**_task_resources(self.cpus_per_fold, gpus), max_retries=self.max_retries)(_fold_task)
        tiles_ref = ray.put(tiles)
        pending = {
            task.remote(self.fold_function or run_fold, job, tiles_ref, str(out_dir), self.cpus_per_fold): job
            for job in jobs
        }
        logger.info(
            f"ray: {len(jobs)} folds submitted to {ray.cluster_resources().get('CPU', 0):.0f} CPUs"
            f"{f' and {gpus:.0f} GPUs' if gpus else ''} ({self.cpus_per_fold} CPU per fold)"
        )
        bar = _study_progress(len(jobs), verbose)
        finished = 0
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(ready[0])
            result = task_result(ray, ready[0])
            finished += 1
            if bar:
                bar.update(finished)
            yield job, result


def _study_progress(total: int, verbose: int):
    if not verbose:
        return None
    import keras

    return keras.utils.Progbar(total, unit_name="fold")


# ---------------------------------------------------------------- slides


def _slide_task(model_path, overrides, slide_path, out_dir, options, cpus):
    from nucseg.inference.engines import choose_engine
    from nucseg.inference.predict import usable_model, with_tta
    from nucseg.inference.slide import run_slide

    engine = choose_engine(options.pop("engine", "tensorflow"))  # chosen on the worker: its own CPU and GPU
    if engine == "tensorflow":
        _threads_for(cpus)  # imports TensorFlow: not where the net runs in OpenVINO (6.7 s, 0.6 GB)
    model = usable_model(model_path, overrides, options.pop("precision", "float32"), engine)
    predictor = with_tta(model.predictor) if options.pop("tta", False) else model.predictor
    if options.get("nuclei_workers") is None:  # the task's own CPUs, not the machine's: tasks share it
        options["nuclei_workers"] = cpus
    return run_slide(predictor, model.config, slide_path, out_dir, verbose=0, **options)


def run_slides_on_ray(
    model_path,
    slides: list[tuple[str, Path]],
    options: dict,
    address: str | None = None,
    cpus_per_slide: int = 1,
    max_retries: int = 3,
) -> list[dict]:
    """One Ray task per slide (`slides`: (path, output folder) pairs), each writing its own folder
    as `nucseg slide` does; a lost worker's slide resumes from its last written part."""
    with ray_session(address) as ray:
        return _slides_on(ray, model_path, slides, options, cpus_per_slide, max_retries)


def _slides_on(ray, model_path, slides, options, cpus_per_slide, max_retries) -> list[dict]:
    gpus = ray.cluster_resources().get("GPU", 0)
    task = ray.remote(**_task_resources(cpus_per_slide, gpus), max_retries=max_retries)(_slide_task)
    pending = {
        task.remote(str(model_path), {}, str(path), str(out), dict(options), cpus_per_slide): path
        for path, out in slides
    }
    summaries = []
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        path = pending.pop(ready[0])
        summary = task_result(ray, ready[0])
        logger.info(f"{path}: {summary['nuclei']} nuclei in {summary['tiles']} tissue tiles, {summary['seconds']} s")
        summaries.append(summary)
    return summaries
