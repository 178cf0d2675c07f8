"""The custom layers of the progressive GAN (Karras et al. 2018, "Progressive Growing of GANs for
Improved Quality, Stability, and Variation", ICLR).

* :class:`PixelNorm` (section 4.2): every pixel's feature vector scaled to unit mean square.
* :class:`MinibatchStdDev` (section 3): the average standard deviation over a group of images,
  appended as one constant feature map, so D can see how varied a batch is.
* :class:`EqualizedDense`, :class:`EqualizedConv2D` (section 4.1): weights stored as N(0, 1) and
  multiplied at run time by the He constant ``c = gain / sqrt(fan_in)`` (``gain = sqrt(2)``), so
  Adam's per-parameter step sizes give every layer the same effective learning speed.
* :class:`FadeInBlend` (section 2, figure 2): ``(1 - alpha) * old + alpha * new`` with ``alpha`` a
  ``tf.Variable`` owned by the model, so a callback can move it without retracing.
* :func:`upsample` / :func:`downsample`: nearest-neighbour 2x and 2x2 average pooling.
* :func:`to_rgb` / :func:`from_rgb`: the 1x1 convolutions between features and images.

All tensors are NHWC. Layers compute in the layer's compute dtype; the output layers ``to_rgb``
and the critic's last dense unit are float32 so mixed precision keeps images and losses float32.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import layers, ops

#: He's gain for (leaky) ReLU layers; Karras et al. 2018 section 4.1 (their code: gain=sqrt(2)).
HE_GAIN = math.sqrt(2.0)
LEAK = 0.2  # LeakyReLU slope in both networks (section 4.1 / appendix A)


class PixelNorm(layers.Layer):
    """``b = a / sqrt(mean_over_channels(a^2) + epsilon)`` at every pixel (section 4.2, eq. 2).

    Works on ``(N, C)`` and ``(N, H, W, C)``: the channel axis is the last one. The result has mean
    square 1 over channels at each pixel (up to epsilon = 1e-8).
    """

    def __init__(self, epsilon: float = 1e-8, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def call(self, x):
        return x * ops.rsqrt(ops.mean(ops.square(x), axis=-1, keepdims=True) + self.epsilon)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


class MinibatchStdDev(layers.Layer):
    """Appends one feature map: the standard deviation of every feature and pixel over a group of
    ``group_size`` images, averaged over features and pixels (section 3).

    As in the authors' code, the batch is split as ``reshape(G, N / G, ...)``: image ``i`` is in
    group ``i mod (N / G)``. Each group gets its own statistic; ``std = sqrt(var + 1e-8)`` with the
    biased variance. The group size is ``min(group_size, N)`` and must divide the batch.
    ``(N, H, W, C) -> (N, H, W, C + 1)``.
    """

    def __init__(self, group_size: int = 4, epsilon: float = 1e-8, **kwargs):
        super().__init__(**kwargs)
        self.group_size, self.epsilon = group_size, epsilon

    def call(self, x):
        shape = tf.shape(x)
        n, h, w, c = shape[0], shape[1], shape[2], shape[3]
        g = tf.minimum(self.group_size, n)
        tf.debugging.assert_equal(n % g, 0, message=(
            f"MinibatchStdDev: the batch size must be a multiple of group_size={self.group_size}"))
        y = tf.reshape(tf.cast(x, tf.float32), [g, -1, h, w, c])           # (G, M, H, W, C)
        y = y - tf.reduce_mean(y, axis=0, keepdims=True)
        std = tf.sqrt(tf.reduce_mean(tf.square(y), axis=0) + self.epsilon)  # (M, H, W, C)
        s = tf.reduce_mean(std, axis=[1, 2, 3])                              # (M,)
        s = tf.tile(tf.reshape(s, [-1, 1, 1, 1]), [g, h, w, 1])              # (N, H, W, 1)
        return tf.concat([x, tf.cast(s, x.dtype)], axis=-1)

    def compute_output_shape(self, input_shape):
        c = input_shape[-1]
        return (*input_shape[:-1], None if c is None else c + 1)

    def get_config(self):
        return {**super().get_config(), "group_size": self.group_size, "epsilon": self.epsilon}


class _Equalized:
    """Shared bits of the equalized layers: the He constant and the effective kernel."""

    gain: float
    fan_in: int
    kernel: keras.Variable

    @property
    def scale(self) -> float:
        """``c = gain / sqrt(fan_in)``, the run-time multiplier of the stored N(0, 1) weights."""
        return self.gain / math.sqrt(self.fan_in)

    def effective_kernel(self):
        """The kernel the layer actually applies: ``c * kernel``."""
        return ops.cast(self.kernel, self.compute_dtype) * self.scale


class EqualizedDense(_Equalized, layers.Layer):
    """Dense layer with equalized learning rate: ``y = x @ (c * W) + b``, ``W ~ N(0, 1)``, ``b = 0``,
    ``c = gain / sqrt(fan_in)`` (section 4.1)."""

    def __init__(self, units: int, gain: float = HE_GAIN, use_bias: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.units, self.gain, self.use_bias = units, gain, use_bias

    def build(self, input_shape):
        self.fan_in = int(input_shape[-1])
        self.kernel = self.add_weight(name="kernel", shape=(self.fan_in, self.units),
                                      initializer=keras.initializers.RandomNormal(0.0, 1.0))
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros") if self.use_bias else None

    def call(self, x):
        y = ops.matmul(x, self.effective_kernel())
        return y + ops.cast(self.bias, y.dtype) if self.use_bias else y

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "gain": self.gain, "use_bias": self.use_bias}


class EqualizedConv2D(_Equalized, layers.Layer):
    """``same``-padded, stride-1 convolution with equalized learning rate: kernel ``(k, k, C_in,
    filters)`` stored as N(0, 1), applied as ``c * kernel`` with ``fan_in = k * k * C_in``."""

    def __init__(self, filters: int, kernel_size: int = 3, gain: float = HE_GAIN, use_bias: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.gain, self.use_bias = filters, kernel_size, gain, use_bias

    def build(self, input_shape):
        c_in = int(input_shape[-1])
        self.fan_in = self.kernel_size * self.kernel_size * c_in
        self.kernel = self.add_weight(name="kernel", shape=(self.kernel_size, self.kernel_size, c_in, self.filters),
                                      initializer=keras.initializers.RandomNormal(0.0, 1.0))
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros") if self.use_bias else None

    def call(self, x):
        y = ops.conv(x, self.effective_kernel(), strides=1, padding="same")
        return y + ops.cast(self.bias, y.dtype) if self.use_bias else y

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "gain": self.gain, "use_bias": self.use_bias}


class FadeInBlend(layers.Layer):
    """``(1 - alpha) * old + alpha * new`` (figure 2): the residual blend that fades a new block in.

    ``alpha`` is a scalar ``tf.Variable`` owned by the model (``ProgressiveGAN.alpha``) and read at
    run time, so a callback moves it from 0 to 1 without retracing. The layer holds it by a closure,
    not as one of its own weights: the model checkpoints it once. The written form is exact at both
    ends: ``old`` at alpha = 0, ``new`` at alpha = 1.
    """

    def __init__(self, alpha: tf.Variable, **kwargs):
        super().__init__(**kwargs)
        self._read_alpha = lambda: alpha

    @property
    def alpha(self) -> tf.Variable:
        return self._read_alpha()

    def call(self, inputs):
        old, new = inputs
        a = ops.cast(self._read_alpha(), new.dtype)
        return (1.0 - a) * ops.cast(old, new.dtype) + a * new

    def compute_output_shape(self, input_shapes):
        return input_shapes[1]


def upsample(name: str | None = None) -> layers.Layer:
    """2x nearest-neighbour upsampling (the paper's "2x": pixel replication)."""
    return layers.UpSampling2D(2, interpolation="nearest", name=name)


def downsample(name: str | None = None) -> layers.Layer:
    """2x2 average pooling (the paper's "0.5x")."""
    return layers.AveragePooling2D(2, name=name)


def upsample_images(x):
    """Nearest-neighbour 2x of a tensor (N, H, W, C) -> (N, 2H, 2W, C)."""
    return ops.repeat(ops.repeat(x, 2, axis=1), 2, axis=2)


def downsample_images(x):
    """2x2 average pooling of a tensor (N, H, W, C) -> (N, H/2, W/2, C)."""
    return ops.average_pool(x, 2, strides=2, padding="valid")


def to_rgb(channels: int, name: str | None = None) -> EqualizedConv2D:
    """Features -> image: a linear 1x1 equalized convolution, float32 output.

    Gain 1, not sqrt(2): the authors' code (``torgb`` in networks.py) uses ``gain=1`` because no
    ReLU follows; the paper's text does not say.
    """
    return EqualizedConv2D(channels, 1, gain=1.0, name=name, dtype="float32")


def from_rgb(filters: int, name: str | None = None) -> keras.Sequential:
    """Image -> features: a 1x1 equalized convolution (gain sqrt(2)) and LeakyReLU 0.2."""
    return keras.Sequential([EqualizedConv2D(filters, 1), layers.LeakyReLU(LEAK)], name=name)


__all__ = ["PixelNorm", "MinibatchStdDev", "EqualizedDense", "EqualizedConv2D", "FadeInBlend", "upsample",
           "downsample", "upsample_images", "downsample_images", "to_rgb", "from_rgb", "HE_GAIN", "LEAK"]
