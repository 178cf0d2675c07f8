"""DCGAN train-step throughput against this machine's dense matmul peak, measured in the same run.

For each case (batch size x precision [x XLA]) it prints images/s (real images consumed per second),
the FLOPs one image costs, the achieved GFLOP/s and, last, the ratio to the matmul peak of the same
dtype (``_peak.measure_matmul_peak``, measured before and after the cases and averaged) and the
speed-up over the float32 step of the same batch size.

FLOPs are counted analytically from the layer shapes (multiply-adds x 2 of every Conv2D,
Conv2DTranspose and Dense; BatchNorm, activations and the optimizer are not counted). A trained
layer costs forward + weight gradient + input gradient (3x forward; the first layer of a network
skips the input gradient); D in G's update is frozen: forward + input gradient. DCGAN's step (see
``models.DCGAN``) per real image: D on a real batch (trained), G forward on the fake batch, D on it
(trained), then G and the frozen D on 2 images.

    python benchmarks/train_step.py                       # batch 64 and 128, float32 and mixed_bfloat16
    python benchmarks/train_step.py --batch 64 --precision float32 --jit
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

from ganhelpers.configs import dcgan_config  # noqa: E402
from ganhelpers.models import build_dcgan  # noqa: E402
from ganhelpers.precision import cpu_bf16_flags  # noqa: E402


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


def time_dcgan(batch: int, precision: str, jit: bool, steps: int, preset: str = "full") -> tuple[float, float]:
    """(images/s, FLOPs per image) of ``steps`` DCGAN train steps on a 64x64 batch held in memory,
    after one warm-up (trace) step; Keras ``fit`` with ``steps_per_execution=steps``."""
    config = dcgan_config(preset)
    config["data"]["batch_size"] = batch
    config["training"].update(precision=precision, jit_compile=jit, steps_per_execution=steps)
    model = build_dcgan(config)
    size, channels = config["data"]["image_size"], config["data"]["channels"]
    real = tf.random.stateless_uniform((batch, size, size, channels), (1, 2), -1.0, 1.0)
    dataset = tf.data.Dataset.from_tensors(real).repeat()
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)  # trace + warm up
    start = time.perf_counter()
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
    elapsed = time.perf_counter() - start
    return batch * steps / elapsed, dcgan_step_flops(model.generator, model.discriminator)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, nargs="+", default=[64, 128])
    p.add_argument("--precision", nargs="+", default=["float32", "mixed_bfloat16"],
                   help="float32, mixed_bfloat16, mixed_float16 (GPU) or mixed")
    p.add_argument("--jit", action="store_true", help="also time each case with XLA (jit_compile=True)")
    p.add_argument("--steps", type=int, default=3, help="timed steps per case (after one warm-up)")
    p.add_argument("--preset", default="full", help="DCGAN preset: full (the bird experiment) or paper")
    p.add_argument("--peak-seconds", type=float, default=3.0)
    args = p.parse_args(argv)

    print(f"TensorFlow {tf.__version__}, devices {[d.name for d in tf.config.list_logical_devices()]}, "
          f"CPU bf16 flags: {cpu_bf16_flags() or 'none'}, intra/inter-op threads "
          f"{tf.config.threading.get_intra_op_parallelism_threads()}/"
          f"{tf.config.threading.get_inter_op_parallelism_threads()} (0 = all cores)")
    peak_dtype = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}
    wanted = {peak_dtype.get(pr, "float32") for pr in args.precision} | {"float32"}
    if not bf16_supported():
        wanted.discard("bfloat16")
    before = {dt: measure_matmul_peak(dt, seconds=args.peak_seconds) for dt in sorted(wanted)}

    rows = []
    for batch in args.batch:
        for precision in args.precision:
            for jit in ([False, True] if args.jit else [False]):
                ips, flops = time_dcgan(batch, precision, jit, args.steps, args.preset)
                rows.append((batch, precision, jit, ips, flops))
                print(f"  measured dcgan64 batch={batch} {precision}{' xla' if jit else ''}: {ips:.2f} images/s",
                      flush=True)

    after = {dt: measure_matmul_peak(dt, seconds=args.peak_seconds) for dt in sorted(wanted)}
    peak = {dt: (before[dt] + after[dt]) / 2 for dt in wanted}
    print("matmul peak (n=2048, before/after the cases): " + ", ".join(
        f"{dt} {before[dt]:.1f}/{after[dt]:.1f} GFLOP/s" for dt in sorted(wanted)))
    fp32 = {(b, j): ips for b, pr, j, ips, _ in rows if pr == "float32"}
    for batch, precision, jit, ips, flops in rows:
        dt = peak_dtype.get(precision, "float32")
        dt = dt if dt in peak else "float32"
        gflops = ips * flops / 1e9
        speedup = f", x{ips / fp32[(batch, jit)]:.2f} of float32" if (batch, jit) in fp32 else ""
        print(f"dcgan64 {args.preset} batch={batch} {precision}{' xla' if jit else ''}: {ips:.2f} images/s, "
              f"{flops / 1e9:.2f} GFLOP/image, {gflops:.1f} GFLOP/s; ratio to {dt} matmul peak "
              f"{peak[dt]:.1f} GFLOP/s: {gflops / peak[dt]:.2f}{speedup}")


if __name__ == "__main__":
    main()
