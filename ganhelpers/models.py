"""GAN models as ``keras.Model`` subclasses whose ``train_step`` does one adversarial step.

Conventions shared by every model here:

* label convention real = 1, fake = 0; D returns logits (the losses apply the sigmoid);
* ``compile`` takes one optimizer per network; ``metrics`` are ``keras.metrics.Mean`` trackers, so
  the Keras progress bar and the TensorBoard callback show every loss;
* whatever a callback steers (label-noise ranges, flip probability, fade-in alpha, ...) is a
  ``tf.Variable`` on the model, read inside ``train_step``, so changing it never retraces;
* all randomness of a step comes from ``self.rng`` (a ``tf.random.Generator``) whose state is
  checkpointed with the weights, the optimizers, the step and epoch counters and the fixed noise,
  so a resumed run continues exactly where it stopped;
* side effects (images, files) live in callbacks, never in ``train_step``.
"""

from __future__ import annotations

import logging

import keras
import numpy as np
import tensorflow as tf

from . import losses as losses_lib

log = logging.getLogger(__name__)


def _counter(name: str) -> tf.Variable:
    return tf.Variable(0, dtype=tf.int64, trainable=False, name=name,
                       aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)


class GAN(keras.Model):
    """Base class: a generator, a discriminator (or critic), their optimizers and the run state.

    Args:
        generator: maps noise of shape ``(N, *latent_shape)`` to images in [-1, 1].
        discriminator: maps images to logits ``(N, 1)``.
        seed: seeds ``self.rng``, which draws every noise vector and label of training.
        num_fixed: size of the fixed noise batch that every snapshot (and the GIF) reuses.
    """

    #: names of the Mean trackers; subclasses list theirs.
    metric_names: tuple[str, ...] = ()

    def __init__(self, generator: keras.Model, discriminator: keras.Model, seed: int = 0,
                 num_fixed: int = 64, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.latent_shape = tuple(int(d) for d in generator.input_shape[1:])
        self.seed = seed
        self.rng = tf.random.Generator.from_seed(seed)
        self.step = _counter("step")
        self.epoch = _counter("epoch")
        self.fixed_noise = tf.Variable(
            tf.random.Generator.from_seed(seed + 1).normal((num_fixed, *self.latent_shape)),
            trainable=False, name="fixed_noise")
        self.trackers = {n: keras.metrics.Mean(name=n) for n in self.metric_names}

    # -- Keras plumbing -------------------------------------------------------------------------
    def compile(self, d_optimizer=None, g_optimizer=None, loss="bce", **kwargs):
        """One optimizer per network; ``loss`` names a pair from :mod:`ganhelpers.losses`."""
        kwargs.setdefault("jit_compile", False)
        super().compile(**kwargs)
        self.d_optimizer = d_optimizer or keras.optimizers.Adam(2e-4, beta_1=0.5)
        self.g_optimizer = g_optimizer or keras.optimizers.Adam(2e-4, beta_1=0.5)
        self.loss_fn = losses_lib.get(loss)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, noise, training=False):
        return self.generator(noise, training=training)

    def build_optimizers(self) -> None:
        """Create the optimizers' slot variables now, so a checkpoint can restore them."""
        for opt, net in self.optimizer_pairs():
            if not opt.built:
                opt.build(net.trainable_variables)

    def optimizer_pairs(self):
        return [(self.d_optimizer, self.discriminator), (self.g_optimizer, self.generator)]

    def checkpoint_items(self) -> dict:
        """Everything a resumed run needs; ``callbacks.Checkpoint`` saves exactly this."""
        return dict(generator=self.generator, discriminator=self.discriminator,
                    d_optimizer=self.d_optimizer, g_optimizer=self.g_optimizer, step=self.step,
                    epoch=self.epoch, fixed_noise=self.fixed_noise, rng=self.rng)

    def fit(self, x=None, y=None, epochs=1, callbacks=None, initial_epoch=None, **kwargs):
        """``keras.Model.fit`` that first restores a checkpoint (if a callback offers one) and
        continues at the restored epoch, so re-running a notebook resumes instead of restarting."""
        if getattr(self, "_distribute_strategy", None) is not None or tf.distribute.has_strategy():
            self.prepare_distributed()
        for cb in callbacks or []:
            if hasattr(cb, "restore_before_fit"):
                cb.restore_before_fit(self)
        if initial_epoch is None:
            initial_epoch = int(self.epoch.numpy())
        if initial_epoch >= epochs:
            log.warning("already trained for %d epochs (asked for %d): nothing to do", initial_epoch, epochs)
        if isinstance(x, tf.data.Dataset):
            # a tf.data pipeline shuffles itself (make_dataset does); Keras would warn that its
            # default shuffle=True is ignored
            kwargs.setdefault("shuffle", False)
        return super().fit(x, y, epochs=epochs, callbacks=callbacks, initial_epoch=initial_epoch, **kwargs)

    def prepare_distributed(self) -> None:
        """Make ``fit`` work under ``tf.distribute`` (MirroredStrategy, TPUStrategy).

        Build the model under ``strategy.scope()`` (see :mod:`ganhelpers.distribute`). Keras 3's fit
        then fails twice on a GAN unless (1) the model is marked built: its networks are built, but
        Keras would otherwise trace ``call`` (noise -> images) on an image batch; and (2) the
        optimizers' slots exist before the first step: created lazily inside the traced, replicated
        step they fail with "You must feed a value for placeholder tensor ... Initializer"."""
        self.built = True
        with self.distribute_strategy.scope():
            self.build_optimizers()

    # -- helpers for train steps ----------------------------------------------------------------
    def sample_noise(self, n) -> tf.Tensor:
        """Noise N(0, 1) of shape ``(n, *latent_shape)`` drawn from the model's checkpointed RNG."""
        return self.rng.normal(tf.concat([[n], self.latent_shape], axis=0))

    def sample(self, n: int, seed: int | None = 0, batch_size: int = 256) -> np.ndarray:
        """``n`` images in [-1, 1] (float32 numpy, NHWC) from noise drawn with its own generator
        seeded by ``seed`` (``None``: fresh noise). It never touches ``self.rng``, so sampling for a
        snapshot, a metric or the CLI does not change training. The one way callers ask any model
        of this package for images; a conditional model overrides it."""
        rng = tf.random.Generator.from_non_deterministic_state() if seed is None else \
            tf.random.Generator.from_seed(int(seed))
        noise = rng.normal((int(n), *self.latent_shape))
        return self.generate(noise=noise, batch_size=batch_size)

    def generate(self, n: int | None = None, noise=None, batch_size: int = 256) -> np.ndarray:
        """Images in [-1, 1] as float32 numpy, from ``noise`` or from ``n`` fresh noise vectors."""
        if noise is None:
            noise = self.sample_noise(n if n is not None else int(self.fixed_noise.shape[0]))
        return self.generator.predict(noise, batch_size=batch_size, verbose=0).astype(np.float32)

    @staticmethod
    def _apply(optimizer, tape, loss, variables):
        """Gradient step; scales the loss when the optimizer is a LossScaleOptimizer (mixed float16):
        the scaling is recorded on ``tape`` (scaled outside it, the gradients would all be None) and
        ``apply_gradients`` unscales and skips steps with non-finite gradients.

        Under ``tf.distribute`` each replica's loss is a mean over its share of the batch and the
        optimizer sums the replicas' gradients, so the gradients are divided by the number of
        replicas: the gradient of sum(per-example loss) / global batch, i.e. the single-device
        gradient (equal shares, as ``drop_remainder`` batches give; ``tf.nn.compute_average_loss``)."""
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        scaled = loss
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            with tape:  # recorded, so the backward pass runs at the scaled magnitude (no fp16 underflow)
                scaled = optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, variables)
        if replicas > 1:
            grads = [None if g is None else g / replicas for g in grads]
        optimizer.apply_gradients(zip(grads, variables, strict=True))

    def _report(self, **values) -> dict:
        for name, value in values.items():
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}


