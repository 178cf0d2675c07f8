"""DCGAN (Radford et al. 2015) as the bird experiment trains it: the model, its presets, its builder.

``dcgan_config("full")`` is the bird experiment on CUB-200-2011; ``"paper"`` Radford et al.'s own
layout; ``"demo"`` and ``"smoke"`` train on the offline scikit-learn digits, ``"mnist"`` on the real
MNIST. Every value that comes from a paper or from the experiment says so. Train with
``ganhelpers.run.train(config)`` or ``python -m ganhelpers train dcgan --preset demo``.
"""

from __future__ import annotations

import copy

import keras
import tensorflow as tf

from . import data as data_lib
from .configs import preset_config
from .models import GAN, real_images
from .run import ModelKind

DCGAN_PRESETS: dict[str, dict] = {
    # The bird experiment (DCGAN on CUB-200-2011): 64x64x3, batch 64, 190 epochs, noise N(0, 1) of
    # shape (1, 1, 100); G a Dense 4x4x512 projection, then 5x5 stride-2 transposed convolutions
    # 256/128/64/3 with BatchNorm (momentum 0.5) and ReLU, tanh out; D 5x5 stride-2 convolutions
    # 64/128/256/512 with LeakyReLU 0.2, BatchNorm on the last three and a dense sigmoid unit;
    # D Adam(2e-4, beta_1 0.5), G Adam(1.5e-4, beta_1 0.5); targets real 1 - U[0, 0.2),
    # fake U[0, 0.2), G 1 - U[0, 0.2); a grid every 50 batches, a checkpoint every 5 epochs.
    "full": {
        "experiment": "dcgan_birds",
        "seed": 0,
        "data": {"name": "cub200", "image_size": 64, "channels": 3, "batch_size": 64, "crop": "bbox"},
        "generator": {"latent_dim": 100, "base_filters": 64, "kernel_size": 5, "projection": "dense",
                      "activation_name": "relu", "bn_momentum": 0.5},
        "discriminator": {"base_filters": 64, "kernel_size": 5, "head": "dense", "bn_momentum": 0.5,
                          "dropout": 0.0},
        "training": {"epochs": 190, "d_lr": 2e-4, "g_lr": 1.5e-4, "beta_1": 0.5, "loss": "bce",
                     "label_noise": {"real_range": [0.8, 1.0], "fake_range": [0.0, 0.2],
                                     "generator_range": [0.8, 1.0], "flip_prob": 0.0, "flip_decay": 1.0},
                     "snapshot_every": 50, "checkpoint_every_steps": None, "checkpoint_every_epochs": 5,
                     "keep_checkpoints": 3},
    },
    # Radford et al. 2015's own layout (the PyTorch reference): 4x4 kernels, conv projection and
    # conv head, Adam(2e-4, beta_1 0.5) for both networks, hard labels.
    "paper": {
        "experiment": "dcgan_birds_paper",
        "seed": 0,
        "data": {"name": "cub200", "image_size": 64, "channels": 3, "batch_size": 128, "crop": "bbox"},
        "generator": {"latent_dim": 100, "base_filters": 64, "kernel_size": 4, "projection": "conv",
                      "activation_name": "relu"},
        "discriminator": {"base_filters": 64, "kernel_size": 4, "head": "conv"},
        "training": {"epochs": 25, "d_lr": 2e-4, "g_lr": 2e-4, "beta_1": 0.5, "loss": "bce",
                     "label_noise": None, "snapshot_every": 100, "checkpoint_every_steps": None,
                     "checkpoint_every_epochs": 1, "keep_checkpoints": 3},
    },
    # The offline demo: the paper's layout at 32x32x1 on the scikit-learn digits, with the bird
    # experiment's label noise. Sized to finish in a few minutes on a 2-core CPU.
    "demo": {
        "experiment": "dcgan_digits",
        "seed": 0,
        "data": {"name": "digits", "image_size": 32, "channels": 1, "batch_size": 64},
        "generator": {"latent_dim": 100, "base_filters": 32, "kernel_size": 4, "projection": "conv",
                      "activation_name": "relu"},
        "discriminator": {"base_filters": 32, "kernel_size": 4, "head": "conv"},
        "training": {"epochs": 40, "d_lr": 2e-4, "g_lr": 2e-4, "beta_1": 0.5, "loss": "bce",
                     "label_noise": {"real_range": [0.8, 1.0], "fake_range": [0.0, 0.2],
                                     "generator_range": [0.8, 1.0], "flip_prob": 0.0, "flip_decay": 1.0},
                     "snapshot_every": 50, "checkpoint_every_steps": 50, "checkpoint_every_epochs": 1,
                     "keep_checkpoints": 3},
    },
}
# The workshop preset (every notebook has one): the demo, which learns the digits in 2.3 minutes on
# 2 CPU cores with oneDNN capped at AVX2 (the README's workshop table: benchmarks/workshop.py --isa avx2).
DCGAN_PRESETS["cpu"] = copy.deepcopy(DCGAN_PRESETS["demo"])
# A few steps on the digits: the tests' preset (it does not learn: its networks are tiny).
DCGAN_PRESETS["smoke"] = copy.deepcopy(DCGAN_PRESETS["demo"])
DCGAN_PRESETS["smoke"]["experiment"] = "dcgan_smoke"
DCGAN_PRESETS["smoke"]["generator"]["base_filters"] = 8
DCGAN_PRESETS["smoke"]["discriminator"]["base_filters"] = 8
DCGAN_PRESETS["smoke"]["training"].update(epochs=1, snapshot_every=5, checkpoint_every_steps=10)
# The real MNIST (60,000 training images) at 32x32x1, 28 -> 32 by zero padding 2 pixels a side
# (ganhelpers.data.mnist_padded), with Radford et al. 2015's own recipe as in "paper" (section 3:
# minibatch 128, Adam(2e-4, beta_1 0.5) for both networks, weights N(0, 0.02), BatchNorm, ReLU in G,
# LeakyReLU(0.2) in D, hard labels) at half the width (32 base maps, ours, for 2 CPU cores) and a
# budget of 8 epochs (3,744 steps), aimed at 15 minutes on 2 free CPU cores (about 19 at the pace seen
# on free cores). It passes ganhelpers.evaluate.mnist_learning_check's bar: 81.3% of 1,000 samples with
# p >= 0.9, every class within 5.5%-11.8% (4 epochs gave 74.1%: benchmarks/reproduce.py;
# docs/mnist_presets_results.md).
DCGAN_PRESETS["mnist"] = copy.deepcopy(DCGAN_PRESETS["paper"])
DCGAN_PRESETS["mnist"].update(experiment="dcgan_mnist",
                              data={"name": "mnist", "image_size": 32, "channels": 1, "batch_size": 128})
