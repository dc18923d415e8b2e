"""`nucseg bench stardist`: StarDist 2D (Schmidt et al., MICCAI 2018) trained from scratch on the
same leave-one-patient-out fold as nucseg's nets, for a given wall time, scored on the held-out
patient with nucseg's own metrics. A peer to measure nucseg's nets against, not part of nucseg.

StarDist's own recipe, as its example notebook gives it: each image normalised by its 1st and
99.8th percentiles, holes of the labels filled, random flips, quarter turns and intensity jitter,
32 rays on a grid of 2, 128x128 patches in batches of 4, 100 steps an epoch. Its validation data
(early stopping of the learning rate, and the probability and NMS thresholds it optimises) is
one training patient: the held-out patient is seen only when scoring. The fold's time covers
training, threshold optimisation and prediction; training gets 75 % of `seconds` and stops after
the last epoch that fits in it (threshold optimisation takes most of the rest).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def import_stardist():
    try:
        from stardist.models import Config2D, StarDist2D
    except ImportError as err:
        raise SystemExit(
            "StarDist is not installed: .venv/bin/pip install -e '.[stardist]' (csbdeep, numba; "
            "it runs on the same TensorFlow)"
        ) from err
    return Config2D, StarDist2D


def _normalise(image: np.ndarray) -> np.ndarray:
    from csbdeep.utils import normalize

    return normalize(image.astype(np.float32), 1, 99.8, axis=(0, 1))


def _augmenter(seed: int):
    """StarDist's example augmenter: a random quarter turn and flips, then intensity x0.6..2, +-0.2."""
    rng = np.random.default_rng(seed)

    def augment(x: np.ndarray, y: np.ndarray):
        return _augment(x, y, rng)

    return augment


def _augment(x: np.ndarray, y: np.ndarray, rng: np.random.Generator):
    turns = int(rng.integers(4))
    x, y = np.rot90(x, turns, axes=(0, 1)), np.rot90(y, turns, axes=(0, 1))
    for axis in (0, 1):
        if rng.random() < 0.5:
            x, y = np.flip(x, axis), np.flip(y, axis)
    x = x * rng.uniform(0.6, 2) + rng.uniform(-0.2, 0.2)
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


def _time_limit(seconds: float):
    """Stops training after the last epoch that can end within `seconds` of its start."""
    import keras

    class StopInTime(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.start = self.epoch_start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            now = time.perf_counter()
            if now + (now - self.epoch_start) > self.start + seconds:
                self.model.stop_training = True
            self.epoch_start = now

    return StopInTime()


def bench_stardist_fold(tiles, held_out: str, out_dir: Path, seconds: float, steps_per_epoch: int = 100) -> dict:
    """Train, tune and score StarDist on one fold; returns the fold's row (nucseg's metrics)."""
    from stardist import fill_label_holes

    from nucseg.metrics import ObjectCounts, PixelCounts, all_scores, object_counts, pixel_counts

    Config2D, StarDist2D = import_stardist()
    start = time.perf_counter()
    train = [t for t in tiles if t.patient != held_out]
    test = [t for t in tiles if t.patient == held_out]
    if not test:
        raise SystemExit(f"no tiles of patient {held_out!r}")
    validation_patient = sorted({t.patient for t in train})[0]
    fit = [t for t in train if t.patient != validation_patient]
    val = [t for t in train if t.patient == validation_patient]
    config = Config2D(
        n_rays=32,
        grid=(2, 2),
        n_channel_in=3,
        train_patch_size=(128, 128),
        train_batch_size=4,
        train_steps_per_epoch=steps_per_epoch,
        train_epochs=10_000,
    )
    model = StarDist2D(config, name=held_out, basedir=str(out_dir))
    model.prepare_for_training()
    model.callbacks.append(_time_limit(seconds * 0.75))  # the rest: thresholds and prediction
    model.train(
        [_normalise(t.image) for t in fit],
        [fill_label_holes(t.label) for t in fit],
        validation_data=([_normalise(t.image) for t in val], [fill_label_holes(t.label) for t in val]),
        augmenter=_augmenter(0),
        epochs=10_000,
        steps_per_epoch=steps_per_epoch,
    )
    trained = time.perf_counter() - start
    epochs = len(model.keras_model.history.epoch) if model.keras_model.history else 0
    model.optimize_thresholds([_normalise(t.image) for t in val], [fill_label_holes(t.label) for t in val])
    pixels, objects = PixelCounts(), ObjectCounts()
    for tile in test:
        labels = model.predict_instances(_normalise(tile.image))[0]
        pixels = pixels + pixel_counts(labels > 0, tile.label)
        objects = objects + object_counts(labels, tile.label)
    return {
        "method": "stardist",
        "val_patient": held_out,
        **all_scores(pixels, objects),
        "steps": epochs * steps_per_epoch,
        "train_seconds": round(trained, 1),
        "seconds": round(time.perf_counter() - start, 1),
    }


def predict_speed(
    model_dir: Path,
    tiles,
    predictor,
    config,
    work_dir: Path,
    side: int,
    repeats: int = 3,
    tile: int = 1024,
    overlap: int = 128,
    nuclei_workers: int | None = None,
) -> list[dict]:
    """Megapixels per second of StarDist's own large-image prediction (`predict_instances` with
    `n_tiles`: its net on tiles, then its non-maximum suppression of the star polygons) and of
    nucseg's slide route (read, predict, nuclei, write), side by side on the same side x side
    mosaic of `tiles`, alternated `repeats` times so that both see the same machine.
    `model_dir`: a StarDist model trained by `nucseg bench stardist` (its thresholds optimised)."""
    from nucseg.bench.slide import mosaic_block, write_mosaic_slide
    from nucseg.inference.slide import run_slide

    _, StarDist2D = import_stardist()
    model_dir = Path(model_dir)
    stardist = StarDist2D(None, name=model_dir.name, basedir=str(model_dir.parent))
    image = mosaic_block(tiles, 0, 0, side, side)
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    slide = work_dir / f"mosaic_{side}.tif"
    if not slide.is_file():
        write_mosaic_slide(slide, tiles, side)
    n_tiles = (max(1, side // tile),) * 2 + (1,)  # StarDist's tiles of about nucseg's tile side
    megapixels = side * side / 1e6
    rows = []
    for repeat in range(repeats):
        start = time.perf_counter()
        labels, _ = stardist.predict_instances(_normalise(image), n_tiles=n_tiles, show_tile_progress=False)
        stardist_seconds = time.perf_counter() - start
        out = work_dir / "nucseg_out"
        if out.exists():
            import shutil

            shutil.rmtree(out)
        start = time.perf_counter()
        summary = run_slide(
            predictor, config, slide, out, tile=tile, overlap=overlap, verbose=0, nuclei_workers=nuclei_workers
        )
        nucseg_seconds = time.perf_counter() - start
        rows.append(
            {
                "repeat": repeat,
                "megapixels": megapixels,
                "stardist_seconds": stardist_seconds,
                "stardist_megapixels_per_second": megapixels / stardist_seconds,
                "stardist_nuclei": int(labels.max()),
                "nucseg_seconds": nucseg_seconds,
                "nucseg_megapixels_per_second": megapixels / nucseg_seconds,
                "nucseg_nuclei": summary["nuclei"],
                "ratio": stardist_seconds / nucseg_seconds,
            }
        )
    return rows
