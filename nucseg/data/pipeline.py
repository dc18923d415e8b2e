"""tf.data streams: endless augmented training crops, and whole unaugmented evaluation tiles.

Targets and weight maps are computed once per tile (`prepare_tiles`); each training sample is
then drawn from the sample index alone (stateless random ops seeded by (seed, index)), so the
same seed gives the same samples in the same order, in parallel or not, and a resumed run can
start the stream at the sample where it stopped.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from nucseg.data.augment import make_augmenter, make_batch_jitter
from nucseg.data.dataset import Tile
from nucseg.errors import InputError
from nucseg.hardware import usable_cores
from nucseg.config import SIZE_MULTIPLE
from nucseg.data.weights import binary_target, weight_map


@dataclasses.dataclass(frozen=True)
class TileStack:
    """Tiles (or pieces of large tiles) padded to one size, with their targets, weights and true sizes."""

    images: np.ndarray  # (N, H, W, 3) uint8
    targets_weights: np.ndarray  # (N, H, W, 2) float32: target (nucleus = 1, or DIST's distance), weight (0 outside)
    sizes: np.ndarray  # (N, 2) int32 true (height, width)
    target_scales_with_zoom: bool = False  # DIST's distances: multiplied by the crop's zoom
    groups: np.ndarray | None = None  # (N,) int32: the data set of each piece (sorted), where there are several
    group_weights: np.ndarray | None = None  # (G,) float: how often each data set is drawn


def dataset_groups(tiles: list[Tile], config) -> tuple[np.ndarray, np.ndarray]:
    """Each tile's data set index (in the order of config.data) and the data sets' draw weights
    (config.dataset_weights, else even). One data set: all 0, weight 1."""
    from pathlib import Path

    names = [Path(p).resolve().name for p in config.data_paths]
    index = {name: i for i, name in enumerate(names)}
    groups = np.array([index.get(t.dataset, 0) for t in tiles], np.int32)
    weights = np.asarray(config.dataset_weights if config.dataset_weights is not None else [1.0] * len(names), float)
    present = np.zeros(len(names), bool)
    present[np.unique(groups)] = True
    weights = np.where(present, weights, 0.0)  # a data set with no tiles here (left out) is never drawn
    return groups, weights / weights.sum()


class ClassTargets:
    """The binary nets' targets (nucleus mask and U-Net's weight map): what `prepare_tiles` and
    `evaluation_dataset` make where they are given no output kind. Any object with
    `targets(label, config)` and `target_scales_with_zoom` serves (nucseg.postprocess.kinds)."""

    target_scales_with_zoom = False

    @staticmethod
    def targets(label: np.ndarray, config) -> tuple[np.ndarray, np.ndarray]:
        target = binary_target(label, config.separate_touching)
        return target, weight_map(label, target, config.class_balance, config.border_weight, config.border_sigma)


def tile_target_and_weight(tile: Tile, config, kind=ClassTargets) -> tuple[np.ndarray, np.ndarray]:
    """The tile's training target and per-pixel weight, as the net's output kind makes them."""
    return kind.targets(tile.label, config)


def piece_side(tiles: list[Tile], crop: int) -> int:
    """The side of the pieces the stack is made of: the median tile side, at least twice the crop."""
    return max(int(np.median([max(t.label.shape) for t in tiles])), 2 * crop)


def piece_windows(height: int, width: int, side: int, overlap: int) -> list[tuple[slice, slice]]:
    """Windows of at most side x side covering a height x width tile, overlapping by `overlap`
    (at least the crop, so that every crop that fits in the tile fits in one piece)."""

    def starts(length):
        if length <= side:
            return [0]
        step = side - overlap
        positions = list(range(0, length - side, step)) + [length - side]
        return sorted(set(positions))

    pieces_y = [slice(y, min(y + side, height)) for y in starts(height)]
    pieces_x = [slice(x, min(x + side, width)) for x in starts(width)]
    return [(y, x) for y in pieces_y for x in pieces_x]


def prepare_tiles(tiles: list[Tile], config, kind=ClassTargets) -> TileStack:
    """Targets and weights of every tile (computed on the whole tile), then the tiles cut into
    pieces no larger than `piece_side` and padded to it. Memory grows with the pixels of the data
    set, not with (tiles x largest tile): one 6000 x 6000 tile beside 512 x 512 ones becomes
    overlapping pieces of 512 x 512 instead of forcing every tile to 6000 x 6000. A large tile is
    then drawn in proportion to its pieces (its area), a tile of the usual size once."""
    if not tiles:
        raise ValueError("no tiles to train on")
    too_small = [t for t in tiles if min(t.label.shape) < config.crop]
    if too_small:
        names = ", ".join(f"{t.patient}/{t.tile_id} ({t.label.shape[1]}x{t.label.shape[0]})" for t in too_small[:5])
        raise InputError(
            f"crop={config.crop} is larger than {len(too_small)} tile(s): {names}. "
            f"Use --crop {max(32, min(min(t.label.shape) for t in tiles) // 32 * 32)} or less."
        )
    side = piece_side(tiles, config.crop)
    tile_groups, group_weights = dataset_groups(tiles, config)
    pieces, groups = [], []
    for tile, group in sorted(
        zip(tiles, tile_groups), key=lambda pair: pair[1]
    ):  # stable: order within a data set kept
        target_weight = np.stack(tile_target_and_weight(tile, config, kind), axis=-1)
        for window in piece_windows(*tile.label.shape, side, overlap=config.crop):
            pieces.append((tile.image[window], target_weight[window]))
            groups.append(group)
    images = np.zeros((len(pieces), side, side, 3), np.uint8)
    targets_weights = np.zeros((len(pieces), side, side, 2), np.float32)
    for i, (image, target_weight) in enumerate(pieces):
        h, w = image.shape[:2]
        images[i, :h, :w] = image
        targets_weights[i, :h, :w] = target_weight
    sizes = np.array([image.shape[:2] for image, _ in pieces], np.int32)
    zoomed = kind.target_scales_with_zoom
    if len(group_weights) == 1:
        return TileStack(images, targets_weights, sizes, zoomed)
    return TileStack(images, targets_weights, sizes, zoomed, np.array(groups, np.int32), group_weights)


def without_autograph(function):
    """A stream's function traced as written: its branches are tf.cond and tf.where, and its
    Python `if`s test settings, not tensors, so AutoGraph's rewrite of it (and of all it calls)
    would change nothing but the time: the same batches to the bit, built about 1.4 s sooner on a
    2-core EPYC (docs/speed.md, twenty-fourth round). A tensor tested by a Python `if` would fail
    at once, as the stream is built."""
    return tf.autograph.experimental.do_not_convert(function)


def training_dataset(stack: TileStack, config, start_batch: int = 0) -> tf.data.Dataset:
    """Endless (image, target, weight) batches of augmented crops, from batch `start_batch` on.

    Sample i is drawn from (seed, i) alone: geometry and blur per sample, where the gathers
    stay within one cache-resident tile; stain jitter per batch, where one op serves B images.
    """
    augment, jitter = make_augmenter(config, stack.target_scales_with_zoom), make_batch_jitter(config)
    images, targets_weights = tf.constant(stack.images), tf.constant(stack.targets_weights)
    sizes, batch_size = tf.constant(stack.sizes), config.batch_size
    seed = tf.constant(config.seed, tf.int64)

    pick = _piece_picker(stack)

    def make_sample(index):
        pick_seed, sample_seed = tf.unstack(tf.random.experimental.stateless_split(tf.stack([seed, index]), num=2))
        i = pick(pick_seed)
        return augment(sample_seed, images[i], targets_weights[i], sizes[i, 0], sizes[i, 1])

    def jitter_batch(index, batch):
        image, target, weight = batch
        image = jitter(image, tf.stack([seed, -1 - index]))  # seeds apart from the samples' ones
        return image, target, weight

    cores = usable_cores()
    samples = tf.data.Dataset.range(start_batch * batch_size, np.iinfo(np.int64).max)
    samples = samples.map(without_autograph(make_sample), num_parallel_calls=cores, deterministic=True)
    batches = samples.batch(batch_size, drop_remainder=True).enumerate(start_batch)
    batches = batches.map(without_autograph(jitter_batch), num_parallel_calls=cores, deterministic=True)
    options = tf.data.Options()
    options.threading.max_intra_op_parallelism = 1  # parallel samples beat parallel ops within one
    # No autotuning: its model thread sleeps up to a minute between passes, and on TensorFlow 2.21
    # the end of a Keras fit (the iterator's destructor) waited for it to wake: 0 to 29 s idle at
    # the end of each fold on a 2-core AMD EPYC (docs/speed.md, twenty-second round). The stream
    # costs about 5 ms of a ~90 ms step there, so a fixed parallelism and two batches ahead keep
    # the net fed.
    options.autotune.enabled = False
    return batches.prefetch(2).with_options(options)


def _piece_picker(stack: TileStack):
    """seed -> the index of a piece: uniform over the pieces of one data set; with several data
    sets, first a data set by its weight, then a piece of it, so that a small data set is drawn as
    often as a large one (evenly by default)."""
    n_pieces = len(stack.sizes)
    if stack.groups is None:
        return lambda seed: tf.random.stateless_uniform([], seed, maxval=n_pieces, dtype=tf.int32)
    counts = np.bincount(stack.groups, minlength=len(stack.group_weights))
    starts = tf.constant(np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int32))
    counts_t = tf.constant(np.maximum(counts, 1).astype(np.float32))
    logits = tf.constant(np.log(np.maximum(stack.group_weights, 1e-12))[None, :].astype(np.float32))

    def pick(seed):
        group_seed, piece_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
        group = tf.cast(tf.random.stateless_categorical(logits, 1, group_seed)[0, 0], tf.int32)
        u = tf.random.stateless_uniform([], piece_seed)
        within = tf.minimum(tf.cast(u * counts_t[group], tf.int32), tf.cast(counts_t[group], tf.int32) - 1)
        return starts[group] + within

    return pick


def evaluation_dataset(tiles: list[Tile], config, kind=ClassTargets) -> tf.data.Dataset:
    """Whole tiles, unaugmented, in order: (image float32 0..255, target float32, weight).
    Sides are padded to a multiple of 32 (mirrored image, weight 0) so any net takes them."""

    def generate():
        for tile in tiles:
            target, weight = tile_target_and_weight(tile, config, kind)
            pad = [(0, -side % SIZE_MULTIPLE) for side in target.shape]
            yield (
                np.pad(tile.image, [*pad, (0, 0)], mode="reflect").astype(np.float32),
                np.pad(target, pad).astype(np.float32),
                np.pad(weight, pad),
            )

    signature = (
        tf.TensorSpec([None, None, 3], tf.float32),
        tf.TensorSpec([None, None], tf.float32),
        tf.TensorSpec([None, None], tf.float32),
    )
    stream = tf.data.Dataset.from_generator(generate, output_signature=signature)
    return stream.apply(tf.data.experimental.assert_cardinality(len(tiles))).batch(1)


def with_teacher(batches: tf.data.Dataset, teacher, share: float) -> tf.data.Dataset:
    """Knowledge distillation: each batch's target becomes (1 - share) * target + share *
    teacher(image), the teacher's distance on the same augmented crop (its gradient is that of
    the two squared errors, weighted, summed). `teacher`: a Keras model from image to (..., 1).

    The teacher runs in the input pipeline, so on the CPU (tf.data's device) beside the training
    step: measured on 2 CPU cores, a taught 8..128 DIST fold took 246-361 s (two seeds) against 356-511 s for
    its 16..256 teacher's. On a GPU it would be the CPU's work that bounds a step; not measured."""

    def blend(image, target, weight):
        taught = tf.cast(teacher(image, training=False)[..., 0], tf.float32)
        return image, (1.0 - share) * target + share * taught, weight

    return batches.map(without_autograph(blend)).prefetch(1)


def for_keras(image, target, weight):
    """Keras's fit takes (x, y): y packs the target and the weight as two channels."""
    return image, tf.stack([tf.cast(target, tf.float32), weight], axis=-1)
