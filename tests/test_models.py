import importlib.util
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from nucseg.config import Config
from nucseg.models import EncoderWeightsError, MaxUnpooling2D, build_model, deconvnet, fcn8, pangnet, unet
from nucseg.training.optimizer import compile_model

SMALL = {"pangnet": {}, "unet": {"base_filters": 4, "unet_depth": 3}, "fcn8": {"base_filters": 4, "fc_filters": 16},
         "deconvnet": {"base_filters": 4, "fc_filters": 16}}


def small_config(arch, **changes):
    return Config.from_profile("quick", arch=arch, **SMALL[arch], **changes)


@pytest.mark.parametrize("arch", list(SMALL))
def test_any_size_divisible_by_32_gives_probabilities_of_that_size(arch):
    model = build_model(small_config(arch))
    images = np.random.default_rng(0).uniform(0, 255, (2, 64, 96, 3)).astype(np.float32)
    out = np.asarray(model(images))
    assert out.shape == (2, 64, 96, 2)
    np.testing.assert_allclose(out.sum(-1), 1, atol=1e-5)


@pytest.mark.parametrize("arch", list(SMALL))
def test_each_net_overfits_a_fixed_batch(arch, glioma_tiles):
    config = small_config(arch, lr=0.1, lr_schedule="constant")
    model = compile_model(build_model(config), config, total_steps=100)
    images = np.stack([t.image[:64, :64] for t in glioma_tiles[:2]]).astype(np.float32)
    target = np.stack([t.label[:64, :64] > 0 for t in glioma_tiles[:2]]).astype(np.float32)
    y = np.stack([target, np.ones_like(target)], -1)
    first = float(model.train_on_batch(images, y))
    for _ in range(40):
        last = float(model.train_on_batch(images, y))
    assert last < 0.8 * first, (first, last)


def test_pangnet_is_the_papers_net():
    model = pangnet()
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [8, 8, 8, 2]
    assert [c.kernel_size for c in convs] == [(3, 3)] * 3 + [(1, 1)]
    assert model.count_params() == 1410


def test_paper_widths_match_the_original_nets():
    assert unet().count_params() == 31_049_474  # 64..1024, as Ronneberger et al. (plus batch norm)
    assert unet(64, 4, batch_norm=False).count_params() == 31_031_810  # the original U-Net's count with 2 classes


def test_fcn8_fuses_pool3_pool4_and_fc7_by_learned_upsampling():
    model = fcn8(base_filters=4, fc_filters=16)
    names = {layer.name for layer in model.layers}
    assert {"score_pool3", "score_pool4", "score_fr", "upscore2", "upscore_pool4", "upscore8", "fc6", "fc7"} <= names
    strides = {layer.name: layer.strides for layer in model.layers if isinstance(layer, keras.layers.Conv2DTranspose)}
    assert strides == {"upscore2": (2, 2), "upscore_pool4": (2, 2), "upscore8": (8, 8)}


def test_deconvnet_unpools_with_switches_and_has_no_skips():
    model = deconvnet(base_filters=4, fc_filters=16)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("MaxUnpooling2D") == 5
    assert "Concatenate" not in kinds and "Add" not in kinds


def test_unpooling_puts_each_value_where_the_max_was():
    before = np.array([[1, 5, 0, 0], [2, 3, 0, 9], [7, 7, 1, 1], [0, 0, 1, 1]], np.float32)[None, :, :, None]
    pooled = np.array([[10, 20], [30, 40]], np.float32)[None, :, :, None]
    out = np.asarray(MaxUnpooling2D()([pooled, before]))[0, :, :, 0]
    expected = np.array([[0, 10, 0, 0], [0, 0, 0, 20], [30, 0, 40, 0], [0, 0, 0, 0]], np.float32)  # ties: first
    np.testing.assert_array_equal(out, expected)


