import numpy as np
import pytest
import tensorflow as tf

from nucseg.augment import elastic_basis, elastic_displacement, source_coordinates, warp
from nucseg.config import Config
from nucseg.pipeline import evaluation_dataset, prepare_tiles, training_dataset


def test_elasticdeform_imports_under_numpy2():
    import elasticdeform

    assert int(np.__version__.split(".")[0]) >= 2
    assert callable(elasticdeform.deform_grid)


def identity_coords(size):
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    return np.stack([yy, xx], -1)


def test_warp_matches_elasticdeform_on_the_same_grid(glioma_tiles):
    import elasticdeform

    size, points = 128, 3
    image = glioma_tiles[0].image[:size, :size]
    target = (glioma_tiles[0].label[:size, :size] > 0).astype(np.uint8)
    grid = np.random.default_rng(1).normal(0, 4, (2, points, points)).astype(np.float32)
    displacement = elastic_displacement(tf.constant(grid), tf.constant(elastic_basis(size, points))).numpy()
    coords = identity_coords(size) + np.moveaxis(displacement, 0, -1)
    target_weight = tf.stack([tf.constant(target, tf.float32), tf.ones((size, size))], axis=-1)
    ours, ours_target, weight = warp(tf.constant(image), target_weight, tf.constant(coords), size, size)

    reference = elasticdeform.deform_grid(image.astype(np.float64), grid, order=1, mode="nearest", axis=(0, 1))
    reference_target = elasticdeform.deform_grid(target, grid, order=0, mode="nearest", axis=(0, 1))
    assert np.abs(ours.numpy() - reference).max() < 0.05  # bilinear, same displacement: equal up to rounding
    inside = weight.numpy() > 0  # nucseg zeroes the target where the source is outside the tile
    assert 0.9 < inside.mean() < 1
    assert np.mean(ours_target.numpy()[inside] == reference_target[inside]) > 0.999  # ties may round apart


def test_identity_transform_returns_the_crop():
    config = Config(crop=64, flip=False, rotate90=False, rotate_max_degrees=0, elastic_probability=0)
    coords = source_coordinates(config, tf.constant([1, 2], tf.int64), 64, 64, tf.constant(elastic_basis(64, 3)))
    np.testing.assert_allclose(coords.numpy(), identity_coords(64), atol=1e-4)


def test_pixels_brought_in_from_outside_get_weight_zero():
    image = np.full((32, 32, 3), 200, np.uint8)
    coords = identity_coords(32) + np.float32(10)  # shifted: the last 10 rows and columns fall outside
    _, target, weight = warp(tf.constant(image), tf.ones((32, 32, 2)), tf.constant(coords), 32, 32)
    assert (weight.numpy()[:22, :22] == 1).all()
    assert (weight.numpy()[23:] == 0).all() and (weight.numpy()[:, 23:] == 0).all()
    assert (target.numpy()[23:] == 0).all()


@pytest.fixture(scope="module")
def quick_config(glioma_path):
    return Config.from_profile("quick", data=str(glioma_path), crop=96, batch_size=4)


@pytest.fixture(scope="module")
def stack(glioma_tiles, quick_config):
    return prepare_tiles(glioma_tiles[:6], quick_config)


def test_training_batches_have_the_promised_shapes_and_values(stack, quick_config):
    image, target, weight = next(iter(training_dataset(stack, quick_config)))
    assert image.shape == (4, 96, 96, 3) and image.dtype == tf.float32
    assert target.shape == (4, 96, 96) and weight.shape == (4, 96, 96)
    assert 0 <= image.numpy().min() and image.numpy().max() <= 255
    assert set(np.unique(target.numpy())) <= {0, 1}  # nearest-neighbour: no blended labels
    assert (weight.numpy() >= 0).all() and (weight.numpy() > 0).mean() > 0.5


def test_same_seed_same_samples_other_seed_other_samples(stack, quick_config):
    first = next(iter(training_dataset(stack, quick_config)))[0].numpy()
    again = next(iter(training_dataset(stack, quick_config)))[0].numpy()
    other = next(iter(training_dataset(stack, quick_config.replace(seed=1))))[0].numpy()
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_a_resumed_stream_continues_where_it_stopped(stack, quick_config):
    stream = iter(training_dataset(stack, quick_config))
    next(stream)
    second = next(stream)[0].numpy()
    resumed = next(iter(training_dataset(stack, quick_config, start_batch=1)))[0].numpy()
    assert np.array_equal(second, resumed)


def test_xla_warp_equals_the_plain_graph(stack, quick_config):
    # (the random draws are not compared: under XLA, stateless RNG may pick another algorithm)
    basis = tf.constant(elastic_basis(quick_config.crop, quick_config.elastic_points))
    coords = source_coordinates(quick_config, tf.constant([3, 4], tf.int64), 512, 512, basis)
    image, target_weight = tf.constant(stack.images[0]), tf.constant(stack.targets_weights[0])

    def sample(c):
        return warp(image, target_weight, c, 512, 512)

    plain, compiled = tf.function(sample)(coords), tf.function(sample, jit_compile=True)(coords)
    np.testing.assert_allclose(plain[0].numpy(), compiled[0].numpy(), atol=1e-2)
    assert np.array_equal(plain[1].numpy(), compiled[1].numpy())
    np.testing.assert_allclose(plain[2].numpy(), compiled[2].numpy())


def test_augmentation_changes_the_samples(stack, quick_config):
    images = next(iter(training_dataset(stack, quick_config.replace(batch_size=8))))[0].numpy()
    assert len({img.tobytes() for img in images}) == 8


def test_evaluation_stream_is_whole_tiles_unaugmented(glioma_tiles, quick_config):
    tiles = glioma_tiles[:2]
    batches = list(evaluation_dataset(tiles, quick_config))
    assert len(batches) == 2
    image, target, weight = batches[1]
    assert np.array_equal(image.numpy()[0], tiles[1].image.astype(np.float32))
    assert image.shape == (1, 512, 512, 3) and target.shape == (1, 512, 512)


def test_evaluation_stream_pads_odd_sizes_with_weight_zero(glioma_tiles, quick_config):
    from nucseg.data import Tile

    tile = glioma_tiles[0]
    odd = Tile(tile.patient, tile.tile_id, tile.image[:500, :470], tile.label[:500, :470])
    image, target, weight = next(iter(evaluation_dataset([odd], quick_config)))
    assert image.shape == (1, 512, 480, 3)
    assert (weight.numpy()[0, 500:] == 0).all() and (weight.numpy()[0, :, 470:] == 0).all()
    assert (weight.numpy()[0, :500, :470] > 0).all()
