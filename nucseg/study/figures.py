"""Figures saved as PNG: outlines of predicted and true nuclei on a tile, box plots of the
per-patient scores, and samples of the augmented training stream with their weights."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt  # headless, matplotlib falls back to Agg; notebooks keep their own backend
import numpy as np
from skimage.segmentation import find_boundaries

from nucseg.io import save_with
from nucseg.study.results import SUMMARY_SCORES

TRUE_COLOUR = (0, 255, 0)
PREDICTED_COLOUR = (255, 0, 255)


def outlined(image: np.ndarray, truth: np.ndarray | None = None, predicted: np.ndarray | None = None) -> np.ndarray:
    """RGB copy of image with true outlines in green and predicted ones in magenta."""
    out = image.copy()
    if truth is not None:
        out[find_boundaries(truth, mode="inner")] = TRUE_COLOUR
    if predicted is not None:
        out[find_boundaries(predicted, mode="inner")] = PREDICTED_COLOUR
    return out


def save_figure(figure, path: str | Path) -> Path:
    path = save_with(path, lambda p: figure.savefig(p, dpi=100, bbox_inches="tight", format="png"), suffix=".png")
    plt.close(figure)
    return path


def overlay_figure(image, truth, predicted, title: str):
    figure, axes = plt.subplots(1, 2, figsize=(10, 5))
    axes[0].imshow(image)
    axes[0].set_title("H&E tile")
    axes[1].imshow(outlined(image, truth, predicted))
    axes[1].set_title("true (green) and predicted (magenta) nuclei")
    for axis in axes:
        axis.axis("off")
    figure.suptitle(title)
    return figure


def boxplot_figure(folds, scores=tuple(SUMMARY_SCORES)):
    archs = list(dict.fromkeys(folds["arch"]))
    figure, axes = plt.subplots(1, len(scores), figsize=(2.6 * len(scores), 3.6), sharey=True)
    for axis, score in zip(np.atleast_1d(axes), scores):
        axis.boxplot([folds.loc[folds["arch"] == a, score].to_numpy() for a in archs], tick_labels=archs)
        axis.set_title(SUMMARY_SCORES.get(score, score))
        axis.tick_params(axis="x", rotation=45)
    np.atleast_1d(axes)[0].set_ylabel("score per held-out patient")
    figure.tight_layout()
    return figure


def augmented_grid_figure(images, targets, weights, columns: int = 6):
    figure, axes = plt.subplots(3, columns, figsize=(2 * columns, 6.4))
    for k in range(columns):
        axes[0, k].imshow(np.clip(images[k], 0, 255).astype(np.uint8))
        axes[1, k].imshow(targets[k], cmap="gray", vmin=0, vmax=1)
        shown = axes[2, k].imshow(weights[k], cmap="magma", vmin=0)
        for axis in axes[:, k]:
            axis.axis("off")
    for row, name in enumerate(("augmented image", "target", "weight (0 = ignored)")):
        axes[row, 0].set_title(name, loc="left", fontsize=9)
    figure.colorbar(shown, ax=axes[2].tolist(), shrink=0.8)
    return figure


def dataset_histograms_figure(tiles):
    """Nucleus areas (pixels) and nuclei per tile, over the whole dataset."""
    areas = np.concatenate([np.bincount(t.label.ravel())[1:] for t in tiles])
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    axes[0].hist(areas[areas > 0], bins=50, color="tab:purple")
    axes[0].set_xlabel("nucleus area (pixels)")
    axes[0].set_ylabel("nuclei")
    axes[1].hist([t.n_nuclei for t in tiles], bins=15, color="tab:blue")
    axes[1].set_xlabel("nuclei per tile")
    axes[1].set_ylabel("tiles")
    figure.tight_layout()
    return figure


def sample_tiles_figure(tiles, per_patient: int = 1):
    """The first tile(s) of each patient with the outlines of its annotated nuclei."""
    chosen = [
        t for p in dict.fromkeys(t.patient for t in tiles) for t in [x for x in tiles if x.patient == p][:per_patient]
    ]
    figure, axes = plt.subplots(1, len(chosen), figsize=(3.2 * len(chosen), 3.4))
    for axis, tile in zip(np.atleast_1d(axes), chosen):
        axis.imshow(outlined(tile.image, tile.label))
        axis.set_title(f"{tile.patient}\n{tile.tile_id}: {tile.n_nuclei} nuclei", fontsize=9)
        axis.axis("off")
    return figure
