"""GAN losses, each a pair: the discriminator's loss (on a real and on a fake batch) and the generator's.

Every loss takes the discriminator's raw outputs (logits, or critic values) and the targets the
train step drew (real = 1, fake = 0, possibly softened or flipped by label noise). Losses that have
no notion of a target (hinge, Wasserstein) ignore it. All losses return a float32 scalar, the mean
over the batch.
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