DCGAN_PRESETS["mnist"]["generator"]["base_filters"] = 32
DCGAN_PRESETS["mnist"]["discriminator"]["base_filters"] = 32
DCGAN_PRESETS["mnist"]["training"].update(epochs=8, snapshot_every=100, checkpoint_every_steps=500, log_every=50)


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
        t = self.uniform((n, 1), value_range[0], value_range[1])
        if flip:
            t = tf.where(self.uniform((n, 1)) < self.flip_prob, 1.0 - t, t)
        return t

    def train_step(self, data):
        real = real_images(data)
        n = tf.shape(real)[0]
        return self.adversarial_step(real, self.sample_noise(n), self.sample_noise(2 * n))

    def adversarial_step(self, real, z_fake, z_gen):
        """The three updates of one step on ``real`` (N, H, W, C), with D's fakes drawn from
        ``z_fake`` (N, *latent) and G's batch from ``z_gen`` (2N, *latent). ``train_step`` draws both
        from ``self.rng``; passing them in gives a step fixed noise (a speed test compares the
        compiled forms of one step this way)."""
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
            d_acc_real=tf.reduce_mean(tf.cast(logits_real > self.loss_fn.threshold, tf.float32)),
            d_acc_fake=tf.reduce_mean(tf.cast(logits_fake <= self.loss_fn.threshold, tf.float32)))


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


def dcgan_config(preset: str = "demo", **overrides) -> dict:
    """A deep copy of a DCGAN preset (``full``, ``paper``, ``demo``, ``cpu``, ``mnist``, ``smoke``); keyword
    arguments replace top-level values or update sections (``dcgan_config("demo", seed=1)``)."""
    return {"model": "dcgan", **preset_config(DCGAN_PRESETS, preset, "DCGAN", **overrides)}


# -- the run loop's view of DCGAN ----------------------------------------------------------------

def load_data(config: dict, data_dir=None, download: bool = True) -> dict:
    return data_lib.load(config["data"], data_dir=data_dir, download=download)


def dataset(config: dict, data: dict):
    return data_lib.make_dataset(data["images"], config["data"]["batch_size"], seed=config.get("seed", 0),
                                 repeat=True)


def steps_per_pass(config: dict, data: dict) -> int:
    n, batch = len(data["images"]), config["data"]["batch_size"]
    if n < batch:
        raise ValueError(f"only {n} images for batch_size={batch}: lower data.batch_size")
    return n // batch


def own_callbacks(run, config: dict, model, data) -> list:
    noise = config["training"].get("label_noise")
    from .callbacks import LabelNoise

    return [LabelNoise(**noise)] if noise else []


KIND = ModelKind(
    name="dcgan", presets=DCGAN_PRESETS, build=lambda config: build_dcgan(config), load_data=load_data,
    dataset=dataset, steps_per_pass=steps_per_pass,
    total_steps=lambda config, data: config["training"]["epochs"] * steps_per_pass(config, data),
    callbacks=own_callbacks, description="DCGAN (Radford et al. 2015); the bird experiment's label noise")