def real_images(data):
    """The image batch from whatever a dataset yields: images, (images,), or (images, labels)."""
    return data[0] if isinstance(data, (tuple, list)) else data


class DCGAN(GAN):
    """DCGAN trained as in the bird experiment (Radford et al. 2015 with label noise).

    One ``train_step``:
      1. D takes a gradient step on a real batch (targets from ``real_target_range``),
      2. then on a fake batch of the same size (targets from ``fake_target_range``); with
         probability ``flip_prob`` a D target is flipped (t -> 1 - t),
      3. G takes a step on 2 x batch noise vectors labelled real (``generator_target_range``), so
         G sees as many images per step as D did.
    ``callbacks.LabelNoise`` sets the ranges and the flip probability; without it targets are
    exactly 1 and 0.
    """

    metric_names = ("d_loss_real", "d_loss_fake", "g_loss", "d_acc_real", "d_acc_fake")

    def __init__(self, generator, discriminator, **kwargs):
        super().__init__(generator, discriminator, **kwargs)
        self.real_target_range = tf.Variable([1.0, 1.0], trainable=False, name="real_target_range")
        self.fake_target_range = tf.Variable([0.0, 0.0], trainable=False, name="fake_target_range")
        self.generator_target_range = tf.Variable([1.0, 1.0], trainable=False, name="generator_target_range")
        self.flip_prob = tf.Variable(0.0, trainable=False, name="flip_prob")

    def targets(self, n, value_range, flip: bool) -> tf.Tensor:
        """``(n, 1)`` targets uniform in ``value_range``; flipped with probability ``flip_prob``."""
        t = self.rng.uniform((n, 1), value_range[0], value_range[1])
        if flip:
            t = tf.where(self.rng.uniform((n, 1)) < self.flip_prob, 1.0 - t, t)
        return t

    def train_step(self, data):
        real = real_images(data)
        n = tf.shape(real)[0]
        return self.adversarial_step(real, self.sample_noise(n), self.sample_noise(2 * n))

    def adversarial_step(self, real, z_fake, z_gen):
        """The three updates of one step on ``real`` (N, H, W, C), with D's fakes drawn from
        ``z_fake`` (N, *latent) and G's batch from ``z_gen`` (2N, *latent). ``train_step`` draws both
        from ``self.rng``; passing them in makes a step reproducible across devices (the
        distributed-equivalence test splits one host batch of noise over the replicas)."""
        n = tf.shape(real)[0]
        d_vars = self.discriminator.trainable_variables
        g_vars = self.generator.trainable_variables

        # 1. Discriminator on a real batch.
        t_real = self.targets(n, self.real_target_range, flip=True)
        with tf.GradientTape() as tape:
            logits_real = self.discriminator(real, training=True)
            d_loss_real = self.loss_fn.real(logits_real, t_real)
        self._apply(self.d_optimizer, tape, d_loss_real, d_vars)

        # 2. Discriminator on a fake batch. G runs forward only: no gradient flows into it here.
        fake = self.generator(z_fake, training=True)
        t_fake = self.targets(n, self.fake_target_range, flip=True)
        with tf.GradientTape() as tape:
            logits_fake = self.discriminator(fake, training=True)
            d_loss_fake = self.loss_fn.fake(logits_fake, t_fake)
        self._apply(self.d_optimizer, tape, d_loss_fake, d_vars)

        # 3. Generator on 2 x batch noise vectors, labelled real ("fool D").
        t_gen = self.targets(2 * n, self.generator_target_range, flip=False)
        with tf.GradientTape() as tape:
            logits_gen = self.discriminator(self.generator(z_gen, training=True), training=True)
            g_loss = self.loss_fn.generator(logits_gen, t_gen)
        self._apply(self.g_optimizer, tape, g_loss, g_vars)

        self.step.assign_add(1)
        return self._report(
            d_loss_real=d_loss_real, d_loss_fake=d_loss_fake, g_loss=g_loss,
            d_acc_real=tf.reduce_mean(tf.cast(logits_real > 0, tf.float32)),
            d_acc_fake=tf.reduce_mean(tf.cast(logits_fake < 0, tf.float32)))


def build_dcgan(config: dict) -> DCGAN:
    """Networks, model and optimizers from a config (see ``ganhelpers.configs``), compiled."""
    from .layers import build_dcgan_networks
    from .precision import policy_for, policy_scope, wrap_optimizer

    t = config["training"]
    policy = policy_for(t.get("precision", "float32"))
    with policy_scope(policy):  # layers keep this policy; float32 output layers and losses
        generator, discriminator = build_dcgan_networks(config)
    model = DCGAN(generator, discriminator, seed=config.get("seed", 0))
    model.compile(d_optimizer=wrap_optimizer(keras.optimizers.Adam(t["d_lr"], beta_1=t["beta_1"]), policy),
                  g_optimizer=wrap_optimizer(keras.optimizers.Adam(t["g_lr"], beta_1=t["beta_1"]), policy),
                  loss=t.get("loss", "bce"), jit_compile=t.get("jit_compile", False),
                  steps_per_execution=t.get("steps_per_execution", 1))
    return model
