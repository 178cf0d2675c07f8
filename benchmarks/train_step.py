"""Train-step throughput of the DCGAN, the WGAN critic and the PGGAN against this machine's dense
matmul peak, measured in the same run.

For each case (model x batch size x precision [x XLA]) it prints images/s (real images consumed per
second; the fastest of ``--repeats`` timed calls), the FLOPs one image costs, the achieved GFLOP/s
and, last, the ratio to the matmul peak of the same dtype (``_peak.measure_matmul_peak``, the larger
of the readings right before and right after the case: on a shared machine a case and its own
yardstick see the same load) and the speed-up over the float32 step of the same model and batch
size. ``--conv keras phases`` times each case with Keras' convolution layers (the default) and with
the phase form of ``ganhelpers.fastconv`` (``training.conv: phases``) and prints the speed-up.

FLOPs are counted analytically from the layer shapes (multiply-adds x 2 of every Conv2D,
Conv2DTranspose and Dense; BatchNorm, activations and the optimizer are not counted). A trained
layer costs forward + weight gradient + input gradient (3x forward; the first layer of a network
skips the input gradient); D in G's update is frozen: forward + input gradient. DCGAN's step (see
``dcgan.DCGAN``) per real image: D on a real batch (trained), G forward on the fake batch, D on it
(trained), then G and the frozen D on 2 images. The WGAN critic step (``wgan.WGAN`` in its first
100 critic iterations, when no generator update runs): G forward, the critic trained on the real and
the fake batch, clipping. The PGGAN step (``pggan.ProgressiveGAN``, stabilising at --pggan-size) has
custom equalized layers, so its forward FLOPs are read off the traced graph (:func:`graph_flops`:
Conv2D, Conv2DBackpropInput, MatMul); the gradient penalty's double backpropagation is counted as
6 critic forwards (forward, input gradient, and the backward of both), an estimate.

    python benchmarks/train_step.py                       # all models, float32 and mixed_bfloat16
    python benchmarks/train_step.py --models dcgan --batch 64 --precision float32 --jit
    python benchmarks/train_step.py --models dcgan wgan --precision float32 --conv keras phases
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from _peak import bf16_supported, measure_matmul_peak  # noqa: E402

from ganhelpers import pggan, wgan  # noqa: E402
from ganhelpers.dcgan import (
    build_dcgan,  # noqa: E402
    dcgan_config,  # noqa: E402
)
from ganhelpers.precision import cpu_bf16_flags  # noqa: E402

REPEATS = 2  # timed calls per case; the fastest counts (--repeats)


def layer_flops(model: keras.Model) -> list[tuple[str, float]]:
    """Forward FLOPs per image (2 x multiply-adds) of each Conv2D, Conv2DTranspose and Dense layer."""
    out = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2DTranspose):  # one k x k x c_out patch per input pixel
            _, h, w, c_in = layer.input.shape
            k = layer.kernel_size
            out.append((layer.name, 2.0 * h * w * k[0] * k[1] * c_in * layer.filters))
        elif isinstance(layer, keras.layers.Conv2D):  # one k x k x c_in patch per output pixel
            _, h, w, c_out = layer.output.shape
            k = layer.kernel_size
            out.append((layer.name, 2.0 * h * w * k[0] * k[1] * layer.input.shape[-1] * c_out))
        elif isinstance(layer, keras.layers.Dense):
            out.append((layer.name, 2.0 * layer.input.shape[-1] * layer.units))
    return out


def pass_flops(model: keras.Model, trained: bool, input_grad: bool) -> float:
    """FLOPs per image of one pass: forward, + weight gradients if ``trained``, + input gradients
    where needed (every layer but the first, and the first too if ``input_grad``)."""
    flops = layer_flops(model)
    total = sum(f for _, f in flops)
    if trained:
        total += sum(f for _, f in flops)
    total += sum(f for i, (_, f) in enumerate(flops) if i > 0 or input_grad)
    return total


def dcgan_step_flops(generator: keras.Model, discriminator: keras.Model) -> float:
    """FLOPs per real image of ``DCGAN.train_step`` (3 updates; G sees 2 images per real image)."""
    g_fwd = sum(f for _, f in layer_flops(generator))
    d_trained = pass_flops(discriminator, trained=True, input_grad=False)
    g_update = pass_flops(generator, trained=True, input_grad=False) + pass_flops(
        discriminator, trained=False, input_grad=True)
    return d_trained + g_fwd + d_trained + 2 * g_update


def graph_flops(model: keras.Model, input_shape) -> float:
    """Forward FLOPs per image of ``model`` read off its traced graph (batch 1): 2 x multiply-adds of
    every Conv2D, Conv2DBackpropInput (transposed convolution) and (Batch)MatMul op."""
    fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(
        tf.TensorSpec((1, *input_shape), tf.float32))
    total = 0.0
    for op in fn.graph.get_operations():
        if op.type == "Conv2D":  # output pixels x kernel volume x c_out
            out, kernel = op.outputs[0].shape, op.inputs[1].shape
            total += 2.0 * out[1] * out[2] * kernel[0] * kernel[1] * kernel[2] * kernel[3]
        elif op.type == "Conv2DBackpropInput":  # input pixels (out_backprop) x kernel volume x c_out
            grad, kernel = op.inputs[2].shape, op.inputs[1].shape
            total += 2.0 * grad[1] * grad[2] * kernel[0] * kernel[1] * kernel[2] * kernel[3]
        elif op.type in ("MatMul", "BatchMatMulV2", "BatchMatMulV3"):
            a, b = op.inputs[0].shape, op.inputs[1].shape
            ta = op.get_attr("transpose_a") if op.type == "MatMul" else op.get_attr("adj_x")
            m, k = (a[-1], a[-2]) if ta else (a[-2], a[-1])
            tb = op.get_attr("transpose_b") if op.type == "MatMul" else op.get_attr("adj_y")
            total += 2.0 * m * k * (b[-2] if tb else b[-1])
    return total


def wgan_critic_step_flops(generator: keras.Model, critic: keras.Model) -> float:
    """FLOPs per real image of a critic iteration: G forward, the critic trained on real and fake."""
    return sum(f for _, f in layer_flops(generator)) + 2 * pass_flops(critic, trained=True, input_grad=False)


def pggan_step_flops(g_fwd: float, d_fwd: float) -> float:
    """FLOPs per real image of ``ProgressiveGAN.train_step`` from the two forward costs: G forward,
    D trained on real and fake (3 each), the gradient penalty (6), then G trained (3) through the
    frozen D (forward + input gradient: 2)."""
    return g_fwd + 3 * d_fwd + 3 * d_fwd + 6 * d_fwd + 3 * g_fwd + 2 * d_fwd


class _StepClock(keras.callbacks.Callback):
    """Wall time from the first step's start to the last step's end of one ``fit`` call: fit's
    own set-up and tear-down (iterator, callbacks; seen to add 0-3 s per call here) are per run,
    not per step, and stay out of the figure."""

    def on_train_begin(self, logs=None):
        self.start = self.end = None

    def on_train_batch_begin(self, batch, logs=None):
        if self.start is None:
            self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.end = time.perf_counter()


def _time_fit(model, real, steps: int, repeats: int = REPEATS) -> float:
    """Seconds for ``steps`` steps of ``model.fit`` on one batch held in memory: the fastest of
    ``repeats`` timed calls after a warm-up (trace) call of the same length; on a shared
    machine the minimum is the least disturbed measurement."""
    dataset = tf.data.Dataset.from_tensors(real).repeat()
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
    clock, times = _StepClock(), []
    for _ in range(repeats):
        model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[clock])
        times.append(clock.end - clock.start)
    return min(times)


def time_dcgan(batch: int, precision: str, jit: bool, steps: int, preset: str = "full",
               repeats: int = REPEATS, conv: str = "keras") -> tuple[float, float]:
    """(images/s, FLOPs per image) of ``steps`` DCGAN train steps on a 64x64 batch held in memory,
    after one warm-up (trace) call; Keras ``fit`` with ``steps_per_execution=steps``."""
    config = dcgan_config(preset)
    config["data"]["batch_size"] = batch
    config["training"].update(precision=precision, jit_compile=jit, steps_per_execution=steps, conv=conv)
    model = build_dcgan(config)
    size, channels = config["data"]["image_size"], config["data"]["channels"]
    real = tf.random.stateless_uniform((batch, size, size, channels), (1, 2), -1.0, 1.0)
    elapsed = _time_fit(model, real, steps, repeats)
    return batch * steps / elapsed, dcgan_step_flops(model.generator, model.discriminator)


def time_wgan(batch: int, precision: str, jit: bool, steps: int, repeats: int = REPEATS,
              conv: str = "keras") -> tuple[float, float]:
    """(images/s, FLOPs per image) of WGAN critic iterations (the ``full`` preset: 64x64x3, weight
    clipping); warm-up + timed steps stay inside the first generator iteration's 100 critic iterations."""
    if 2 * steps >= 100:
        raise ValueError("--steps must be below 50 for the WGAN case (100 critic iterations come first)")
    config = wgan.wgan_config("full")
    config["data"]["batch_size"] = batch
    config["training"].update(precision=precision, conv=conv)
    model = wgan.build_wgan(config, "clip")
    if jit:
        model.compile(model.d_optimizer, model.g_optimizer, jit_compile=True)
    size, channels = config["data"]["image_size"], config["data"]["channels"]
    real = tf.random.stateless_uniform((batch, size, size, channels), (1, 2), -1.0, 1.0)
    elapsed = _time_fit(model, real, steps, repeats)
    assert int(model.generator_iteration.numpy()) == 0  # only critic iterations were timed
    return batch * steps / elapsed, wgan_critic_step_flops(model.generator, model.critic)


