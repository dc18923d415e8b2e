"""Scoring a trained model on held-out tiles: pixel scores and, after separating touching
nuclei, object scores; pooled over the patient's tiles (see nucseg.metrics)."""

from __future__ import annotations

import dataclasses

import numpy as np

from nucseg.data import Tile
from nucseg.metrics import ObjectCounts, PixelCounts, all_scores, object_counts, pixel_counts
from nucseg.postprocess import instances_from_config
from nucseg.predict import model_predictor, predict_probability


@dataclasses.dataclass(frozen=True)
class TilePrediction:
    tile: Tile
    probability: np.ndarray  # (H, W) float32
    instances: np.ndarray  # (H, W) uint16
    pixels: PixelCounts
    objects: ObjectCounts


def predict_tiles(predictor, tiles: list[Tile], config) -> list[TilePrediction]:
    return score_nucleus_maps(lambda image: predict_probability(predictor, image, tta=config.tta), tiles, config)


def score_nucleus_maps(nucleus_map, tiles: list[Tile], config) -> list[TilePrediction]:
    """Each tile's nucleus map (`nucleus_map(image)`, a probability), nuclei and counts."""
    predictions = []
    for tile in tiles:
        probability = nucleus_map(tile.image)
        instances = instances_from_config(probability, config)
        predictions.append(TilePrediction(tile, probability, instances, pixel_counts(probability > config.threshold, tile.label),
                                          object_counts(instances, tile.label)))
    return predictions


def score_held_out(model, held_out: list[Tile], config) -> tuple[list[TilePrediction], dict[str, float]]:
    """A trained Keras model's predictions of the held-out tiles and their pooled scores, with
    the weighted loss on them (`val_loss`)."""
    from nucseg.pipeline import evaluation_dataset, for_keras

    predictions = predict_tiles(model_predictor(model), held_out, config)
    val_loss = model.evaluate(evaluation_dataset(held_out, config).map(for_keras), verbose=0)
    return predictions, {**pooled_scores(predictions), "val_loss": float(val_loss)}


def pooled_scores(predictions: list[TilePrediction]) -> dict[str, float]:
    pixels = sum((p.pixels for p in predictions), PixelCounts())
    objects = sum((p.objects for p in predictions), ObjectCounts())
    return all_scores(pixels, objects)


# ---------------------------------------------------------------- any model on any data set


def tile_rows(method: str, predictions: list[TilePrediction]) -> list[dict]:
    return [{"method": method, "patient": p.tile.patient, "tile": p.tile.tile_id,
             **all_scores(p.pixels, p.objects)} for p in predictions]


def patient_rows(method: str, predictions: list[TilePrediction]) -> list[dict]:
    """Scores pooled per patient (one confusion matrix, one matching tally, one AJI sum)."""
    patients = sorted({p.tile.patient for p in predictions})
    return [{"arch": method, "val_patient": patient, **pooled_scores([p for p in predictions if p.tile.patient == patient]),
             "flags": "", "steps": 0} for patient in patients]


def evaluate_methods(methods: dict, tiles: list[Tile], config):
    """{name: nucleus_map(image)} scored on tiles: (per-tile table, per-patient table)."""
    import pandas as pd

    tile_table, patient_table = [], []
    for name, nucleus_map in methods.items():
        predictions = score_nucleus_maps(nucleus_map, tiles, config)
        tile_table += tile_rows(name, predictions)
        patient_table += patient_rows(name, predictions)
    return pd.DataFrame(tile_table), pd.DataFrame(patient_table)
