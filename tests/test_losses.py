"""GAN loss pairs: finite values, and gradients that push D and G the right way (real = 1, fake = 0).

For a loss L on one logit, gradient descent moves the logit by -dL/dlogit. D should raise its logit on
a real image and lower it on a fake; G should raise D's logit on its fake.
"""

import numpy as np
import pytest
import tensorflow as tf

from ganhelpers import losses

PAIRS = ["bce", "bce_probs", "kl", "smooth_l1", "lsgan", "hinge"]


def _grad(fn, logit, target):
    x = tf.Variable([[logit]], dtype=tf.float32)
    with tf.GradientTape() as tape:
        loss = fn(x, tf.constant([[target]], tf.float32))
    return float(loss), float(tape.gradient(loss, x)[0, 0])


def test_every_named_pair_is_registered():
    assert set(PAIRS) <= set(losses.names())
    for name in PAIRS:
        pair = losses.get(name)
        assert isinstance(pair, losses.GANLoss) and pair.name == name
    with pytest.raises(ValueError, match="choose one of"):
        losses.get("wasserstein-ish")


@pytest.mark.parametrize("name", PAIRS)
@pytest.mark.parametrize("logit", [0.25, 0.5, 0.75])
def test_gradients_push_d_and_g_the_right_way(name, logit):
    # An undecided D: between LSGAN's two targets (0 and 1) and inside hinge's margins (-1, 1).
    pair = losses.get(name)
    _, g_real = _grad(pair.real, logit, 1.0)
    _, g_fake = _grad(pair.fake, logit, 0.0)
    _, g_gen = _grad(pair.generator, logit, 1.0)
    assert g_real < 0, "D's loss on a real image must fall as its logit rises"
    assert g_fake > 0, "D's loss on a fake image must fall as its logit falls"
    assert g_gen < 0, "G's loss must fall as D's logit on its fake rises"


@pytest.mark.parametrize("name", PAIRS + ["kl_keras"])
def test_finite_float32_scalars_even_for_extreme_logits(name):
    pair = losses.get(name)
    logits = tf.constant([[-80.0], [-3.0], [0.0], [3.0], [80.0]], tf.float16)  # mixed-precision input
    for fn, target in ((pair.real, 1.0), (pair.fake, 0.0), (pair.generator, 1.0)):
        value = fn(logits, tf.fill((5, 1), target))
        assert value.dtype == tf.float32 and value.shape == ()
        assert np.isfinite(value.numpy())


def test_values_against_hand_computed_formulas():
    p = 1 / (1 + np.exp(-0.5))
    assert float(losses.bce_on_probs(tf.constant([[0.5]]), 1.0)) == pytest.approx(-np.log(p), rel=1e-5)
    # Keras clips probabilities to [1e-7, 1 - 1e-7]: a confidently wrong D costs -log(1e-7), not inf.
    assert float(losses.bce_on_probs(tf.constant([[-40.0]]), 1.0)) == pytest.approx(-np.log(1e-7), rel=1e-4)
    assert float(losses.smooth_l1_on_probs(tf.constant([[0.5]]), 1.0)) == pytest.approx(0.5 * (1 - p) ** 2, rel=1e-5)
    assert float(losses.least_squares(tf.constant([[0.5]]), 1.0)) == pytest.approx(0.125)
    assert float(losses.hinge_real(tf.constant([[0.5], [2.0]]))) == pytest.approx(0.25)
    assert float(losses.hinge_fake(tf.constant([[0.5], [-2.0]]))) == pytest.approx(0.75)
    assert float(losses.hinge_generator(tf.constant([[0.5], [2.0]]))) == pytest.approx(-1.25)


def test_bce_on_probabilities_saturates_where_bce_on_logits_does_not():
    _, g_probs = _grad(losses.get("bce_probs").generator, -20.0, 1.0)
    _, g_logits = _grad(losses.get("bce").generator, -20.0, 1.0)
    assert g_probs == 0.0  # p clipped at 1e-7: G learns nothing from a confident D
    assert g_logits == pytest.approx(-1.0, abs=1e-6)


def test_least_squares_pulls_logits_to_their_targets_from_both_sides():
    # Unlike a saturating sigmoid, LSGAN still moves a fake that is "too fake" (logit -2) back to 0.
    assert _grad(losses.least_squares, -2.0, 0.0)[1] == pytest.approx(-2.0)
    assert _grad(losses.least_squares, 3.0, 1.0)[1] == pytest.approx(2.0)


def test_kl_is_bce_minus_the_target_entropy():
    logits = tf.constant([[-1.0], [0.3], [2.0]])
    t = tf.constant([[0.9], [0.1], [0.5]])
    entropy = -(t * tf.math.log(t) + (1 - t) * tf.math.log(1 - t))
    expected = float(losses.bce_with_logits(logits, t)) - float(tf.reduce_mean(entropy))
    assert float(losses.bernoulli_kl(logits, t)) == pytest.approx(expected, abs=1e-6)
    assert float(losses.bernoulli_kl(logits, tf.ones_like(logits))) == pytest.approx(
        float(losses.bce_with_logits(logits, 1.0)), abs=1e-6)


def test_keras_one_unit_kl_gives_d_almost_no_signal_on_fakes():
    # The failure mode the "kl" pair avoids: clip(0) = 1e-7, so the fake term is ~1e-7 * log(1e-7 / p).
    _, g_fake = _grad(losses.get("kl_keras").fake, 2.0, 0.0)
    _, g_bce = _grad(losses.get("bce").fake, 2.0, 0.0)
    assert abs(g_fake) < 1e-6 and g_bce > 0.8