def time_pggan(batch: int, precision: str, jit: bool, steps: int, size: int = 64,
               repeats: int = REPEATS) -> tuple[float, float]:
    """(images/s, FLOPs per image) of PGGAN steps (the ``full`` preset's networks) stabilising at
    ``size`` x ``size``; ``batch`` 0 means the preset's batch at that size."""
    config = pggan.pggan_config("full")
    config["training"]["precision"] = precision
    model = pggan.build_pggan(config)
    level = model.resolutions.index(size)
    model.start_phase(model.phases.index((level, False)))
    if jit:
        model.compile(**model._adam_args, jit_compile=True)
        model.start_phase(model.phases.index((level, False)))
    batch = batch or pggan.batch_size_at(config, size)
    real = tf.random.stateless_uniform((batch, size, size, model.channels), (1, 2), -1.0, 1.0)
    elapsed = _time_fit(model, real, steps, repeats)
    g_fwd = graph_flops(model.generator, model.generator.input.shape[1:])
    d_fwd = graph_flops(model.discriminator, model.discriminator.input.shape[1:])
    return batch * steps / elapsed, pggan_step_flops(g_fwd, d_fwd)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["dcgan", "wgan", "pggan"], choices=["dcgan", "wgan", "pggan"])
    p.add_argument("--batch", type=int, nargs="+", default=[64, 128], help="DCGAN and WGAN batch sizes")
    p.add_argument("--precision", nargs="+", default=["float32", "mixed_bfloat16"],
                   help="float32, mixed_bfloat16, mixed_float16 (GPU) or mixed")
    p.add_argument("--jit", action="store_true", help="also time each case with XLA (jit_compile=True)")
    p.add_argument("--steps", type=int, default=3, help="timed steps per case (after as many warm-up steps)")
    p.add_argument("--preset", default="full", help="DCGAN preset: full (the bird experiment) or paper")
    p.add_argument("--pggan-size", type=int, default=64, help="PGGAN level to time (its preset batch)")
    p.add_argument("--peak-seconds", type=float, default=2.0)
    p.add_argument("--repeats", type=int, default=REPEATS, help="timed calls per case; the fastest counts")
    p.add_argument("--conv", nargs="+", default=["keras"], choices=["keras", "phases"],
                   help="the builders' convolution layers (config training.conv); several compare them")
    args = p.parse_args(argv)

    print(f"TensorFlow {tf.__version__}, devices {[d.name for d in tf.config.list_logical_devices()]}, "
          f"CPU bf16 flags: {cpu_bf16_flags() or 'none'}, intra/inter-op threads "
          f"{tf.config.threading.get_intra_op_parallelism_threads()}/"
          f"{tf.config.threading.get_inter_op_parallelism_threads()} (0 = all cores)")
    peak_dtype = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}
    bf16 = bf16_supported()

    cases = []
    for name in args.models:
        batches = [0] if name == "pggan" else args.batch
        for batch in batches:
            for precision in args.precision:
                for jit in ([False, True] if args.jit else [False]):
                    for conv in args.conv:
                        cases.append((name, batch, precision, jit, conv))

    rows = []
    for name, batch, precision, jit, conv in cases:
        dt = peak_dtype.get(precision, "float32")
        dt = dt if (dt != "bfloat16" or bf16) else "float32"
        peak = measure_matmul_peak(dt, seconds=args.peak_seconds)  # this case's own yardstick
        if name == "dcgan":
            ips, flops = time_dcgan(batch, precision, jit, args.steps, args.preset, args.repeats, conv)
            label = f"dcgan64 {args.preset} batch={batch}"
        elif name == "wgan":
            ips, flops = time_wgan(batch, precision, jit, args.steps, args.repeats, conv)
            label = f"wgan64 critic batch={batch}"
        else:
            ips, flops = time_pggan(batch, precision, jit, args.steps, args.pggan_size, args.repeats)
            label = f"pggan{args.pggan_size} full"
        # The yardstick: the larger of the peak before and after the case (conservative).
        peak = max(peak, measure_matmul_peak(dt, seconds=args.peak_seconds))
        if len(args.conv) > 1:
            label += f" conv={conv}"
        rows.append((name, batch, precision, jit, conv, label, ips, flops, dt, peak))
        print(f"  measured {label} {precision}{' xla' if jit else ''}: {ips:.2f} images/s", flush=True)

    fp32 = {(n, b, j, c): ips for n, b, pr, j, c, _, ips, *_ in rows if pr == "float32"}
    native = {(n, b, pr, j): ips for n, b, pr, j, c, _, ips, *_ in rows if c == "keras"}
    for name, batch, precision, jit, conv, label, ips, flops, dt, peak in rows:
        gflops = ips * flops / 1e9
        ref = fp32.get((name, batch, jit, conv))
        speedup = f", x{ips / ref:.2f} of float32" if ref and precision != "float32" else ""
        ref = native.get((name, batch, precision, jit))
        speedup += f", x{ips / ref:.2f} of conv=keras" if ref and conv != "keras" else ""
        print(f"{label} {precision}{' xla' if jit else ''}: {ips:.2f} images/s, {flops / 1e9:.2f} GFLOP/image, "
              f"{gflops:.1f} GFLOP/s; ratio to {dt} matmul peak {peak:.1f} GFLOP/s: {gflops / peak:.2f}{speedup}")


if __name__ == "__main__":
    main()