def test_encoder_weights_from_a_local_file(tmp_path):
    reference = keras.applications.VGG16(include_top=False, weights=None, input_shape=(None, None, 3))
    path = tmp_path / "vgg16_notop.weights.h5"
    reference.save_weights(path)
    model = fcn8(fc_filters=8, encoder_weights=str(path))
    for name in ("block1_conv1", "block5_conv3"):
        for got, want in zip(model.get_layer(name).get_weights(), reference.get_layer(name).get_weights()):
            np.testing.assert_array_equal(got, want)
    # pretrained weights expect BGR minus the ImageNet mean: the model does it itself
    assert model.get_layer("normalise_imagenet").trainable is False


def test_offline_imagenet_weights_say_what_to_do(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("URL fetch failure: no network")

    monkeypatch.setattr(keras.applications, "VGG16", offline)
    with pytest.raises(EncoderWeightsError) as raised:
        fcn8(fc_filters=8, encoder_weights="imagenet")
    message = str(raised.value)
    assert "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5" in message and "encoder_weights=" in message


def test_pretrained_encoder_needs_the_vgg16_width(tmp_path):
    with pytest.raises(EncoderWeightsError, match="base_filters=64"):
        fcn8(base_filters=8, encoder_weights=str(tmp_path / "x.weights.h5"))


def test_mixed_precision_keeps_float32_probabilities(monkeypatch):
    monkeypatch.setattr("nucseg.hardware.keras_sees_gpu", lambda: True)
    model = build_model(small_config("unet", mixed_precision=True))
    assert model.get_layer("down0_conv1").compute_dtype == "float16"
    assert np.asarray(model(np.zeros((1, 32, 32, 3), np.float32))).dtype == np.float32
    assert keras.config.dtype_policy().name == "float32"  # the global policy is left as it was


def test_mixed_precision_on_a_cpu_is_bfloat16_and_warned_where_it_is_emulated(monkeypatch, caplog):
    """float16 has no CPU hardware (a training step 100 times as slow as float32 on an AMX Xeon)."""
    import nucseg.hardware

    monkeypatch.setattr(nucseg.hardware, "keras_sees_gpu", lambda: False)
    monkeypatch.setattr(nucseg.hardware, "cpu_flags", lambda: frozenset({"avx2", "avx512_bf16", "amx_bf16"}))
    model = build_model(small_config("unet", mixed_precision=True))
    assert model.get_layer("down0_conv1").compute_dtype == "bfloat16" and not caplog.records
    monkeypatch.setattr(nucseg.hardware, "cpu_flags", lambda: frozenset({"avx2", "fma"}))  # an AVX2-only CPU
    model = build_model(small_config("unet", mixed_precision=True))
    assert model.get_layer("down0_conv1").compute_dtype == "bfloat16"
    assert "emulated, and slower than float32 here" in caplog.text


@pytest.mark.parametrize("shape, dtype", [((4, 32, 32, 8), "float32"), ((2, 3, 5, 4), "float32"),
                                          ((1, 1, 1, 3), "float32"), ((2, 8, 8, 4), "mixed_bfloat16")])
def test_fused_batch_norm_trains_as_keras_own_does(shape, dtype):
    """Outputs, gradients and moving averages of a training step as Keras's BatchNormalization's,
    with TensorFlow's fused kernel doing the work; at inference, the very same outputs."""
    import tensorflow as tf

    from nucseg.models.blocks import FusedBatchNormalization

    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(1.0, 3.0, shape).astype(np.float32))
    upstream = tf.constant(rng.normal(size=shape).astype(np.float32))
    gamma, beta = rng.normal(size=(2, shape[-1])).astype(np.float32)

    def step(layer):
        layer.build(shape)
        layer.gamma.assign(gamma), layer.beta.assign(beta)

        @tf.function
        def train(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x, training=True)
                loss = tf.reduce_sum(tf.cast(y, "float32") * upstream)
            return y, tape.gradient(loss, [x, layer.gamma.value, layer.beta.value])

        y, grads = train(x)
        ops = {op.type for op in train.get_concrete_function(x).graph.get_operations()}
        return [y, *grads, layer.moving_mean, layer.moving_variance], ops, layer

    keras_own, keras_ops, keras_layer = step(keras.layers.BatchNormalization(momentum=0.5, dtype=dtype))
    fused, fused_ops, fused_layer = step(FusedBatchNormalization(momentum=0.5, dtype=dtype))
    assert "FusedBatchNormV3" in fused_ops and "FusedBatchNormV3" not in keras_ops
    assert fused[0].dtype == keras_own[0].dtype == keras_layer.compute_dtype
    tolerance = 2e-2 if dtype == "mixed_bfloat16" else 1e-4
    for ours, theirs in zip(fused, keras_own):
        theirs = np.asarray(tf.cast(theirs, "float32"))
        np.testing.assert_allclose(np.asarray(tf.cast(ours, "float32")), theirs, rtol=tolerance, atol=tolerance)
    fused_layer.moving_variance.assign(keras_layer.moving_variance)
    fused_layer.moving_mean.assign(keras_layer.moving_mean)
    np.testing.assert_array_equal(np.asarray(fused_layer(x)), np.asarray(keras_layer(x)))


