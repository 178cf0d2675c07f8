"""GAN losses, each a pair: the discriminator's loss (on a real and on a fake batch) and the generator's.

Every loss takes the discriminator's raw outputs (logits, or critic values) and the targets the
train step drew (real = 1, fake = 0, possibly softened or flipped by label noise). Losses that have
no notion of a target (hinge, Wasserstein) ignore it. All losses return a float32 scalar, the mean
over the batch.

Registered pairs (``get(name)``): ``bce`` (from logits), ``bce_probs`` (on sigmoid probabilities,
clipped as Keras does), ``kl`` (Bernoulli KL), ``kl_keras`` (Keras's one-unit KLDivergence, kept to
reproduce the dog experiment), ``smooth_l1`` (on probabilities), ``lsgan``, ``hinge`` and
``wasserstein`` (critic scores). Also here, the one copy of each critic regulariser:
:func:`gradient_penalty` (WGAN-GP, PGGAN) and :func:`drift_penalty` (PGGAN).

Each pair carries the ``threshold`` on D's raw output that separates "real" from "fake" for the
accuracy metrics: 0 for logits (sigmoid 0.5), hinge and critic scores; 0.5 for LSGAN, whose
targets 0 and 1 are on the raw output itself.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import tensorflow as tf


class GANLoss(NamedTuple):
    """``real(logits, targets)`` and ``fake(logits, targets)`` are D's losses on a real and a fake batch;
    ``generator(logits, targets)`` is G's loss on D's logits for generated images, ``targets`` being
    what G wants D to say (1 = real)."""

    name: str
    real: Callable
    fake: Callable
    generator: Callable
    threshold: float = 0.0


def _f32(x):
    return tf.cast(x, tf.float32)


def bce_with_logits(logits, targets):
    """Binary cross-entropy computed from logits (numerically stable; the default)."""
    logits, targets = _f32(logits), _f32(targets)
    targets = tf.broadcast_to(targets, tf.shape(logits))
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits))


BCE = GANLoss("bce", bce_with_logits, bce_with_logits, bce_with_logits)

_REGISTRY: dict[str, GANLoss] = {"bce": BCE}


def register(loss: GANLoss) -> GANLoss:
    _REGISTRY[loss.name] = loss
    return loss


def get(name: str | GANLoss) -> GANLoss:
    if isinstance(name, GANLoss):
        return name
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown GAN loss {name!r}; choose one of {sorted(_REGISTRY)}") from None


# -- losses on D's probability sigmoid(logit) ---------------------------------------------------
# The dog experiment's Keras discriminator ended in a sigmoid unit and compiled with a Keras loss on
# its probability. These reproduce those losses from the logit, in float32.

PROB_EPSILON = 1e-7  # keras.backend.epsilon(): Keras clips probabilities to [eps, 1 - eps]


def _probs(logits):
    return tf.sigmoid(_f32(logits))


def _targets_like(logits, targets):
    return tf.broadcast_to(_f32(targets), tf.shape(logits))


def bce_on_probs(logits, targets):
    """Binary cross-entropy on p = sigmoid(logit) clipped to [1e-7, 1 - 1e-7], as Keras's
    ``binary_crossentropy(from_logits=False)`` computes it. Once D is sure (p clipped) the gradient
    is exactly zero: the saturation that ``bce`` (from logits) avoids."""
    p = tf.clip_by_value(_probs(logits), PROB_EPSILON, 1.0 - PROB_EPSILON)
    t = _targets_like(logits, targets)
    return -tf.reduce_mean(t * tf.math.log(p) + (1.0 - t) * tf.math.log(1.0 - p))


def bernoulli_kl(logits, targets):
    """KL(Bernoulli(t) || Bernoulli(p)) with p = sigmoid(logit): the divergence between the label D
    should give and the one it gives. It equals BCE(t, p) minus the entropy of t, so its gradients are
    BCE's; with hard labels (entropy 0) the two losses coincide, with soft labels only the value shifts.

    Keras's ``KLDivergence`` on a single sigmoid unit keeps only the ``t log(t/p)`` term, which is
    ~0 for fake targets (t = 0): see :func:`keras_kl_one_unit` (registered as ``"kl_keras"``)."""
    logits = _f32(logits)
    t = _targets_like(logits, targets)
    bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=t, logits=logits)
    entropy = -(tf.math.xlogy(t, t) + tf.math.xlogy(1.0 - t, 1.0 - t))  # 0 log 0 = 0
    return tf.reduce_mean(bce - entropy)


def keras_kl_one_unit(logits, targets):
    """Keras's ``KLDivergence`` on one sigmoid unit: mean of clip(t) * log(clip(t) / clip(p)).
    Kept to reproduce the experiment: on fake targets (t = 0 -> 1e-7) it gives D almost no signal."""
    t = tf.clip_by_value(_targets_like(logits, targets), PROB_EPSILON, 1.0)
    p = tf.clip_by_value(_probs(logits), PROB_EPSILON, 1.0)
    return tf.reduce_mean(t * tf.math.log(t / p))


def smooth_l1_on_probs(logits, targets, delta: float = 1.0):
    """Smooth L1 (Huber, ``delta=1``) between the target and p = sigmoid(logit). As |t - p| <= 1 it is
    0.5 (t - p)^2 everywhere: a least-squares loss on probabilities, whose gradient
    (p - t) p (1 - p) vanishes when D saturates."""
    err = tf.abs(_targets_like(logits, targets) - _probs(logits))
    quad = tf.minimum(err, delta)
    return tf.reduce_mean(0.5 * quad ** 2 + delta * (err - quad))


# -- modern references on the raw output ---------------------------------------------------------

def least_squares(logits, targets):
    """LSGAN (Mao et al. 2017, eq. 2 with a = 0, b = c = 1): 0.5 (D(x) - t)^2 on D's raw output.
    Fakes far on the right side of the boundary are still pulled towards it, so G's gradient does not
    vanish as it does with a saturated sigmoid."""
    logits = _f32(logits)
    return tf.reduce_mean(0.5 * tf.square(logits - _targets_like(logits, targets)))


def hinge_real(logits, targets=None):
    """Hinge loss for D on reals (Lim & Ye 2017; Miyato et al. 2018): mean(relu(1 - D(x)))."""
    return tf.reduce_mean(tf.nn.relu(1.0 - _f32(logits)))


def hinge_fake(logits, targets=None):
    """Hinge loss for D on fakes: mean(relu(1 + D(G(z))))."""
    return tf.reduce_mean(tf.nn.relu(1.0 + _f32(logits)))


def hinge_generator(logits, targets=None):
    """G's hinge loss: -mean(D(G(z))) (targets are ignored: hinge has no labels)."""
    return -tf.reduce_mean(_f32(logits))


