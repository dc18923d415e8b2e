"""Scoring a trained model on held-out tiles: pixel scores and, after separating touching
nuclei, object scores; pooled over the patient's tiles (see nucseg.metrics)."""

from __future__ import annotations

import dataclasses

import numpy as np

from nucseg.data.dataset import Tile
from nucseg.metrics import ObjectCounts, PixelCounts, all_scores, object_counts, pixel_counts
from nucseg.postprocess.kinds import kind_of
from nucseg.inference.predict import model_predictor, predict_nucleus_map


@dataclasses.dataclass(frozen=True)
class TilePrediction:
    tile: Tile
    nucleus_map: np.ndarray  # (H, W) float32: probability, or DIST's distance
    instances: np.ndarray  # (H, W) uint16
    pixels: PixelCounts
    objects: ObjectCounts


def predict_tiles(predictor, tiles: list[Tile], config) -> list[TilePrediction]:
    return score_nucleus_maps(lambda image: predict_nucleus_map(predictor, image, tta=config.tta), tiles, config)


def score_nucleus_maps(nucleus_map, tiles: list[Tile], config, kind=None) -> list[TilePrediction]:
    """Each tile's nucleus map (`nucleus_map(image)`), nuclei and counts; pixel scores from the
    map's foreground. `kind`: the output kind of the map (default: that of config.arch)."""
    kind = kind or kind_of(config)
    predictions = []
    for tile in tiles:
        map_ = nucleus_map(tile.image)
        instances = kind.instances(map_, config)
        predictions.append(
            TilePrediction(
                tile,
                map_,
                instances,
                pixel_counts(kind.foreground(map_, config), tile.label),
                object_counts(instances, tile.label),
            )
        )
    return predictions


def score_held_out(model, held_out: list[Tile], config) -> tuple[list[TilePrediction], dict[str, float]]:
    """A trained Keras model's predictions of the held-out tiles and their pooled scores, with
    the weighted loss on them (`val_loss`)."""
    from nucseg.data.pipeline import evaluation_dataset, for_keras

    predictions = predict_tiles(model_predictor(model), held_out, config)
    from nucseg.postprocess.kinds import kind_of

    val_loss = model.evaluate(evaluation_dataset(held_out, config, kind_of(config)).map(for_keras), verbose=0)
    return predictions, {**pooled_scores(predictions), "val_loss": float(val_loss)}


def pooled_scores(predictions: list[TilePrediction]) -> dict[str, float]:
    pixels = sum((p.pixels for p in predictions), PixelCounts())
    objects = sum((p.objects for p in predictions), ObjectCounts())
    return all_scores(pixels, objects)


# ---------------------------------------------------------------- any model on any data set


def tile_rows(method: str, predictions: list[TilePrediction]) -> list[dict]:
    return [
        {"method": method, "patient": p.tile.patient, "tile": p.tile.tile_id, **all_scores(p.pixels, p.objects)}
        for p in predictions
    ]


def patient_rows(method: str, predictions: list[TilePrediction]) -> list[dict]:
    """Scores pooled per patient (one confusion matrix, one matching tally, one AJI sum)."""
    patients = sorted({p.tile.patient for p in predictions})
    rows = []
    for patient in patients:
        scores = pooled_scores([p for p in predictions if p.tile.patient == patient])
        rows.append(
            {
                "arch": method,
                "val_patient": patient,
                **scores,
                "flags": "empty" if np.isnan(scores["tpr"]) else "",
                "steps": 0,
            }
        )
    return rows


def evaluate_methods(methods: dict, tiles: list[Tile]):
    """{name: (nucleus_map(image), config of its post-processing[, output kind of its map])} scored
    on tiles: (per-tile table, per-patient table)."""
    import pandas as pd

    tile_table, patient_table = [], []
    for name, (nucleus_map, config, *kind) in methods.items():
        predictions = score_nucleus_maps(nucleus_map, tiles, config, *kind)
        tile_table += tile_rows(name, predictions)
        patient_table += patient_rows(name, predictions)
    return pd.DataFrame(tile_table), pd.DataFrame(patient_table)