@pytest.mark.parametrize("option", [{"renorm": True}, {"synchronized": True}])
def test_fused_batch_norm_leaves_to_keras_what_the_fused_kernel_cannot_do(option):
    import tensorflow as tf

    from nucseg.models.blocks import FusedBatchNormalization

    layer = FusedBatchNormalization(**option)
    x = tf.constant(np.random.default_rng(0).normal(size=(2, 4, 4, 3)).astype(np.float32))
    layer.build(x.shape)
    train = tf.function(lambda x: layer(x, training=True))
    assert "FusedBatchNormV3" not in {op.type for op in train.get_concrete_function(x).graph.get_operations()}


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")
def test_every_net_runs_and_a_fold_trains_and_exports_under_jax(glioma_path, tmp_path):
    code = (
        "import numpy as np; from nucseg.config import Config; from nucseg.models import build_model\n"
        "import sys; sys.path.insert(0, 'tests'); from test_models import small_config, SMALL\n"
        "for arch in SMALL:\n"
        "    out = np.asarray(build_model(small_config(arch))(np.zeros((1, 64, 96, 3), 'float32')))\n"
        "    assert out.shape == (1, 64, 96, 2), out.shape\n"
        "import sys, pathlib; from nucseg.data.dataset import load_dataset; from nucseg.study.fold import train_fold\n"
        "config = small_config('unet', data=sys.argv[1], steps=4, steps_per_epoch=2, crop=64)\n"
        "result = train_fold(config, load_dataset(sys.argv[1]), 'TCGA-DU-8165', sys.argv[2], verbose=0)\n"
        "assert (pathlib.Path(sys.argv[2]) / 'saved_model' / 'saved_model.pb').is_file() and result.steps == 4\n"
        "print('ok')\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    done = subprocess.run([sys.executable, "-c", code, str(glioma_path), str(tmp_path / "fold")], env=env,
                          capture_output=True, text=True, timeout=600,
                          cwd=os.path.dirname(os.path.dirname(__file__)))
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-2000:]


def test_per_image_normalisation_ignores_a_tiles_overall_stain_intensity(tmp_path):
    from nucseg.models import custom_objects
    from nucseg.models.nets import pangnet

    model = pangnet(input_norm="per_image")
    image = np.random.default_rng(0).uniform(40, 200, (1, 64, 64, 3)).astype(np.float32)
    paler = 0.6 * image + 90  # the same tile, paler and with less contrast
    np.testing.assert_allclose(np.asarray(model(paler)), np.asarray(model(image)), atol=1e-4)
    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras", custom_objects=custom_objects(), compile=False)
    np.testing.assert_allclose(np.asarray(reloaded(image)), np.asarray(model(image)), atol=1e-6)


