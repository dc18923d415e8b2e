import numpy as np
import pytest
import tensorflow as tf

from nucseg.data.augment import elastic_basis, elastic_displacement, source_coordinates, warp
from nucseg.config import Config
from nucseg.data.dataset import Tile
from nucseg.data.pipeline import evaluation_dataset, piece_windows, prepare_tiles, training_dataset


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
    coords, _ = source_coordinates(config, tf.constant([1, 2], tf.int64), 64, 64, tf.constant(elastic_basis(64, 3)))
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


def test_the_training_stream_runs_no_autotuning_thread(stack, quick_config):
    """tf.data's autotuning thread sleeps up to a minute between its passes, and the end of a Keras
    fit (the iterator's destructor) waited for it to wake: 0 to 29 s idle at the end of a fold."""
    options = training_dataset(stack, quick_config).options()
    assert options.autotune.enabled is False and options.threading.max_intra_op_parallelism == 1


def test_xla_warp_equals_the_plain_graph(stack, quick_config):
    # (the random draws are not compared: under XLA, stateless RNG may pick another algorithm)
    basis = tf.constant(elastic_basis(quick_config.crop, quick_config.elastic_points))
    coords, _ = source_coordinates(quick_config, tf.constant([3, 4], tf.int64), 512, 512, basis)
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
    from nucseg.data.dataset import Tile

    tile = glioma_tiles[0]
    odd = Tile(tile.patient, tile.tile_id, tile.image[:500, :470], tile.label[:500, :470])
    image, target, weight = next(iter(evaluation_dataset([odd], quick_config)))
    assert image.shape == (1, 512, 480, 3)
    assert (weight.numpy()[0, 500:] == 0).all() and (weight.numpy()[0, :, 470:] == 0).all()
    assert (weight.numpy()[0, :500, :470] > 0).all()


def test_nearest_neighbour_sampling_keeps_weight_values_as_they_are():
    rng = np.random.default_rng(0)
    weights = rng.choice(np.array([0.37, 1.5, 4.25, 9.75], np.float32), (48, 48))  # a non-binary weight map
    target_weight = np.stack([np.zeros_like(weights), weights], -1)
    angle = np.deg2rad(23.0)  # a free rotation: source coordinates fall between pixels
    yy, xx = identity_coords(48)[..., 0] - 23.5, identity_coords(48)[..., 1] - 23.5
    coords = np.stack([23.5 + np.cos(angle) * yy - np.sin(angle) * xx,
                       23.5 + np.sin(angle) * yy + np.cos(angle) * xx], -1)
    _, _, warped = warp(tf.constant(np.zeros((48, 48, 3), np.uint8)), tf.constant(target_weight),
                        tf.constant(coords.astype(np.float32)), 48, 48)
    values = set(np.unique(warped.numpy()).tolist()) - {0.0}
    assert values == set(np.float32([0.37, 1.5, 4.25, 9.75]).tolist())  # no value blended from two pixels
    inside = (coords.min(-1) >= 0) & (coords.max(-1) <= 47)
    rows, cols = np.round(coords[..., 0]).clip(0, 47).astype(int), np.round(coords[..., 1]).clip(0, 47).astype(int)
    nearest = weights[rows, cols]
    np.testing.assert_array_equal(warped.numpy()[inside], nearest[inside])


def test_a_folds_training_stream_never_holds_a_held_out_tile():
    from nucseg.training.train import training_stream

    colours = {"A": 30, "B": 120, "C": 210}  # each patient's tiles have one grey level of their own
    tiles = [Tile(p, f"{p}{k}", np.full((128, 128, 3), c, np.uint8), np.pad(np.ones((20, 20), np.int32), 54))
             for p, c in colours.items() for k in range(2)]
    config = Config.from_profile("quick", crop=64, batch_size=8, blur_probability=0, stain_jitter=0)
    train_tiles = [t for t in tiles if t.patient != "B"]  # what train_fold passes for held-out patient B
    seen = set()
    for images, _ in training_stream(config, train_tiles).take(20):
        seen |= set(np.unique(np.round(images.numpy())).tolist())
    assert seen <= {30.0, 210.0} and seen == {30.0, 210.0}, seen


def test_large_tiles_are_cut_into_pieces_not_every_tile_padded_to_them():
    rng = np.random.default_rng(0)
    small = [Tile("A", f"s{k}", rng.integers(0, 255, (256, 256, 3), dtype=np.uint8), np.zeros((256, 256), np.int32))
             for k in range(4)]
    big = Tile("B", "big", rng.integers(0, 255, (1500, 1100, 3), dtype=np.uint8), np.zeros((1500, 1100), np.int32))
    config = Config.from_profile("quick", crop=64)
    stack = prepare_tiles([*small, big], config)
    assert stack.images.shape[1:3] == (256, 256)  # the usual tile size, not 1500 x 1100
    pixels = 4 * 256 * 256 + 1500 * 1100
    assert stack.images.shape[0] * 256 * 256 < 2 * pixels  # overlap of one crop only
    windows = piece_windows(1500, 1100, 256, overlap=64)
    covered = np.zeros((1500, 1100), bool)
    for wy, wx in windows:
        covered[wy, wx] = True
        assert wy.stop - wy.start <= 256 and wx.stop - wx.start <= 256
    assert covered.all()
    for y in range(0, 1500 - 64, 37):  # every 64 x 64 crop of the big tile lies in one piece
        assert any(wy.start <= y and y + 64 <= wy.stop for wy, _ in windows)


def test_a_crop_larger_than_the_tiles_is_refused():
    from nucseg.errors import InputError

    tiles = [Tile("A", "a", np.zeros((100, 120, 3), np.uint8), np.zeros((100, 120), np.int32))]
    with pytest.raises(InputError, match="crop=128 is larger than 1 tile.*A/a \\(120x100\\).*--crop 96"):
        prepare_tiles(tiles, Config.from_profile("quick", crop=128))


def test_zoom_scales_the_sampling_grid_within_its_range():
    config = Config(crop=64, flip=False, rotate90=False, rotate_max_degrees=0, elastic_probability=0, zoom_max=2.0)
    basis = tf.constant(elastic_basis(64, 3))
    steps = []
    for k in range(20):
        coords = source_coordinates(config, tf.constant([k, 7], tf.int64), 512, 512, basis)[0].numpy()
        step = np.diff(coords[..., 1], axis=1)  # source pixels per output pixel, along x
        assert np.allclose(step, step[0, 0], atol=1e-4)  # one zoom for the whole crop
        steps.append(step[0, 0])
    assert 0.5 - 1e-4 <= min(steps) and max(steps) <= 2.0 + 1e-4
    assert min(steps) < 0.8 and max(steps) > 1.25  # both magnified and shrunk crops are drawn


def test_colour_jitter_is_bounded_and_off_by_default():
    from nucseg.data.augment import colour_jitter

    images = tf.constant(np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 3)).astype(np.float32))
    seed = tf.constant([1, 2], tf.int64)
    np.testing.assert_allclose(colour_jitter(images, seed, Config()).numpy(), images.numpy(), atol=1e-3)
    brighter = colour_jitter(images, seed, Config(brightness=0.1)).numpy()
    shift = (brighter - images.numpy())[(images.numpy() > 30) & (images.numpy() < 225)]  # away from clipping
    assert np.abs(shift).max() <= 0.1 * 255 + 1e-3 and np.abs(shift).max() > 1.0
    jittered = colour_jitter(images, seed, Config(brightness=0.3, contrast=0.5, saturation=0.5, gamma=0.5)).numpy()
    assert jittered.min() >= 0 and jittered.max() <= 255
