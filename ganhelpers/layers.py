"""Keras layer builders for DCGAN generators and discriminators.

The DCGAN guidelines (Radford et al. 2015, section 3): strided (transposed) convolutions
instead of pooling, BatchNorm in both networks except the generator's output layer and the
discriminator's input layer, ReLU in the generator with Tanh at the output, LeakyReLU(0.2) in
the discriminator, weights drawn from N(0, 0.02).

Two layouts come out of the same builders:

* the paper's PyTorch reference: latent (1, 1, 100) -> 4x4 transposed convolution (valid) ->
  4x4 stride-2 transposed convolutions; D ends in a 4x4 valid convolution to one logit;
* the bird experiment (``projection="dense"``, ``kernel_size=5``, ``head="dense"``): a Dense
  4x4x512 projection, then 5x5 stride-2 transposed convolutions; D flattens into a Dense unit.

Both networks work on square images of side ``start_size * 2**k`` (32, 64, 128 ...). D returns
logits; the losses apply the sigmoid. The convolutions are Keras' ``Conv2D`` / ``Conv2DTranspose``
(``conv="keras"``) or their subclasses ``fastconv.PhaseConv2D`` / ``PhaseConv2DTranspose``
(``conv="phases"``): the same weights and results, with the strided transposed products run as
stride-1 convolutions, faster on CPUs (see ``ganhelpers/fastconv.py``). The default,
``conv="auto"`` (config ``training.conv``), takes the phase form where TensorFlow sees no GPU/TPU.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import layers

from . import fastconv
from .distribute import replica_share, several_replicas, shared_draw

# Radford et al. 2015, section 4: "All weights were initialized from a zero-centered Normal
# distribution with standard deviation 0.02"; the PyTorch reference also draws BatchNorm's gamma
# from N(1, 0.02). PyTorch BatchNorm defaults: momentum 0.1 (= Keras momentum 0.9), eps 1e-5.
CONV_INIT_STDDEV = 0.02
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def conv_init(stddev: float = CONV_INIT_STDDEV, seed=None):
    return keras.initializers.RandomNormal(mean=0.0, stddev=stddev, seed=seed)


def batch_norm(momentum: float = BN_MOMENTUM, epsilon: float = BN_EPSILON, stddev: float = CONV_INIT_STDDEV,
               name: str | None = None) -> layers.BatchNormalization:
    """BatchNorm with the reference's momentum/epsilon and gamma ~ N(1, stddev); synchronised across
    replicas when built under several (the minibatch's statistics, as on one device)."""
    return layers.BatchNormalization(
        momentum=momentum, epsilon=epsilon, synchronized=several_replicas(),
        gamma_initializer=keras.initializers.RandomNormal(mean=1.0, stddev=stddev), name=name)


# Keras' noise layers draw the same noise on every replica of a MirroredStrategy (their seed state is
# one mirrored variable; measured on TF 2.21 / Keras 3.15). These subclasses draw the global batch's
# noise from that shared seed and keep the replica's rows (see ganhelpers.distribute); on one device
# they are Keras' layers.
@keras.saving.register_keras_serializable(package="ganhelpers")
class GaussianNoise(layers.GaussianNoise):
    """``keras.layers.GaussianNoise``, with independent noise per replica under several replicas."""

    def call(self, inputs, training=False):
        share = replica_share()
        if not (training and self.stddev > 0) or share is None:
            return super().call(inputs, training=training)
        noise = shared_draw(lambda shape: keras.random.normal(shape, stddev=self.stddev, dtype=self.compute_dtype,
                                                              seed=self.seed_generator), tf.shape(inputs), share)
        return inputs + noise


@keras.saving.register_keras_serializable(package="ganhelpers")
class Dropout(layers.Dropout):
    """``keras.layers.Dropout`` (no ``noise_shape``), with independent masks per replica under several
    replicas: the kept units' scale ``1 / (1 - rate)`` is drawn for the global batch, as Keras draws it."""

    def call(self, inputs, training=False):
        share = replica_share()
        if not (training and 0 < self.rate < 1) or share is None or self.noise_shape is not None:
            return super().call(inputs, training=training)
        scale = shared_draw(lambda shape: keras.random.dropout(tf.ones(shape, inputs.dtype), self.rate,
                                                               seed=self.seed_generator), tf.shape(inputs), share)
        return inputs * scale


def activation(name: str, leak: float = 0.2, layer_name: str | None = None):
    if name == "relu":
        return layers.ReLU(name=layer_name)
    if name in ("leaky", "leaky_relu", "lrelu"):
        return layers.LeakyReLU(negative_slope=leak, name=layer_name)
    raise ValueError(f"activation must be 'relu' or 'leaky', got {name!r}")


CONV_LAYERS = {"keras": (layers.Conv2D, layers.Conv2DTranspose),
               "phases": (fastconv.PhaseConv2D, fastconv.PhaseConv2DTranspose)}


def resolve_conv(conv: str = "auto") -> str:
    """``"keras"`` or ``"phases"`` for a config's ``training.conv``: ``"auto"`` (the default) is the
    phase form on a machine whose TensorFlow sees no GPU or TPU (x2.2 on the DCGAN paper step of
    an AVX2-only CPU, x1.35-1.45 on the 5x5 ``full`` step of an AVX-512 one; 0.9-1.0 where the
    native op is fast, e.g. the small ``cpu`` presets on that AVX-512 CPU: README, "Speed"), and
    Keras' own layers where an accelerator's libraries run the transposed op well."""
    if conv == "auto":
        return "keras" if fastconv._accelerator_visible() else "phases"
    if conv not in CONV_LAYERS:
        raise ValueError(f"conv must be one of {sorted(CONV_LAYERS) + ['auto']}, got {conv!r}")
    return conv


def conv_layers(conv: str = "auto"):
    """``(Conv2D, Conv2DTranspose)`` classes for ``conv`` = ``"auto"`` (default, see
    :func:`resolve_conv`), ``"keras"`` or ``"phases"``."""
    return CONV_LAYERS[resolve_conv(conv)]


def num_stages(image_size: int, start_size: int = 4) -> int:
    """How many stride-2 stages lead from ``start_size`` to ``image_size`` (both powers of two)."""
    n = math.log2(image_size / start_size) if image_size > 0 and start_size > 0 else -1
    if n < 1 or n != int(n):
        raise ValueError(f"image_size must be start_size * 2**k with k >= 1 (start_size={start_size}), "
                         f"got {image_size}; use 32, 64 or 128")
    return int(n)


def dcgan_generator(image_size: int = 64, channels: int = 3, latent_dim: int = 100, base_filters: int = 64,
                    kernel_size: int = 4, projection: str = "conv", activation_name: str = "relu",
                    use_bias: bool = False, bn_momentum: float = BN_MOMENTUM, bn_epsilon: float = BN_EPSILON,
                    init_stddev: float = CONV_INIT_STDDEV, start_size: int = 4,
                    name: str = "generator", conv: str = "auto") -> keras.Model:
    """DCGAN generator: noise (1, 1, latent_dim) -> image (image_size, image_size, channels) in [-1, 1].

    The feature maps halve at every stage: ``base_filters * 2**(k-1)`` at ``start_size`` down to
    ``base_filters`` before the last transposed convolution to ``channels``. ``projection="conv"`` is
    the paper's reference (a ``start_size`` x ``start_size`` valid transposed convolution, whose output
    side is (1 - 1) * 1 + start_size = start_size), ``"dense"`` the bird experiment's Dense projection.
    """
    k = num_stages(image_size, start_size)
    init = conv_init(init_stddev)
    _, Conv2DTranspose = conv_layers(conv)
    z = keras.Input((1, 1, latent_dim), name="noise")
    filters = base_filters * 2 ** (k - 1)
    if projection == "conv":
        x = Conv2DTranspose(filters, start_size, strides=1, padding="valid", use_bias=use_bias,
                                 kernel_initializer=init, name="project")(z)
    elif projection == "dense":
        x = layers.Flatten()(z)
        x = layers.Dense(start_size * start_size * filters, use_bias=use_bias, kernel_initializer=init,
                         name="project")(x)
        x = layers.Reshape((start_size, start_size, filters))(x)
    else:
        raise ValueError(f"projection must be 'conv' or 'dense', got {projection!r}")
    x = batch_norm(bn_momentum, bn_epsilon, init_stddev, name="project_bn")(x)
    x = activation(activation_name, layer_name="project_act")(x)
    for i in range(1, k):
        filters //= 2
        x = Conv2DTranspose(filters, kernel_size, strides=2, padding="same", use_bias=use_bias,
                                 kernel_initializer=init, name=f"up{i}")(x)
        x = batch_norm(bn_momentum, bn_epsilon, init_stddev, name=f"up{i}_bn")(x)
        x = activation(activation_name, layer_name=f"up{i}_act")(x)
    # No BatchNorm on the output layer (guideline); the bias stays, as in the reference's Tanh layer.
    x = Conv2DTranspose(channels, kernel_size, strides=2, padding="same", kernel_initializer=init,
                             name="to_image")(x)
    # float32 output so mixed-precision runs still produce float32 images.
    out = layers.Activation("tanh", dtype="float32", name="tanh")(x)
    return keras.Model(z, out, name=name)


def dcgan_discriminator(image_size: int = 64, channels: int = 3, base_filters: int = 64, kernel_size: int = 4,
                        head: str = "conv", dropout: float = 0.0, use_bias: bool = False,
                        batchnorm: bool = True, bn_momentum: float = BN_MOMENTUM, bn_epsilon: float = BN_EPSILON,
                        init_stddev: float = CONV_INIT_STDDEV, start_size: int = 4, leak: float = 0.2,
                        name: str = "discriminator", conv: str = "auto") -> keras.Model:
    """DCGAN discriminator: image in [-1, 1] -> one logit per image, shape (N, 1).

    Stride-2 convolutions with ``base_filters * 2**i`` maps down to ``start_size``; BatchNorm on every
    stage but the first (``batchnorm=False`` drops it, as WGAN-GP asks); LeakyReLU(``leak``);
    optional dropout after each stage. ``head="conv"`` ends in a ``start_size`` valid convolution (the
    reference), ``"dense"`` in Flatten + Dense (the bird experiment). The output is a float32 logit.
    """
    k = num_stages(image_size, start_size)
    init = conv_init(init_stddev)
    Conv2D, _ = conv_layers(conv)
    img = keras.Input((image_size, image_size, channels), name="image")
    x = img
    filters = base_filters
    for i in range(k):
        first = i == 0
        x = Conv2D(filters, kernel_size, strides=2, padding="same", use_bias=use_bias or first,
                        kernel_initializer=init, name=f"down{i}")(x)
        if batchnorm and not first:
            x = batch_norm(bn_momentum, bn_epsilon, init_stddev, name=f"down{i}_bn")(x)
        x = layers.LeakyReLU(negative_slope=leak, name=f"down{i}_act")(x)
        if dropout:
            x = Dropout(dropout, name=f"down{i}_dropout")(x)
        filters *= 2
    if head == "conv":
        x = Conv2D(1, start_size, strides=1, padding="valid", kernel_initializer=init, name="logit")(x)
        x = layers.Flatten()(x)
    elif head == "dense":
        x = layers.Flatten()(x)
        x = layers.Dense(1, kernel_initializer=init, name="logit")(x)
    else:
        raise ValueError(f"head must be 'conv' or 'dense', got {head!r}")
    out = layers.Activation("linear", dtype="float32", name="logit_f32")(x)
    return keras.Model(img, out, name=name)


def build_dcgan_networks(config: dict) -> tuple[keras.Model, keras.Model]:
    """Both networks from a config with ``data``, ``generator`` and ``discriminator`` sections."""
    data, g, d = config["data"], dict(config.get("generator", {})), dict(config.get("discriminator", {}))
    size, channels = data["image_size"], data["channels"]
    conv = config.get("training", {}).get("conv", "auto")
    return (dcgan_generator(size, channels, conv=conv, **g), dcgan_discriminator(size, channels, conv=conv, **d))
