"""The model contract: every GAN here is a ``keras.Model`` subclass whose ``train_step`` does one
adversarial step. The papers' models live beside their papers (``dcgan.py``, ``wgan.py``,
``sgan.py``, ``pggan.py``).

Two layers of the contract:

* :class:`GANBase` is the run state every model has, whatever its networks: the ``step`` and
  ``epoch`` counters, the checkpointed RNG, ``checkpoint_items()``, ``named_optimizers()``, the
  optimizer step (:meth:`GANBase._apply`: loss scaling and the replica division), the metric
  trackers, and "how to draw samples" (:meth:`GANBase.sample`, :meth:`GANBase.snapshot_images`).
  A CycleGAN (two generators, two discriminators) subclasses it directly.
* :class:`GAN` is the common case: one generator and one discriminator (or critic), one
  optimizer each and a fixed noise batch. A conditional generator (several inputs) works too: the
  first input is the noise; override :meth:`GANBase.sample` to draw the conditions.

Conventions shared by every model here:

* label convention real = 1, fake = 0; D returns logits (the losses apply the sigmoid);
* ``compile`` takes one optimizer per network; ``metrics`` are ``keras.metrics.Mean`` trackers, so
  the Keras progress bar and the TensorBoard callback show every loss;
* whatever a callback steers (label-noise ranges, flip probability, fade-in alpha, ...) is a
  ``tf.Variable`` on the model, read inside ``train_step``, so changing it never retraces;
* all randomness of a step comes from ``self.rng`` (a ``tf.random.Generator``) whose state is
  checkpointed with the weights, the optimizers, the step and epoch counters and the fixed noise,
  so a resumed run continues exactly where it stopped; a step draws through :meth:`GANBase.normal`
  and :meth:`GANBase.uniform`, which under several replicas give each replica its share of one
  draw for the global batch (see :mod:`ganhelpers.distribute`);
* side effects (images, files) live in callbacks, never in ``train_step``.
"""

from __future__ import annotations

import contextlib
import logging

import keras
import numpy as np
import tensorflow as tf

from . import losses as losses_lib
from .distribute import multi_worker, replica_share, shared_draw

log = logging.getLogger(__name__)


