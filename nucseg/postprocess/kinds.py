"""What a net outputs, as one object per kind: the seam every consumer asks instead of the
architecture's name.

A kind owns its output head, its training loss, its training targets (and whether they scale
with the augmentation's zoom), its foreground, its nuclei, the grid its post-processing is chosen
on (postprocess.json), and the names of its outputs. `kind_of(config)` gives the kind of a
configuration's net (`Config.output_kind` names it from the architecture). A new kind is one new
class here, registered in KINDS, and an architecture that outputs it.
"""

from __future__ import annotations

import numpy as np

from nucseg.data.weights import binary_target, distance_target, weight_map
from nucseg.postprocess.instances import distance_maxima, instances_from_distance, instances_from_probability


class ProbabilityKind:
    """The binary nets (PangNet, FCN-8s, DeconvNet, U-Net): per-pixel probabilities of background
    and nucleus, trained with the weighted cross-entropy on U-Net's weight map; nuclei by a
    threshold and a marker-controlled watershed."""

    name = "probability"
    default_arch = "unet"  # the post-processing defaults of a model that comes without its config.json

    # The head and the loss are imported when asked for (they need Keras): finding nuclei does
    # not, so the slide's nuclei workers start without TensorFlow.
    @property
    def head(self):
        from nucseg.models.blocks import score_head

        return score_head

    @property
    def loss(self):
        from nucseg.models.losses import masked_weighted_cross_entropy

        return masked_weighted_cross_entropy

    target_scales_with_zoom = False
    grid = {"threshold": (0.4, 0.5, 0.6), "watershed_min_distance": (5, 7, 10)}
    map_suffix, map_column = "prob", "mean_probability"

    def targets(self, label: np.ndarray, config) -> tuple[np.ndarray, np.ndarray]:
        target = binary_target(label, config.separate_touching)
        return target, weight_map(label, target, config.class_balance, config.border_weight, config.border_sigma)

    def foreground(self, nucleus_map: np.ndarray, config) -> np.ndarray:
        return np.asarray(nucleus_map) > config.threshold

    def instances(self, nucleus_map: np.ndarray, config, cache: dict | None = None, pieces=None) -> np.ndarray:
        """`pieces`: foreground_pieces(self.foreground(nucleus_map, config)), where the caller has them."""
        return instances_from_probability(
            nucleus_map,
            config.threshold,
            config.min_object_size,
            config.watershed_min_distance,
            config.watershed_footprint,
            pieces,
        )

    def map_image(self, nucleus_map: np.ndarray) -> np.ndarray:
        """The map as an 8-bit image: probability x 255."""
        return np.round(nucleus_map * 255).astype(np.uint8)

    def describe_postprocess(self, config) -> str:
        return f"threshold {config.threshold}, min distance {config.watershed_min_distance}"


class DistanceKind:
    """DIST: each nucleus's distance to its border, in pixels, regressed with a mean squared
    error (every pixel weighs alike); nuclei by the dynamic watershed (h-maxima markers)."""

    name = "distance"
    default_arch = "dist"

    @property
    def head(self):
        from nucseg.models.blocks import distance_head

        return distance_head

    @property
    def loss(self):
        from nucseg.models.losses import masked_mean_squared_error

        return masked_mean_squared_error

    target_scales_with_zoom = True  # a zoomed crop's distances are in pixels of the crop
    grid = {"dist_threshold": (0.5, 0.75, 1.0, 1.5, 2.0), "dist_lambda": (0.5, 1.0, 2.0, 3.0)}
    map_suffix, map_column = "dist", "mean_distance"

    def targets(self, label: np.ndarray, config) -> tuple[np.ndarray, np.ndarray]:
        return distance_target(label), np.ones(label.shape, np.float32)

    def foreground(self, nucleus_map: np.ndarray, config) -> np.ndarray:
        return np.asarray(nucleus_map) > config.dist_threshold

    def instances(self, nucleus_map: np.ndarray, config, cache: dict | None = None, pieces=None) -> np.ndarray:
        """`cache`: h-maxima kept per (map, lambda), for the choice of post-processing, which tries
        every threshold of the grid on the same maxima: those of the pieces of the foreground at
        the grid's lowest threshold. A piece at a higher threshold lies within one of those, so
        they give the nuclei of its own maxima (the argument of distance_maxima; tested).
        `pieces`: foreground_pieces(self.foreground(...)), where the caller has them."""
        maxima = None
        lowest = min(self.grid["dist_threshold"])
        if cache is not None and config.dist_threshold >= lowest:
            key = (id(nucleus_map), config.dist_lambda)
            if key not in cache:
                cache[key] = distance_maxima(nucleus_map, config.dist_lambda, above=lowest)
            maxima = cache[key]
        return instances_from_distance(
            nucleus_map, config.dist_threshold, config.dist_lambda, config.min_object_size, maxima, pieces
        )

    def map_image(self, nucleus_map: np.ndarray) -> np.ndarray:
        """The map as an 8-bit image: the distance in pixels, clipped to 255."""
        return np.clip(np.round(nucleus_map), 0, 255).astype(np.uint8)

    def describe_postprocess(self, config) -> str:
        return f"distance threshold {config.dist_threshold}, lambda {config.dist_lambda}"


KINDS = {kind.name: kind for kind in (ProbabilityKind(), DistanceKind())}


def kind_named(name: str):
    return KINDS[name]


def kind_of(config):
    """The kind of the net `config.arch`."""
    return KINDS[config.output_kind]


def foreground(nucleus_map: np.ndarray, config) -> np.ndarray:
    """The pixels the net `config.arch` calls nucleus (its output kind's foreground)."""
    return kind_of(config).foreground(nucleus_map, config)


def instances_from_config(nucleus_map: np.ndarray, config, pieces=None) -> np.ndarray:
    """Nuclei from the map of the net `config.arch` (its output kind's instances). `pieces`:
    instances.foreground_pieces(foreground(nucleus_map, config)), where the caller has them."""
    return kind_of(config).instances(nucleus_map, config, pieces=pieces)