def test_dist_is_the_unet_body_with_a_one_channel_linear_head(glioma_tiles):
    from nucseg.data.weights import distance_target

    config = Config.from_profile("quick", arch="dist", base_filters=4, unet_depth=3)
    dist, binary = build_model(config), build_model(config.replace(arch="unet"))
    images = np.stack([t.image[:64, :64] for t in glioma_tiles[:2]]).astype(np.float32)
    assert np.asarray(dist(images)).shape == (2, 64, 64, 1)
    body = [layer.name for layer in dist.layers][:-2]
    assert body == [layer.name for layer in binary.layers][:-2]  # same blocks, only the head differs
    assert dist.count_params() - binary.count_params() == -(4 * 2 + 2) + (4 + 1)

    config = config.replace(lr=0.05, lr_schedule="constant")
    model = compile_model(build_model(config), config, total_steps=100)
    target = np.stack([distance_target(t.label[:64, :64]) for t in glioma_tiles[:2]])
    y = np.stack([target, np.ones_like(target)], -1)
    first = float(model.train_on_batch(images, y))
    for _ in range(40):
        last = float(model.train_on_batch(images, y))
    assert last < 0.5 * first, (first, last)

    mixed = build_model(config.replace(mixed_precision=True))
    assert mixed.get_layer("distance").dtype_policy.compute_dtype == "float32"
    assert mixed.get_layer("down0_conv1").dtype_policy.compute_dtype in ("float16", "bfloat16")


def test_cheaper_dist_variants_keep_full_resolution_at_the_cost_counted():
    from nucseg.bench.models import gmac_per_megapixel

    config = Config.from_profile("quick", arch="dist", base_filters=4, unet_depth=3)
    images = np.random.default_rng(0).uniform(0, 255, (1, 64, 128, 3)).astype(np.float32)
    cost = {}
    for name, changes in {"full": {}, "grid": {"grid": 2}, "skip": {"grid": 2, "grid_skip": True},
                          "separable": {"separable": True},
                          "separable_from_2": {"separable": True, "separable_from": 2}}.items():
        model = build_model(config.replace(**changes))
        assert np.asarray(model(images)).shape == (1, 64, 128, 1), name
        cost[name] = gmac_per_megapixel(model, side=128)
    assert cost["grid"] < cost["full"] / 3  # the U-Net at half resolution: about a quarter
    # one more 3x3 convolution at full resolution: 4 stem + 4 upsampled inputs -> 4 filters per pixel
    assert cost["skip"] - cost["grid"] == pytest.approx(9 * 8 * 4 / 1000)
    assert cost["separable"] < cost["separable_from_2"] < cost["full"]
    later = build_model(config.replace(separable=True, separable_from=2))
    assert type(later.get_layer("down1_conv1")).__name__ == "Conv2D"  # level 1 stays a full 3x3
    assert type(later.get_layer("down2_conv1")).__name__ == "SeparableConv2D"
    assert type(later.get_layer("bottom_conv1")).__name__ == "SeparableConv2D"
    from nucseg.config import ConfigError

    with pytest.raises(ConfigError, match="separable_from=4 must be between 1 and unet_depth=3"):
        config.replace(separable=True, separable_from=4)

    with pytest.raises(ConfigError, match="grid_skip=true needs grid=2"):
        config.replace(grid_skip=True)


def test_the_cpu_profile_keeps_deconvnet_at_16_filters_and_narrows_the_others():
    """DeconvNet lost 0.08 AJI at 8 filters (results/measured/tnbc_cpu_deconvnet_b8_3000); the other
    nets scored as high at 8 (docs/speed.md, seventeenth round)."""

    def first_width(**fields):
        model = build_model(Config.from_profile("cpu", **fields))
        return next(layer.filters for layer in model.layers if isinstance(layer, keras.layers.Conv2D))

    assert first_width(arch="deconvnet") == 16
    assert first_width(arch="deconvnet", deconvnet_filters=0) == 8  # 0: base_filters, as before the field
    assert first_width(arch="fcn8") == first_width(arch="unet") == 8
