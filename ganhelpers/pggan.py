"""Progressive growing of GANs (Karras et al. 2018, ICLR) with the smooth fade-in.

Training starts at 4x4 and doubles the resolution up to a target. Each new level begins with a
*fade* phase in which ``alpha`` rises linearly in the images shown from 0 to 1, blending the
upsampled output of the previous level into the new block's output (G) and the downsampled input
path into the new block's (D), then a *stabilise* phase at alpha = 1 (section 2, figure 2).

How growing works with Keras's fixed graphs: every level's blocks (G block, toRGB, D block, fromRGB)
are built up front and live on the model for the whole run; a level's G and D are functional
models wired from the blocks of levels <= its own, so growing re-uses the same layer objects (and
weights) and only wires new ones in. The checkpoint always holds every block, plus ``phase``,
``alpha`` and the image counters, so a run resumes mid-fade at the right level and alpha.

Loss: WGAN-GP (lambda 10) with the drift term 0.001 * E[D(x)^2] (section 4 / appendix A);
Adam(1e-3, beta_1 0, beta_2 0.99, epsilon 1e-8), reset at the start of every phase as the
authors' train.py does (``reset_opt_for_new_lod``: whenever floor or ceil of the level changes).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from . import callbacks as cb
from . import data as data_lib
from . import images as images_lib
from . import losses as losses_lib
from . import summaries
from .configs import preset_config
from .experiment import Run
from .models import GAN, _counter, real_images
from .pggan_layers import (
    HE_GAIN,
    LEAK,
    EqualizedConv2D,
    EqualizedDense,
    FadeInBlend,
    MinibatchStdDev,
    PixelNorm,
    downsample,
    downsample_images,
    from_rgb,
    to_rgb,
    upsample,
    upsample_images,
)
from .precision import policy_for, policy_scope, wrap_optimizer

log = logging.getLogger(__name__)

START_RESOLUTION = 4


def fmaps(resolution: int, width: float = 1.0) -> int:
    """Feature maps at a resolution: 512 up to 32x32, then 256/128/64/32/16 at 64 ... 1024
    (Table 2; the authors' ``nf = min(8192 / 2**stage, 512)``), times ``width`` (at least 1)."""
    return max(1, int(round(min(16384 // resolution, 512) * width)))


def resolutions(target: int) -> list[int]:
    n = math.log2(target / START_RESOLUTION) if target >= START_RESOLUTION else -1
    if n < 0 or n != int(n):
        raise ValueError(f"resolution must be 4 * 2**k (4, 8, ..., 64, 128), got {target}")
    return [START_RESOLUTION * 2 ** k for k in range(int(n) + 1)]


def phase_list(num_levels: int) -> list[tuple[int, bool]]:
    """``[(level, fading)]``: 4x4 stabilise, then a fade and a stabilise phase per new level."""
    return [(0, False)] + [(lv, f) for lv in range(1, num_levels) for f in (True, False)]


# -- blocks (Table 2 / the authors' networks.py) ------------------------------------------------

def generator_block(resolution: int, channels_in: int, width: float, name: str) -> keras.Sequential:
    """4x4: PixelNorm(z), Dense to 4x4 (gain sqrt(2)/4 as in the authors' code), Conv 3x3. Higher:
    upsample 2x, Conv 3x3, Conv 3x3. Each conv is followed by LeakyReLU 0.2 and PixelNorm."""
    nf = fmaps(resolution, width)
    if resolution == START_RESOLUTION:
        head = [keras.Input((channels_in,)), PixelNorm(), EqualizedDense(16 * nf, gain=HE_GAIN / 4),
                layers.Reshape((4, 4, nf)), layers.LeakyReLU(LEAK), PixelNorm()]
        convs = 1
    else:
        head = [keras.Input((resolution // 2, resolution // 2, channels_in)), upsample()]
        convs = 2
    body = [layer for _ in range(convs) for layer in (EqualizedConv2D(nf, 3), layers.LeakyReLU(LEAK), PixelNorm())]
    return keras.Sequential(head + body, name=name)


def discriminator_block(resolution: int, width: float, group_size: int, name: str) -> keras.Sequential:
    """Higher: Conv 3x3 nf(res), Conv 3x3 nf(res/2), 2x2 average pool. 4x4: minibatch stddev,
    Conv 3x3, Conv 4x4 (a dense layer on the flattened 4x4 map) and a linear float32 unit."""
    nf = fmaps(resolution, width)
    if resolution == START_RESOLUTION:
        return keras.Sequential([
            keras.Input((4, 4, nf)), MinibatchStdDev(group_size), EqualizedConv2D(nf, 3), layers.LeakyReLU(LEAK),
            layers.Flatten(), EqualizedDense(fmaps(2, width)), layers.LeakyReLU(LEAK),
            EqualizedDense(1, gain=1.0, dtype="float32")], name=name)
    return keras.Sequential([
        keras.Input((resolution, resolution, nf)), EqualizedConv2D(nf, 3), layers.LeakyReLU(LEAK),
        EqualizedConv2D(fmaps(resolution // 2, width), 3), layers.LeakyReLU(LEAK), downsample()], name=name)


def _build(block, shape):
    block.build((None, *shape))
    return block


class ProgressiveGAN(GAN):
    """The progressive GAN: every level's blocks, the current level's G and D, WGAN-GP train step.

    Args:
        resolution: target side (4 * 2**k). channels: image channels (1 or 3).
        width: multiplies every feature-map count (1.0 = the paper; 1/8 for a CPU).
        latent_dim: noise size; default ``fmaps(4, width)`` (512 in the paper).
        group_size: minibatch-stddev group (4). gp_lambda, drift: WGAN-GP's lambda and the drift weight.
        ema_decay: keep a running average of G's weights with this decay (Keras' optimizer EMA on the
            generator's Adam, so it restarts with the optimizer at every phase); samples, snapshots,
            level grids and metrics draw from it (:meth:`GAN.generator_average`). ``None``: none.

    State (all checkpointed): ``phase`` (index into ``phases``), ``level`` (0 = 4x4), ``alpha``,
    ``phase_images`` (real images shown in the current phase), ``images_seen`` (in the whole run).
    """

    metric_names = ("d_loss", "g_loss", "wasserstein", "gradient_penalty", "drift")
    metric_groups = {"wasserstein": "wasserstein/estimate"}  # one step = one generator iteration

    def __init__(self, resolution: int = 64, channels: int = 3, width: float = 1.0, latent_dim: int | None = None,
                 group_size: int = 4, gp_lambda: float = 10.0, drift: float = 1e-3, seed: int = 0,
                 num_fixed: int = 36, policy: str = "float32", ema_decay: float | None = None, **kwargs):
        if ema_decay is not None and (isinstance(ema_decay, bool) or not isinstance(ema_decay, (int, float))
                                      or not 0.0 < ema_decay < 1.0):
            raise ValueError(f"training.ema_decay must be a number between 0 and 1 (exclusive) or null, "
                             f"got {ema_decay!r}")
        self.__dict__["_ema_decay"] = None if ema_decay is None else float(ema_decay)
        res = resolutions(resolution)
        with policy_scope(policy):  # every level's blocks compute in the policy's dtype
            nets = self._build_blocks(res, channels, width, latent_dim, group_size)
        nets["policy"] = policy
        # Untracked by Keras (written to __dict__): the registry ``wire`` reads; the blocks are also
        # tracked below as attributes so that ``model.weights`` lists every level's weights.
        self.__dict__["_nets"] = nets
        generator, discriminator = self.wire(0, False)
        super().__init__(generator, discriminator, seed=seed, num_fixed=num_fixed, **kwargs)
        self.g_blocks, self.d_blocks = nets["g_blocks"], nets["d_blocks"]
        self.to_rgb, self.from_rgb = nets["to_rgb"], nets["from_rgb"]
        self.alpha = nets["alpha"]
        self.resolutions, self.channels, self.width = res, channels, width
        self.group_size, self.gp_lambda, self.drift = group_size, gp_lambda, drift
        self.phases = phase_list(len(res))
        self.phase = _counter("phase")
        self.level = _counter("level")
        self.phase_images = _counter("phase_images")
        self.images_seen = _counter("images_seen")
        self._fading = False

    @staticmethod
    def _build_blocks(res, channels, width, latent_dim, group_size) -> dict:
        """Every level's G block, D block, toRGB and fromRGB, and the shared alpha variable."""
        latent_dim = latent_dim or fmaps(START_RESOLUTION, width)
        alpha = tf.Variable(1.0, trainable=False, name="alpha")
        g_blocks, d_blocks, rgb_out, rgb_in = [], [], [], []
        for i, r in enumerate(res):
            g_in = latent_dim if i == 0 else fmaps(r // 2, width)
            g_blocks.append(generator_block(r, g_in, width, f"g_block_{r}"))
            d_blocks.append(discriminator_block(r, width, group_size, f"d_block_{r}"))
            rgb_out.append(_build(to_rgb(channels, f"to_rgb_{r}"), (r, r, fmaps(r, width))))
            rgb_in.append(_build(from_rgb(fmaps(r, width), f"from_rgb_{r}"), (r, r, channels)))
        return dict(g_blocks=g_blocks, d_blocks=d_blocks, to_rgb=rgb_out, from_rgb=rgb_in, alpha=alpha,
                    channels=channels, resolutions=res, latent_dim=latent_dim)

    # The current level's networks change at every phase; they are plain attributes (not tracked
    # by Keras) because the blocks they are wired from are tracked and checkpointed already.
    @property
    def generator(self):
        return self.__dict__.get("_generator")

    @generator.setter
    def generator(self, value):
        self.__dict__["_generator"] = value

    @property
    def discriminator(self):
        return self.__dict__.get("_discriminator")

    @discriminator.setter
    def discriminator(self, value):
        self.__dict__["_discriminator"] = value

    @property
    def resolution(self) -> int:
        """The current level's image side."""
        return self.resolutions[int(self.level.numpy())]

    @property
    def fading(self) -> bool:
        return self._fading

    # -- growing ----------------------------------------------------------------------------------
    def wire(self, level: int, fading: bool) -> tuple[keras.Model, keras.Model]:
        """G and D of ``level`` from the shared blocks; with ``fading`` the new block is blended in
        by ``FadeInBlend(alpha)``: G = (1-a) * up(toRGB_{l-1}(h)) + a * toRGB_l(block_l(h)), D's input
        side = (1-a) * fromRGB_{l-1}(down(x)) + a * block_l(fromRGB_l(x))."""
        n = self.__dict__["_nets"]
        with policy_scope(n["policy"]):  # the blend and resampling layers in the blocks' dtype
            return self._wire(n, level, fading)

    @staticmethod
    def _wire(n, level, fading):
        if not 0 <= level < len(n["resolutions"]) or (fading and level == 0):
            raise ValueError(f"level must be in 0..{len(n['resolutions']) - 1} (fading only above 0), got "
                             f"level={level}, fading={fading}")
        r = n["resolutions"][level]
        z = keras.Input((n["latent_dim"],), name="z")
        h = z
        for lv in range(level):
            h = n["g_blocks"][lv](h)
        out = n["to_rgb"][level](n["g_blocks"][level](h))
        if fading:
            old = upsample(name="upsample_previous")(n["to_rgb"][level - 1](h))
            out = FadeInBlend(n["alpha"], name="fade_in", dtype="float32")([old, out])
        generator = keras.Model(z, out, name=f"generator_{r}x{r}")

        x = keras.Input((r, r, n["channels"]), name="images")
        h = n["d_blocks"][level](n["from_rgb"][level](x))
        if fading:
            old = n["from_rgb"][level - 1](downsample(name="downsample_input")(x))
            h = FadeInBlend(n["alpha"], name="fade_in")([old, h])
        for lv in reversed(range(level)):
            h = n["d_blocks"][lv](h)
        discriminator = keras.Model(x, h, name=f"discriminator_{r}x{r}")
        return generator, discriminator

    def wire_phase(self, phase: int) -> None:
        """Wire G and D for ``phases[phase]`` and give both networks fresh Adam states; the image
        counters and alpha are left alone (a resume restores them)."""
        if not 0 <= phase < len(self.phases):
            raise ValueError(f"phase must be in 0..{len(self.phases) - 1}, got {phase}")
        level, fading = self.phases[phase]
        self.generator, self.discriminator = self.wire(level, fading)
        self._fading = fading
        self.phase.assign(phase)
        self.level.assign(level)
        self.d_optimizer, self.g_optimizer = self._adam(), self._adam(average=True)
        self.train_function = None  # the next fit traces a train step for the new networks

    def start_phase(self, phase: int) -> None:
        """Enter ``phase`` from its beginning: wire it, zero its image counter, alpha 0 if fading."""
        self.wire_phase(phase)
        self.phase_images.assign(0)
        self.alpha.assign(0.0 if self._fading else 1.0)

    # -- Keras plumbing ---------------------------------------------------------------------------
    def compile(self, learning_rate: float = 1e-3, beta_1: float = 0.0, beta_2: float = 0.99,
                epsilon: float = 1e-8, **kwargs):
        """Adam(1e-3, 0, 0.99, 1e-8) for both networks (section 4 / appendix A)."""
        self._adam_args = dict(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon)
        super().compile(d_optimizer=self._adam(), g_optimizer=self._adam(average=True), **kwargs)

    @property
    def ema_decay(self) -> float | None:
        return self.__dict__["_ema_decay"]

    def _adam(self, average: bool = False):
        """A fresh Adam; ``average`` (the generator's) keeps the running average of G's weights
        when ``ema_decay`` is set."""
        args = dict(getattr(self, "_adam_args", {"learning_rate": 1e-3, "beta_1": 0.0, "beta_2": 0.99,
                                                 "epsilon": 1e-8}))
        if average and self.ema_decay is not None:
            args.update(use_ema=True, ema_momentum=self.ema_decay)
        opt = keras.optimizers.Adam(**args)
        return wrap_optimizer(opt, self.__dict__["_nets"]["policy"])

    def checkpoint_items(self) -> dict:
        """The base items (current optimizers, counters, fixed noise, RNG), every level's blocks and
        the growth state. The structure depends only on the phase (through the optimizers)."""
        items = dict(d_optimizer=self.d_optimizer, g_optimizer=self.g_optimizer, step=self.step, epoch=self.epoch,
                     fixed_noise=self.fixed_noise, rng=self.rng, alpha=self.alpha, phase=self.phase,
                     level=self.level, phase_images=self.phase_images, images_seen=self.images_seen)
        for r, gb, db, tr, fr in zip(self.resolutions, self.g_blocks, self.d_blocks, self.to_rgb, self.from_rgb,
                                     strict=True):
            items.update({f"g_block_{r}": gb, f"d_block_{r}": db, f"to_rgb_{r}": tr, f"from_rgb_{r}": fr})
        return items

    # -- one training step ------------------------------------------------------------------------
    def blend_reals(self, real):
        """During a fade the reals are blended like G's output: (1-a) * up(down(x)) + a * x, as in the
        authors' ``process_reals``, so D never sees sharper reals than G can make."""
        if not self._fading:
            return real
        a = tf.cast(self.alpha, real.dtype)
        return (1.0 - a) * upsample_images(downsample_images(real)) + a * real

    def gradient_penalty(self, real, fake):
        """WGAN-GP's penalty (:func:`ganhelpers.losses.gradient_penalty`, the one copy every critic
        uses) with its interpolation weights drawn from the model's RNG."""
        eps = self.uniform((tf.shape(real)[0], 1, 1, 1))
        return losses_lib.gradient_penalty(self.discriminator, real, fake, eps)

    def train_step(self, data):
        real = self.blend_reals(tf.cast(real_images(data), tf.float32))
        n = tf.shape(real)[0]

        # 1. Critic: D(fake) - D(real) + lambda * GP + drift * D(real)^2. G runs forward only.
        fake = tf.cast(self.generator(self.sample_noise(n), training=True), tf.float32)
        with tf.GradientTape() as tape:
            d_real = tf.cast(self.discriminator(real, training=True), tf.float32)
            d_fake = tf.cast(self.discriminator(fake, training=True), tf.float32)
            wasserstein = tf.reduce_mean(d_real) - tf.reduce_mean(d_fake)
            gp = self.gradient_penalty(real, fake)
            drift = losses_lib.drift_penalty(d_real)
            d_loss = -wasserstein + self.gp_lambda * gp + self.drift * drift
        # the shared optimizer step: loss scaling under float16, replica division under tf.distribute
        self._apply(self.d_optimizer, tape, d_loss, self.discriminator.trainable_variables)

        # 2. Generator: -D(G(z)) on a fresh batch of the same size.
        with tf.GradientTape() as tape:
            g_fake = self.generator(self.sample_noise(n), training=True)
            g_loss = losses_lib.wasserstein_generator_loss(self.discriminator(g_fake, training=True))
        self._apply(self.g_optimizer, tape, g_loss, self.generator.trainable_variables)

        self.step.assign_add(1)
        # n is this replica's share: the counters (and so alpha) count the global batch
        shown = tf.cast(n, tf.int64) * tf.distribute.get_strategy().num_replicas_in_sync
        self.phase_images.assign_add(shown)
        self.images_seen.assign_add(shown)
        return self._report(d_loss=d_loss, g_loss=g_loss, wasserstein=wasserstein, gradient_penalty=gp, drift=drift)

    def snapshot_images(self) -> np.ndarray:
        """G on the fixed noise at the current level, upsampled by pixel replication to the target
        resolution, so every frame of the growth has one size (G's running average where one is kept)."""
        imgs = super().snapshot_images()  # at the current level's resolution
        factor = self.resolutions[-1] // imgs.shape[1]
        return np.repeat(np.repeat(imgs, factor, axis=1), factor, axis=2)


# -- callbacks --------------------------------------------------------------------------------------

class FadeIn(keras.callbacks.Callback):
    """Moves ``model.alpha`` linearly in the images shown: ``alpha = min(1, phase_images /
    fade_images)`` during a fade, 1 otherwise (section 2: "alpha increases linearly from 0 to 1").

    Set at the start of training and after every batch, so the alpha a checkpoint stores is the one
    the next batch uses, and a resumed run continues the ramp where it stopped.
    """

    def __init__(self, fade_images: int):
        super().__init__()
        if fade_images <= 0:
            raise ValueError(f"fade_images must be positive, got {fade_images}")
        self.fade_images = fade_images

    def alpha_at(self, phase_images: int) -> float:
        return min(1.0, phase_images / self.fade_images)

    def update(self, model) -> float:
        a = self.alpha_at(int(model.phase_images.numpy())) if model.fading else 1.0
        model.alpha.assign(a)
        return a

    def on_train_begin(self, logs=None):
        self.update(self.model)

    def on_train_batch_end(self, batch, logs=None):
        self.update(self.model)


class GrowthLog(keras.callbacks.Callback):
    """TensorBoard scalars ``schedule/alpha``, ``schedule/level``, ``schedule/resolution`` and
    ``schedule/images_seen`` every ``log_every`` steps (the snapshots, at the target resolution,
    are the standard ``FixedNoiseSnapshots`` through :meth:`ProgressiveGAN.snapshot_images`)."""

    def __init__(self, run: Run, log_every: int = 10):
        super().__init__()
        self.run, self.log_every = run, log_every

    def on_train_batch_end(self, batch, logs=None):
        m = self.model
        step = int(m.step.numpy())
        if step % self.log_every == 0:
            summaries.scalars(self.run, {"schedule/alpha": float(m.alpha.numpy()),
                                         "schedule/level": int(m.level.numpy()),
                                         "schedule/resolution": m.resolution,
                                         "schedule/images_seen": int(m.images_seen.numpy())}, step)


class PhaseCheckpoint(cb.Checkpoint):
    """``callbacks.Checkpoint`` for one phase: :func:`restore_progress` restores before the phase's
    networks are wired, so ``fit`` must not restore again (the newest checkpoint may belong to the
    previous phase, whose optimizers have other variables): ``Checkpoint(restore=False)``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, restore=False, **kwargs)


def _read_phase(path: str) -> int:
    return int(tf.train.load_checkpoint(path).get_tensor("phase/.ATTRIBUTES/VARIABLE_VALUE"))


def restore_progress(model: ProgressiveGAN, checkpoint_dir) -> str | None:
    """Restore the newest readable checkpoint in ``checkpoint_dir``: read its phase, wire that phase,
    then restore every block, both optimizers, alpha and the counters. Without a checkpoint the
    model starts phase 0. Returns the restored path or None; raises
    ``callbacks.UnreadableCheckpoints`` when checkpoints exist but none restores (delete them, or
    start a fresh run)."""
    manager = cb.checkpoint_manager(tf.train.Checkpoint(), checkpoint_dir)  # rebuilds a deleted index
    for path in reversed(manager.checkpoints):
        try:
            model.wire_phase(_read_phase(path))
            model.build_optimizers()
            tf.train.Checkpoint(**model.checkpoint_items()).restore(path).assert_existing_objects_matched()
        except (tf.errors.OpError, ValueError, AssertionError) as err:
            log.warning("checkpoint %s is unreadable (%s); trying an older one", path, str(err).splitlines()[0])
            continue
        model._fading = model.phases[int(model.phase.numpy())][1]
        log.info("resumed from %s: level %d (%dx%d), %s, alpha %.3f, %d images into the phase", path,
                 int(model.level.numpy()), model.resolution, model.resolution,
                 "fade" if model.fading else "stabilise", float(model.alpha.numpy()),
                 int(model.phase_images.numpy()))
        return path
    if manager.checkpoints:
        raise cb.UnreadableCheckpoints(
            f"none of the {len(manager.checkpoints)} checkpoints in {checkpoint_dir} restores into this PGGAN: "
            "use a new run name, or start again with fresh=True (CLI --fresh)")
    model.start_phase(0)
    return None


# -- configs ----------------------------------------------------------------------------------------

PGGAN_PRESETS: dict[str, dict] = {
    # The paper's schedule (appendix A): 800k real images per fade and per stabilise phase,
    # minibatch 16 up to 128x128, full width (512 feature maps up to 32x32), latent 512.
    "paper": {
        "experiment": "pggan_flowers_paper",
        "seed": 0,
        "data": {"name": "flowers", "image_size": 128, "channels": 3},
        "network": {"width": 1.0, "latent_dim": None, "group_size": 4, "num_fixed": 36},
        "training": {"fade_images": 800_000, "stabilise_images": 800_000,
                     "batch_sizes": {4: 16, 8: 16, 16: 16, 32: 16, 64: 16, 128: 16},
                     "learning_rate": 1e-3, "beta_1": 0.0, "beta_2": 0.99, "epsilon": 1e-8,
                     "gp_lambda": 10.0, "drift": 1e-3,
                     "snapshot_every": 5000, "checkpoint_every_steps": 1000, "keep_checkpoints": 3, "log_every": 50},
    },
    # A Colab GPU in an evening: the paper's losses, optimizer and growth, at a quarter of the width
    # (128 maps up to 32x32, 64 at 64, 32 at 128), 150k images per phase and larger batches at low
    # resolution (our choice, for throughput).
    "full": {
        "experiment": "pggan_flowers",
        "seed": 0,
        "data": {"name": "flowers", "image_size": 128, "channels": 3},
        "network": {"width": 0.25, "latent_dim": None, "group_size": 4, "num_fixed": 36},
        "training": {"fade_images": 150_000, "stabilise_images": 150_000,
                     "batch_sizes": {4: 64, 8: 64, 16: 64, 32: 32, 64: 32, 128: 16},
                     "learning_rate": 1e-3, "beta_1": 0.0, "beta_2": 0.99, "epsilon": 1e-8,
                     "gp_lambda": 10.0, "drift": 1e-3,
                     "snapshot_every": 500, "checkpoint_every_steps": 500, "keep_checkpoints": 3, "log_every": 50},
    },
    # Offline, tiny: digits 4x4 -> 8x8 -> 16x16 at 1/32 width, 32 images per phase.
    "smoke": {
        "experiment": "pggan_smoke",
        "seed": 0,
        "data": {"name": "digits", "image_size": 16, "channels": 1},
        "network": {"width": 1 / 32, "latent_dim": None, "group_size": 4, "num_fixed": 16},
        "training": {"fade_images": 32, "stabilise_images": 32, "batch_sizes": {4: 16, 8: 16, 16: 8},
                     "learning_rate": 1e-3, "beta_1": 0.0, "beta_2": 0.99, "epsilon": 1e-8,
                     "gp_lambda": 10.0, "drift": 1e-3,
                     "snapshot_every": 2, "checkpoint_every_steps": 4, "keep_checkpoints": 3, "log_every": 2,
                     # a few steps per phase: eager steps cost less than tracing a graph per phase
                     "run_eagerly": True},
    },
}


# The workshop preset: the offline digits grown 4x4 -> 32x32 at 1/8 of the paper's width (64 maps),
# 6,400 images per fade and per stabilise phase, the paper's losses and optimizer; traced, not eager.
PGGAN_PRESETS["cpu"] = {
    "experiment": "pggan_digits",
    "seed": 0,
    "data": {"name": "digits", "image_size": 32, "channels": 1},
    "network": {"width": 1 / 8, "latent_dim": None, "group_size": 4, "num_fixed": 36},
    "training": {"fade_images": 6_400, "stabilise_images": 6_400, "batch_sizes": {4: 32, 8: 32, 16: 32, 32: 32},
                 "learning_rate": 1e-3, "beta_1": 0.0, "beta_2": 0.99, "epsilon": 1e-8,
                 "gp_lambda": 10.0, "drift": 1e-3,
                 "snapshot_every": 50, "checkpoint_every_steps": 200, "keep_checkpoints": 3, "log_every": 20},
}


# The real MNIST (60,000 training images) grown 4x4 -> 32x32, 28 -> 32 by zero padding 2 pixels a side
# (ganhelpers.data.mnist_padded; the lower levels are its box-downscaled copies, as the authors' dataset
# tool makes them). The paper's losses (WGAN-GP lambda 10, drift 1e-3), optimizer (Adam 1e-3, 0, 0.99,
# eps 1e-8, reset every phase), equalized learning rate, pixelwise norm and minibatch stddev (appendix A);
# the cpu preset's width (1/8: 64 maps) and batch 32 (the paper's is 16: ours, for CPU throughput); a
# budget of 16,000 images per fade and per stabilise phase (the paper's 800k, scaled; aimed at 15 minutes
# on 2 free CPU cores, not yet measured to its end: benchmarks/reproduce.py; docs/mnist_presets_results.md).
PGGAN_PRESETS["mnist"] = copy.deepcopy(PGGAN_PRESETS["cpu"])
PGGAN_PRESETS["mnist"].update(experiment="pggan_mnist", data={"name": "mnist", "image_size": 32, "channels": 1})
PGGAN_PRESETS["mnist"]["training"].update(fade_images=16_000, stabilise_images=16_000, snapshot_every=100,
                                          checkpoint_every_steps=500, log_every=50)


def pggan_config(preset: str = "full", **overrides) -> dict:
    """A deep copy of a PGGAN preset (``paper``, ``full``, ``cpu``, ``mnist``, ``smoke``); keyword arguments replace
    top-level values or update sections (``pggan_config("smoke", network={"width": 0.125})``)."""
    return {"model": "pggan", **preset_config(PGGAN_PRESETS, preset, "PGGAN", **overrides)}


def batch_size_at(config: dict, resolution: int) -> int:
    """The minibatch at a resolution (config.yaml turns the int keys into strings)."""
    sizes = {int(k): int(v) for k, v in config["training"]["batch_sizes"].items()}
    if resolution not in sizes:
        raise KeyError(f"training.batch_sizes has no entry for {resolution}x{resolution}: add one")
    return sizes[resolution]


def build_pggan(config: dict) -> ProgressiveGAN:
    m, t, d = config["network"], config["training"], config["data"]
    model = ProgressiveGAN(d["image_size"], d.get("channels", 3), width=m["width"], latent_dim=m.get("latent_dim"),
                           group_size=m.get("group_size", 4), gp_lambda=t["gp_lambda"], drift=t["drift"],
                           seed=config.get("seed", 0), num_fixed=m.get("num_fixed", 36),
                           policy=policy_for(t.get("precision", "float32")), ema_decay=t.get("ema_decay"))
    # eager steps (smoke) only on one device: a replicated step runs traced (tf.distribute runs an
    # eager strategy.run replica by replica, slowly, and warns)
    eager = bool(t.get("run_eagerly", False)) and tf.distribute.get_strategy().num_replicas_in_sync == 1
    model.compile(learning_rate=t["learning_rate"], beta_1=t["beta_1"], beta_2=t["beta_2"], epsilon=t["epsilon"],
                  run_eagerly=eager, jit_compile=bool(t.get("jit_compile", False)) and not eager)
    for r in model.resolutions:
        if batch_size_at(config, r) % model.group_size:
            raise ValueError(f"batch size at {r}x{r} must be a multiple of group_size={model.group_size}")
    return model


# -- training across the levels ---------------------------------------------------------------------

def downscale(images: np.ndarray, resolution: int, chunk: int = 512) -> np.ndarray:
    """uint8 (N, S, S, C) -> uint8 (N, R, R, C) by box averaging (S a multiple of R), as the authors'
    dataset tool builds the lower levels of detail."""
    f = images.shape[1] // resolution
    if f == 1:
        return images
    if images.shape[1] != f * resolution:
        raise ValueError(f"image side {images.shape[1]} is not a multiple of {resolution}")
    out = np.empty((len(images), resolution, resolution, images.shape[-1]), np.uint8)
    for i in range(0, len(images), chunk):
        x = images[i:i + chunk].astype(np.float32).reshape(-1, resolution, f, resolution, f, images.shape[-1])
        out[i:i + chunk] = np.clip(np.rint(x.mean(axis=(2, 4))), 0, 255)
    return out


def phase_length(config: dict, model: ProgressiveGAN, phase: int) -> int:
    return config["training"]["fade_images" if model.phases[phase][1] else "stabilise_images"]


def phase_name(model: ProgressiveGAN, phase: int) -> str:
    """What phase ``phase`` trains: ``"fade-in 8×8→16×16"`` or ``"stabilise 16×16"``."""
    level, fading = model.phases[phase]
    r = model.resolutions[level]
    if fading:
        old = model.resolutions[level - 1]
        return f"fade-in {old}×{old}→{r}×{r}"
    return f"stabilise {r}×{r}"


class PhaseProgress(keras.callbacks.ProgbarLogger):
    """Keras' progress logger (as verbose as ``fit``) whose epoch header names the phase,
    ``Epoch 4 · phase 4/5: fade-in 8×8→16×16``, in place of Keras' ``Epoch 4/4``."""

    def __init__(self, phase: str):
        super().__init__()
        self.phase = phase

    def on_epoch_begin(self, epoch, logs=None):
        epochs, self.epochs = self.epochs, 1  # 1: Keras' own header stays silent
        super().on_epoch_begin(epoch, logs)
        self.epochs = epochs
        if self.verbose:
            print(f"Epoch {epoch + 1} · {self.phase}", flush=True)


def save_level_grid(model: ProgressiveGAN, run: Run):
    """The fixed noise at the current level, at its native resolution: ``samples/level_RxR.png``."""
    r = model.resolution
    grid = images_lib.make_grid(GAN.snapshot_images(model))  # native size: not upsampled to the target
    path = images_lib.save_png(run.samples / f"level_{r:04d}x{r:04d}.png", grid)
    summaries.image(run, f"samples/level_{r}x{r}", grid, int(model.step.numpy()))
    return path


def total_steps(config: dict, data=None) -> int:
    """Train steps of the whole growth: every phase's images over its resolution's batch size."""
    t = config["training"]
    res = resolutions(config["data"]["image_size"])
    total = 0
    for level, fading in phase_list(len(res)):
        images = t["fade_images" if fading else "stabilise_images"]
        total += math.ceil(images / batch_size_at(config, res[level]))
    return total


class _PhaseTracing(logging.Filter):
    """Drops TensorFlow's "N out of the last M calls to ... triggered tf.function retracing" warning
    while the phases train: every phase wires new networks and traces its step once, by design (the
    advice the warning gives does not apply). Installed on the ``tensorflow`` logger only for the
    duration of :func:`fit_phases`."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


def fit_phases(ctx) -> dict:
    """PGGAN's phase loop (:func:`_fit_phases`), without TensorFlow's retracing warning (:class:`_PhaseTracing`)."""
    tf_logger, quiet = logging.getLogger("tensorflow"), _PhaseTracing()
    tf_logger.addFilter(quiet)
    try:
        return _fit_phases(ctx)
    finally:
        tf_logger.removeFilter(quiet)


def _fit_phases(ctx) -> dict:
    """PGGAN's phase loop (the run loop's ``fit`` for this paper): one ``fit`` per phase from the
    restored phase, image counter and alpha on; each phase on box-downscaled copies of the data at
    its resolution, with ``FadeIn``; after each stabilise phase a grid of that level; at the end
    the GIF of the whole growth. Stops early at ``ctx.total_steps``. Returns the last History."""
    from .run import fit_steps

    model, run, config = ctx.model, ctx.run, ctx.config
    t = config["training"]
    images = ctx.data["images"]
    phase = int(model.phase.numpy())
    history = None
    while True:
        level, fading = model.phases[phase]
        r, batch = model.resolution, batch_size_at(config, model.resolution)
        todo = math.ceil((phase_length(config, model, phase) - int(model.phase_images.numpy())) / batch)
        # this phase's checkpoint (its optimizers); restore_progress already restored the state
        cbs = [PhaseCheckpoint(run, every_n_steps=c.every_n_steps, every_n_epochs=None, keep=c.keep)
               if isinstance(c, cb.Checkpoint) else c for c in ctx.callbacks() if not isinstance(c, cb.GifWriter)]
        for c in cbs:
            if isinstance(c, PhaseCheckpoint):
                c.restore_before_fit(model)
        if todo > 0:
            log.info("phase %d/%d: %dx%d %s, %d steps of %d", phase + 1, len(model.phases), r, r,
                     "fade-in" if fading else "stabilise", todo, batch)
            dataset = data_lib.make_dataset(downscale(images, r), batch, seed=config.get("seed", 0) + phase,
                                            repeat=True)
            cap = dataclasses.replace(ctx, total_steps=min(ctx.total_steps, int(model.step.numpy()) + todo))
            progress = PhaseProgress(f"phase {phase + 1}/{len(model.phases)}: {phase_name(model, phase)}")
            history = fit_steps(cap, dataset, steps_per_pass=todo, callbacks=cbs + [progress]) or history
            if int(model.phase_images.numpy()) < phase_length(config, model, phase):
                break  # stopped at the step budget, mid-phase: a later call resumes here
        if not fading:
            save_level_grid(model, run)
        if phase + 1 == len(model.phases):
            break
        phase += 1
        model.start_phase(phase)
        ckpt = PhaseCheckpoint(run, every_n_steps=None, every_n_epochs=None, keep=t.get("keep_checkpoints", 3))
        ckpt.restore_before_fit(model)
        ckpt.save()  # a crash before the phase's first checkpoint resumes here, not in the old phase
    cb.write_gif(run)
    return history


def _finish(run, config, model, data) -> dict:
    gif = cb.gif_path(run)
    return {"resolution": model.resolution, "level": int(model.level.numpy()), "alpha": float(model.alpha.numpy()),
            "phase": int(model.phase.numpy()), "phases": len(model.phases),
            "level_grids": sorted(p.name for p in run.samples.glob("level_*.png")),
            "gif": str(gif.relative_to(run.dir)) if gif.exists() else None,
            "gif_frames": images_lib.gif_frame_count(gif) if gif.exists() else 0}


def _kind():
    from .run import ModelKind

    return ModelKind(
        name="pggan", presets=PGGAN_PRESETS, build=build_pggan,
        load_data=lambda config, data_dir=None, download=True: {"images": load_images(config, data_dir, download)},
        dataset=None, steps_per_pass=None, total_steps=total_steps,
        callbacks=lambda run, config, model, data: [FadeIn(config["training"]["fade_images"]),
                                                    GrowthLog(run, config["training"].get("log_every", 10))],
        finish=_finish, fit=fit_phases, restore=lambda model, run: restore_progress(model, run.checkpoints),
        description="progressive growing GAN with fade-in (Karras et al. 2018)")


KIND = _kind()


def read_growth_log(run: Run) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The ``schedule/*`` TensorBoard scalars of a run (alpha, level, resolution, images_seen) as
    ``{name: (steps, values)}`` sorted by step (the latest value wins when a resumed run logged a
    step twice)."""
    series: dict[str, dict[int, float]] = {}
    for tag, points in summaries.read_scalars(run.logs).items():
        if tag.startswith("schedule/"):
            for step, value in points:
                series.setdefault(tag[len("schedule/"):], {})[step] = value
    return {k: (np.array(sorted(d)), np.array([d[s] for s in sorted(d)])) for k, d in series.items()}


def load_images(config: dict, data_dir=None, download: bool = True) -> np.ndarray:
    """uint8 images at the target resolution: TF flowers (downloaded), the offline digits, or any dataset
    of :func:`ganhelpers.data.load` (``mnist``)."""
    d = config["data"]
    if d["name"] == "flowers":
        return data_lib.flowers(data_dir, d["image_size"], download=download)["images"]
    if d["name"] == "digits":
        return data_lib.digits(d["image_size"], d.get("channels", 1))["images"]
    return data_lib.load(d, data_dir=data_dir, download=download)["images"]


__all__ = ["ProgressiveGAN", "FadeIn", "GrowthLog", "PhaseCheckpoint", "PGGAN_PRESETS", "pggan_config",
           "build_pggan", "fit_phases", "total_steps", "restore_progress", "fmaps", "resolutions",
           "phase_list", "downscale", "read_growth_log", "batch_size_at", "generator_block", "discriminator_block",
           "load_images", "save_level_grid", "phase_length", "phase_name", "PhaseProgress"]