def average_pairs(optimizer) -> list:
    """``[(variable, its running average)]`` kept by ``optimizer`` (Keras' ``use_ema``; a loss-scale
    wrapper's inner optimizer too), or ``[]`` when it keeps none or has not stepped yet (Keras fills
    an average with the variable at the optimizer's first step; before that it holds zeros)."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    if inner is None or not getattr(inner, "use_ema", False) or not inner.built or int(inner.iterations.numpy()) == 0:
        return []
    return list(zip(inner._trainable_variables, inner._model_variables_moving_average, strict=True))


def _counter(name: str) -> tf.Variable:
    return tf.Variable(0, dtype=tf.int64, trainable=False, name=name,
                       aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)


class GANBase(keras.Model):
    """Run state shared by every model: counters, RNG, trackers, optimizer step, sampling.

    Subclasses set ``metric_names`` (the ``keras.metrics.Mean`` trackers ``_report`` updates) and
    implement ``train_step``, ``checkpoint_items`` (everything a resumed run needs),
    ``named_optimizers`` and ``sample``.
    """

    #: names of the Mean trackers; subclasses list theirs.
    metric_names: tuple[str, ...] = ()
    #: TensorBoard tags of metrics whose group is not evident from the name (see summaries.tag_for).
    metric_groups: dict[str, str] = {}

    def __init__(self, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.rng = tf.random.Generator.from_seed(seed)
        #: draw as under several replicas (one draw for the global batch, from a seed taken from
        #: ``rng``) on one device too: what a comparison of one device with N replicas needs.
        #: ``None``/``False``: only under several replicas.
        self.global_draws = None
        self.step = _counter("step")
        self.epoch = _counter("epoch")
        self.trackers = {n: keras.metrics.Mean(name=n) for n in self.metric_names}

    @property
    def metrics(self):
        return list(self.trackers.values())

    def named_optimizers(self) -> dict:
        """``{network name: optimizer}`` (TensorBoard logs each one's learning rate)."""
        return {}

    def optimizer_pairs(self):
        """``[(optimizer, network)]``: what :meth:`build_optimizers` builds."""
        return []

    def build_optimizers(self) -> None:
        """Create the optimizers' slot variables now, so a checkpoint can restore them."""
        for opt, net in self.optimizer_pairs():
            if not opt.built:
                opt.build(net.trainable_variables)

    def checkpoint_items(self) -> dict:
        return dict(step=self.step, epoch=self.epoch, rng=self.rng)

    # -- the step's randomness --------------------------------------------------------------------
    def normal(self, shape) -> tf.Tensor:
        """N(0, 1) values of ``shape`` (first dimension: this replica's share of the batch) from ``rng``."""
        return self._draw(shape, self.rng.normal, tf.random.stateless_normal)

    def uniform(self, shape, minval=0.0, maxval=1.0) -> tf.Tensor:
        """Uniform values in [minval, maxval) of ``shape`` (first dimension: this replica's share)."""
        return self._draw(shape, lambda s: self.rng.uniform(s, minval, maxval),
                          lambda s, seed: tf.random.stateless_uniform(s, seed, minval, maxval))

    def draw_share(self):
        """``(replica id, replicas)`` where a step draws for the global batch (several replicas, or
        ``global_draws`` on one device: ``(0, 1)``); ``None`` where it draws from ``rng`` directly."""
        return replica_share() or ((0, 1) if self.global_draws else None)

    def _draw(self, shape, stateful, stateless):
        """One device: ``rng``'s own draw. Several replicas (or ``global_draws``): every replica
        advances ``rng`` by the global batch's count (a mirrored state: the same on every replica),
        draws the global batch's values from the state it read and keeps its rows."""
        share = self.draw_share()
        if share is None:
            return stateful(shape)

        def draw(global_shape):
            state = self.rng.skip(tf.cast(tf.reduce_prod(global_shape), tf.int64))  # the state before
            return stateless(global_shape, tf.stack([state[0], state[-1]]))

        return shared_draw(draw, shape, share)

    def loggable(self, logs) -> dict:
        """The values of ``logs`` worth recording now (TensorBoard, losses.csv); all by default."""
        return dict(logs or {})

    def sample(self, n: int, seed: int | None = 0, batch_size: int = 256) -> np.ndarray:
        """``n`` images in [-1, 1] (float32 numpy, NHWC); a subclass draws them its own way."""
        raise NotImplementedError(f"{type(self).__name__} does not say how to draw samples: define sample()")

    def snapshot_images(self) -> np.ndarray:
        """The images of one snapshot frame (the same inputs every time, so frames compare)."""
        return self.sample(36, seed=self.seed + 1)

    def fit(self, x=None, y=None, epochs=1, callbacks=None, initial_epoch=None, **kwargs):
        """``keras.Model.fit`` that continues at the model's epoch. ``ganhelpers.run.train``
        restores the checkpoint explicitly before calling it; a checkpoint callback that has not
        restored yet (plain Keras use) restores here first, so the epoch is the restored one."""
        if getattr(self, "_distribute_strategy", None) is not None or tf.distribute.has_strategy():
            self.prepare_distributed()
        for cb in callbacks or []:
            if hasattr(cb, "restore_before_fit") and getattr(cb, "_model", None) is not self:
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
        """Update the loss trackers; return their values (the step's logs). Under several workers
        each value is returned with shape [1]: Keras 3 averages a multi-worker step's outputs with
        ``strategy.reduce("MEAN", value, axis=0)``, which fails on a scalar ("Invalid reduction
        dimension 0 for input with 0 dimensions", tensorflow#72388) and turns [1] into the scalar."""
        for name, value in values.items():
            self.trackers[name].update_state(value)
        return {name: self._step_output(tracker.result()) for name, tracker in self.trackers.items()}

    @staticmethod
    def _step_output(value):
        """A value of the step's logs as Keras can reduce it: shape [1] under several workers."""
        return tf.reshape(value, [1]) if multi_worker() else value

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Keras 3 builds a model under a strategy by tracing it on the first batch, averaged over the
        replicas in eager mode, which fails under several workers ("Attempt to convert a value
        (PerReplica...) to a Tensor"). A GAN here is built before ``fit`` (its networks by their
        constructors, its optimizers by :meth:`prepare_distributed`), so there is nothing to build."""
        if multi_worker(self.distribute_strategy) and self.built:
            return None
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)


class GAN(GANBase):
    """A generator, a discriminator (or critic), one optimizer each, and a fixed noise batch.

    Args:
        generator: maps noise ``(N, *latent_shape)`` to images in [-1, 1]; with several inputs the
            first is the noise (a conditional GAN overrides :meth:`sample`).
        discriminator: maps images to logits ``(N, 1)``.
        seed: seeds ``self.rng``, which draws every noise vector and label of training.
        num_fixed: size of the fixed noise batch that every snapshot (and the GIF) reuses.
    """

    def __init__(self, generator: keras.Model, discriminator: keras.Model, seed: int = 0,
                 num_fixed: int = 64, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.latent_shape = tuple(int(d) for d in generator.inputs[0].shape[1:])
        self.fixed_noise = tf.Variable(
            tf.random.Generator.from_seed(seed + 1).normal((num_fixed, *self.latent_shape)),
            trainable=False, name="fixed_noise")

    # -- Keras plumbing -------------------------------------------------------------------------
    def compile(self, d_optimizer=None, g_optimizer=None, loss="bce", **kwargs):
        """One optimizer per network; ``loss`` names a pair from :mod:`ganhelpers.losses`."""
        kwargs.setdefault("jit_compile", False)
        super().compile(**kwargs)
        self.d_optimizer = d_optimizer or keras.optimizers.Adam(2e-4, beta_1=0.5)
        self.g_optimizer = g_optimizer or keras.optimizers.Adam(2e-4, beta_1=0.5)
        self.loss_fn = losses_lib.get(loss)

    def call(self, noise, training=False):
        return self.generator(noise, training=training)

    def named_optimizers(self) -> dict:
        return {"discriminator": self.d_optimizer, "generator": self.g_optimizer}

    def optimizer_pairs(self):
        return [(self.d_optimizer, self.discriminator), (self.g_optimizer, self.generator)]

    def checkpoint_items(self) -> dict:
        """Everything a resumed run needs; ``callbacks.Checkpoint`` saves exactly this."""
        return dict(super().checkpoint_items(), generator=self.generator, discriminator=self.discriminator,
                    d_optimizer=self.d_optimizer, g_optimizer=self.g_optimizer, fixed_noise=self.fixed_noise)

    # -- how to draw samples --------------------------------------------------------------------
    @contextlib.contextmanager
    def generator_average(self):
        """Inside the block G holds the running average of its weights that its optimizer keeps
        (``use_ema``: PGGAN's ``training.ema_decay``); after it, its own weights again, exactly. A
        no-op where the optimizer keeps no average (or has not stepped yet). :meth:`generate`,
        :meth:`sample` and :meth:`snapshot_images` draw through it, so every sample grid, GIF frame
        and metric sees the average, as the papers that keep one evaluate."""
        pairs = average_pairs(getattr(self, "g_optimizer", None))
        saved = [keras.ops.convert_to_numpy(v) for v, _ in pairs]
        try:
            for v, average in pairs:
                v.assign(average)
            yield
        finally:
            for (v, _), value in zip(pairs, saved, strict=True):
                v.assign(value)

    def sample_noise(self, n) -> tf.Tensor:
        """Noise N(0, 1) of shape ``(n, *latent_shape)`` drawn from the model's checkpointed RNG
        (training's randomness: use :meth:`sample` to draw images outside training)."""
        return self.normal(tf.concat([[n], self.latent_shape], axis=0))

    def sample(self, n: int, seed: int | None = 0, batch_size: int = 256) -> np.ndarray:
        """``n`` images in [-1, 1] (float32 numpy, NHWC) from noise drawn with its own generator
        seeded by ``seed`` (``None``: fresh noise). It never touches ``self.rng``, so sampling for a
        snapshot, a metric or the CLI does not change training."""
        rng = tf.random.Generator.from_non_deterministic_state() if seed is None else \
            tf.random.Generator.from_seed(int(seed))
        noise = rng.normal((int(n), *self.latent_shape))
        # clipped: a linear output layer (PGGAN's) can overshoot [-1, 1] slightly
        return np.clip(self.generate(noise=noise, batch_size=batch_size), -1.0, 1.0)

    def snapshot_images(self) -> np.ndarray:
        """G on the fixed noise, in inference mode (the GIF's frames)."""
        with self.generator_average():
            return keras.ops.convert_to_numpy(self.generator(self.fixed_noise, training=False)).astype(np.float32)

    def generate(self, n: int | None = None, noise=None, batch_size: int = 256) -> np.ndarray:
        """Images in [-1, 1] as float32 numpy, from ``noise`` or from ``n`` fresh noise vectors of the
        training RNG (this advances it: prefer :meth:`sample`)."""
        if noise is None:
            noise = self.sample_noise(n if n is not None else int(self.fixed_noise.shape[0]))
        # direct calls in batches, not predict(): predict traces a function per model, and several
        # models in one process (a comparison) make TensorFlow warn about retracing
        with self.generator_average():
            out = [keras.ops.convert_to_numpy(self.generator(noise[i:i + batch_size], training=False))
                   for i in range(0, int(noise.shape[0]), batch_size)]
        return np.concatenate(out).astype(np.float32)


def real_images(data):
    """The image batch from whatever a dataset yields: images, (images,), or (images, labels)."""
    return data[0] if isinstance(data, (tuple, list)) else data