BCE_PROBS = register(GANLoss("bce_probs", bce_on_probs, bce_on_probs, bce_on_probs))
KL = register(GANLoss("kl", bernoulli_kl, bernoulli_kl, bernoulli_kl))
KL_KERAS = register(GANLoss("kl_keras", keras_kl_one_unit, keras_kl_one_unit, keras_kl_one_unit))
SMOOTH_L1 = register(GANLoss("smooth_l1", smooth_l1_on_probs, smooth_l1_on_probs, smooth_l1_on_probs))
LSGAN = register(GANLoss("lsgan", least_squares, least_squares, least_squares, threshold=0.5))
HINGE = register(GANLoss("hinge", hinge_real, hinge_fake, hinge_generator))


# -- Wasserstein critics -------------------------------------------------------------------------
# Sign convention: the critic scores real images HIGH (the real = 1 direction of the project).
# Keras-style ``mean(y_true * y_pred)`` with y_true = -1 on reals and +1 on fakes is minimised by the
# critic: mean(D(fake)) - mean(D(real)), whose negative estimates W(P_r, P_g) (Arjovsky et al. 2017).

REAL_LABEL, FAKE_LABEL = -1.0, 1.0


def wasserstein_loss(y_true, y_pred):
    """``mean(y_true * y_pred)`` with y_true = -1 (real) or +1 (fake); float32 scalar."""
    y_pred = _f32(y_pred)
    return tf.reduce_mean(tf.broadcast_to(_f32(y_true), tf.shape(y_pred)) * y_pred)


def critic_loss(scores_real, scores_fake):
    """The critic's loss ``mean(D(fake)) - mean(D(real))``; its negative estimates W(P_r, P_g)."""
    return wasserstein_loss(REAL_LABEL, scores_real) + wasserstein_loss(FAKE_LABEL, scores_fake)


def wasserstein_generator_loss(scores_fake):
    """The generator's loss ``-mean(D(G(z)))``: fakes labelled like reals (-1)."""
    return wasserstein_loss(REAL_LABEL, scores_fake)


WASSERSTEIN = register(GANLoss(
    "wasserstein", lambda s, t=None: wasserstein_loss(REAL_LABEL, s),
    lambda s, t=None: wasserstein_loss(FAKE_LABEL, s), lambda s, t=None: wasserstein_generator_loss(s)))


def gradient_penalty(critic, real, fake, epsilon):
    """``mean((||grad_x D(x_hat)||_2 - 1)^2)`` on ``x_hat = eps real + (1 - eps) fake`` with ``eps``
    of shape (N, 1, 1, 1) uniform in [0, 1] (Gulrajani et al. 2017, Algorithm 1, line 7). float32.
    WGAN-GP and the progressive GAN both use this one."""
    real, fake = _f32(real), _f32(fake)
    x_hat = _f32(epsilon) * real + (1.0 - _f32(epsilon)) * fake
    with tf.GradientTape() as tape:
        tape.watch(x_hat)
        scores = _f32(critic(x_hat, training=True))
    grads = tape.gradient(scores, x_hat)
    norms = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=tf.range(1, tf.rank(grads))) + 1e-12)
    return tf.reduce_mean(tf.square(norms - 1.0))


def drift_penalty(scores_real):
    """``mean(D(x)^2)`` on real scores: keeps the critic's output near 0 (Karras et al. 2018,
    section A.1: weighted by epsilon_drift = 0.001)."""
    return tf.reduce_mean(tf.square(_f32(scores_real)))


def names() -> list[str]:
    """The registered loss pairs' names."""
    return sorted(_REGISTRY)
