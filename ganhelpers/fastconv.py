"""Strided convolutions whose transposed half runs as fast as a plain convolution on the CPU.

A stride-2 transposed convolution (the generator's upsampling layer, and the input gradient of
every strided convolution in the discriminator) is ``Conv2DBackpropInput`` in TensorFlow. On the
CPU here that op reaches 0.24-0.75 of the fp32 matmul peak, while a plain stride-1 ``Conv2D`` of the
same FLOPs reaches about 1.0 (``python benchmarks/conv_ops.py``). A stride-``s`` transposed
convolution is ``s * s`` interleaved stride-1 convolutions ("phases"): output row ``s*m + r`` only
ever meets the kernel taps ``t = t0(r), t0(r) + s, ...``, so each phase is a small convolution of the
input with just those taps, and ``depth_to_space`` interleaves the results. Every
multiply-add of the original operation is done once, none is added.

:func:`conv2d_transpose` and :func:`conv2d` wrap this in ``tf.custom_gradient`` so each of the three
products of a layer (forward, input gradient, weight gradient) uses the fastest op:

==================  ========================  =======================================
layer               forward                   input gradient
==================  ========================  =======================================
transposed conv     phases (was the slow op)  ``Conv2D`` (as TensorFlow's own gradient)
strided conv        ``Conv2D``                phases (was the slow op)
==================  ========================  =======================================

and the weight gradient stays ``Conv2DBackpropFilter``, as in TensorFlow's own gradients. The
gradient functions are ordinary differentiable ops, so a gradient penalty (WGAN-GP) can
differentiate through them again.

:class:`PhaseConv2DTranspose` and :class:`PhaseConv2D` are the Keras layers (same weights, same
config, same results as ``Conv2DTranspose`` / ``Conv2D`` to float rounding) the DCGAN builders use.
The phase path is taken for ``padding="same"``, channels-last, no dilation, groups or output
padding, equal strides, an output exactly ``stride *`` the input, a kernel at least the stride and
at least :data:`MIN_PHASE_CHANNELS` channels on the transposed side; otherwise, and on GPUs/TPUs
(whose libraries run the transposed op well), the layers call the native op.
The builders use these layers by default where TensorFlow sees no GPU/TPU (``training.conv:
auto``; ``keras`` forces Keras' own ``Conv2D`` / ``Conv2DTranspose``, ``phases`` these). Measured:
x2.2 on the DCGAN paper step of a 2-core AVX2-only CPU, x1.35-1.45 on the 5x5 ``full`` step of a
2-core AVX-512 one, and 0.9-1.0 where the native op is fast (that AVX-512 CPU's 4x4 paper step and
small ``cpu`` presets): the README's speed section, ``benchmarks/torch_twin.py``,
``benchmarks/overheads.py``.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers

# Below this many output channels of the transposed operation (the generator's RGB layer, the input
# gradient of D's first layer) a phase is a matmul with a tiny N and the native op wins (measured:
# 64 -> 3 channels at 32x32, native 0.31 of the matmul peak, phases 0.09).
MIN_PHASE_CHANNELS = 16

def _accelerator_visible() -> bool:
    return bool(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))


def _phase_taps(size_in: int, kernel: int, stride: int) -> list[tuple[int, int, int, int]]:
    """For each output phase ``r`` of a 'same' transposed convolution of an input of ``size_in``:
    (first kernel tap, number of taps, padding before, padding after) of its stride-1 convolution.

    The transposed convolution is the input gradient of ``y = conv2d(u, k, stride, 'same')`` with
    ``len(u) = stride * size_in``: ``y[i] = sum_t k[t] u[stride*i + t - P]`` with TensorFlow's 'same'
    padding ``P = max(kernel - stride, 0) // 2`` before. Hence ``u[stride*m + r]`` collects
    ``k[t] x[i]`` over ``t = t0 + stride*j`` (``t0 = (r + P) mod stride``) and ``i = m + c - j``
    (``c = (r + P - t0) / stride``): a correlation of ``x`` with the reversed taps, padded by
    ``taps - 1 - c`` before and ``c`` after so that each phase has ``size_in`` outputs.
    """
    pad = max(kernel - stride, 0) // 2
    out = []
    for r in range(stride):
        t0 = (r + pad) % stride
        taps = -(-(kernel - t0) // stride)
        c = (r + pad - t0) // stride
        out.append((t0, taps, taps - 1 - c, c))
    return out


def phases_supported(kernel_size, strides, in_size, out_size) -> bool:
    """Whether the phase form computes this 'same' transposed convolution (per spatial axis: a
    kernel at least the stride, output exactly ``stride * input``, and no negative padding)."""
    for k, s, n_in, n_out in zip(kernel_size, strides, in_size, out_size, strict=True):
        if n_in is None or n_out is None or s < 1 or k < s or n_out != s * n_in:
            return False
        if any(before < 0 or after < 0 for _, _, before, after in _phase_taps(n_in, k, s)):
            return False
    return True


def conv2d_transpose_phases(x: tf.Tensor, kernel: tf.Tensor, strides) -> tf.Tensor:
    """``tf.nn.conv2d_transpose(x, kernel, (n, sh*h, sw*w, c_out), strides, "SAME")`` for NHWC ``x``
    and a kernel (kh, kw, c_out, c_in), computed as ``sh * sw`` stride-1 convolutions (no gradient of
    its own: use :func:`conv2d_transpose` for training)."""
    sh, sw = strides
    if sh != sw:  # depth_to_space interleaves square blocks
        raise ValueError(f"the phase form needs equal strides, got {strides}")
    kh, kw, c_out, c_in = kernel.shape
    rows = _phase_taps(x.shape[1], kh, sh)
    cols = _phase_taps(x.shape[2], kw, sw)
    # One transpose of the whole kernel to conv2d's (.., c_in, c_out) layout, then each phase's taps
    # t0, t0 + s, ... in reversed (correlation) order as one gather of whole (c_in, c_out) blocks:
    # strided, reversed slicing of the 4-D kernel was ~5% of a DCGAN step on this CPU.
    taps = tf.reshape(tf.transpose(kernel, (0, 1, 3, 2)), (kh * kw, c_in, c_out))
    outs = []
    for t0r, nr, br, ar in rows:
        for t0c, nc, bc, ac in cols:
            index = [(t0r + sh * (nr - 1 - a)) * kw + t0c + sw * (nc - 1 - b) for a in range(nr) for b in range(nc)]
            sub = tf.reshape(tf.gather(taps, index), (nr, nc, c_in, c_out))
            outs.append(tf.nn.conv2d(x, sub, 1, [[0, 0], [br, ar], [bc, ac], [0, 0]]))  # explicit padding
    if sh == 1:
        return outs[0]
    # Channel block r_row * s + r_col holds phase (r_row, r_col): depth_to_space's order.
    return tf.nn.depth_to_space(tf.concat(outs, axis=-1), sh)


def conv2d_transpose(x: tf.Tensor, kernel: tf.Tensor, strides) -> tf.Tensor:
    """'same' transposed convolution (output ``strides * input``): phases forward, ``Conv2D`` input
    gradient, ``Conv2DBackpropFilter`` weight gradient."""
    s = [1, *strides, 1]

    @tf.custom_gradient
    def op(x, kernel):
        def grad(dy):
            dx = tf.nn.conv2d(dy, kernel, s, "SAME")
            dk = tf.raw_ops.Conv2DBackpropFilter(input=dy, filter_sizes=tf.shape(kernel), out_backprop=x,
                                                 strides=s, padding="SAME")
            return dx, dk

        return conv2d_transpose_phases(x, kernel, strides), grad

    return op(x, kernel)


def conv2d(x: tf.Tensor, kernel: tf.Tensor, strides) -> tf.Tensor:
    """'same' strided convolution (``x`` side exactly ``strides *`` output side): ``Conv2D``
    forward, phases input gradient, ``Conv2DBackpropFilter`` weight gradient."""
    s = [1, *strides, 1]

    @tf.custom_gradient
    def op(x, kernel):
        def grad(dy):
            dx = conv2d_transpose_phases(dy, kernel, strides)
            dk = tf.raw_ops.Conv2DBackpropFilter(input=x, filter_sizes=tf.shape(kernel), out_backprop=dy,
                                                 strides=s, padding="SAME")
            return dx, dk

        return tf.nn.conv2d(x, kernel, s, "SAME"), grad

    return op(x, kernel)


def _phase_path(layer, in_size, out_size, transposed_channels: int) -> bool:
    """The phase form is taken for a layer whose ``path`` is ``"phases"``, or ``"auto"`` (the
    default) on a machine without a GPU/TPU and with at least :data:`MIN_PHASE_CHANNELS` channels
    on the transposed side; never for ``"native"``, nor where the shapes do not allow it."""
    path = getattr(layer, "phase_path", "auto")
    if path == "native" or (path == "auto" and _accelerator_visible()):
        return False
    return (layer.padding == "same" and layer.data_format == "channels_last"
            and tuple(layer.dilation_rate) == (1, 1) and layer.strides[0] == layer.strides[1]
            and (path == "phases" or transposed_channels >= MIN_PHASE_CHANNELS)
            and phases_supported(layer.kernel_size, layer.strides, in_size, out_size))


PATHS = ("auto", "phases", "native")


def _check_path(path: str) -> str:
    if path not in PATHS:
        raise ValueError(f"path must be one of {PATHS}, got {path!r}")
    return path


@keras.saving.register_keras_serializable(package="ganhelpers")
class PhaseConv2DTranspose(layers.Conv2DTranspose):
    """``Conv2DTranspose`` whose 'same' strided case runs through :func:`conv2d_transpose`.
    ``path``: ``"auto"`` (default), ``"phases"`` or ``"native"`` (see :func:`_phase_path`)."""

    def __init__(self, *args, path: str = "auto", **kwargs):
        super().__init__(*args, **kwargs)
        self.phase_path = _check_path(path)

    def call(self, inputs):
        h, w = inputs.shape[1], inputs.shape[2]
        sh, sw = self.strides
        out = (None if h is None else sh * h, None if w is None else sw * w)
        if any(self.output_padding or ()) or not _phase_path(self, (h, w), out, self.filters):
            return super().call(inputs)
        kernel = tf.cast(self.kernel, self.compute_dtype)
        outputs = conv2d_transpose(inputs, kernel, self.strides)
        if self.use_bias:
            outputs = outputs + tf.cast(self.bias, self.compute_dtype)
        return self.activation(outputs) if self.activation is not None else outputs


@keras.saving.register_keras_serializable(package="ganhelpers")
class PhaseConv2D(layers.Conv2D):
    """``Conv2D`` whose 'same' strided case takes its input gradient from the phase form.
    ``path``: ``"auto"`` (default), ``"phases"`` or ``"native"`` (see :func:`_phase_path`)."""

    def __init__(self, *args, path: str = "auto", **kwargs):
        super().__init__(*args, **kwargs)
        self.phase_path = _check_path(path)

    def convolution_op(self, inputs, kernel):
        h, w = inputs.shape[1], inputs.shape[2]
        sh, sw = self.strides
        out = (None if h is None else h // sh, None if w is None else w // sw)
        # The input gradient is the transposed convolution onto the input's channels.
        if self.groups != 1 or not _phase_path(self, out, (h, w), inputs.shape[-1]):
            return super().convolution_op(inputs, kernel)
        return conv2d(inputs, tf.cast(kernel, inputs.dtype), self.strides)
