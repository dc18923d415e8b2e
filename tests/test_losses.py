import numpy as np
import tensorflow as tf

from nucseg.models.losses import masked_weighted_cross_entropy


def numpy_loss(target, weight, probabilities):
    p_true = np.where(target == 1, probabilities[..., 1], probabilities[..., 0])
    return -(weight * np.log(p_true)).sum() / weight.sum()


def sample(rng, shape=(2, 4, 5)):
    logits = rng.normal(size=(*shape, 2))
    probabilities = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    target = rng.integers(0, 2, shape).astype(np.float32)
    weight = rng.uniform(0, 3, shape).astype(np.float32)
    return target, weight, probabilities.astype(np.float32)


def loss(target, weight, probabilities):
    return float(masked_weighted_cross_entropy(np.stack([target, weight], -1), probabilities))


def test_matches_numpy_on_hand_made_arrays():
    target, weight, probabilities = sample(np.random.default_rng(0))
    assert np.isclose(loss(target, weight, probabilities), numpy_loss(target, weight, probabilities), rtol=1e-5)


def test_hand_computed_value():
    target = np.array([[1.0, 0.0]])
    weight = np.array([[1.0, 3.0]])
    probabilities = np.array([[[0.2, 0.8], [0.5, 0.5]]])
    expected = -(1 * np.log(0.8) + 3 * np.log(0.5)) / 4
    assert np.isclose(loss(target, weight, probabilities), expected)


def test_masked_pixels_change_neither_value_nor_gradient():
    target, weight, probabilities = sample(np.random.default_rng(1))
    weight[0, 0, :] = 0
    other = probabilities.copy()
    other[0, 0, :] = [[0.999, 0.001]] * other.shape[2]
    assert np.isclose(loss(target, weight, probabilities), loss(target, weight, other))
    p = tf.Variable(probabilities)
    with tf.GradientTape() as tape:
        value = masked_weighted_cross_entropy(tf.constant(np.stack([target, weight], -1)), p)
    gradient = tape.gradient(value, p).numpy()
    assert (gradient[0, 0] == 0).all() and np.abs(gradient[1]).sum() > 0


def test_all_masked_batch_gives_zero_not_nan():
    target, weight, probabilities = sample(np.random.default_rng(2))
    p = tf.Variable(probabilities)
    with tf.GradientTape() as tape:
        value = masked_weighted_cross_entropy(tf.constant(np.stack([target, 0 * weight], -1)), p)
    assert float(value) == 0.0
    assert np.isfinite(tape.gradient(value, p).numpy()).all()


def test_scaling_all_weights_changes_nothing():
    target, weight, probabilities = sample(np.random.default_rng(3))
    assert np.isclose(loss(target, weight, probabilities), loss(target, 7 * weight, probabilities), rtol=1e-5)
