"""The strided convolution products of the 64x64 bird DCGAN, TensorFlow's ops against the phase form
(``ganhelpers.fastconv``), as ratios to this machine's fp32 matmul peak measured in the same run.

For each generator stage (4->8, 8->16, 16->32, 32->64 with 5x5 kernels; the discriminator's strided
convolutions are the same shapes the other way round) it times:

* ``conv2d``: a plain stride-2 ``Conv2D`` of the same FLOPs (D's forward, G's input gradient);
* ``transpose native``: ``tf.nn.conv2d_transpose`` = ``Conv2DBackpropInput`` (G's forward and D's
  input gradient before ``fastconv``);
* ``transpose phases``: :func:`ganhelpers.fastconv.conv2d_transpose_phases`, the same product as
  stride-1 convolutions (G's forward and D's input gradient now, for 16 or more channels);
* ``weight grad``: ``Conv2DBackpropFilter`` (both networks' weight gradients, unchanged).

    python benchmarks/conv_ops.py [--batch 64] [--repeats 5]
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

import tensorflow as tf  # noqa: E402
from _peak import measure_matmul_peak  # noqa: E402

from ganhelpers.fastconv import conv2d_transpose_phases  # noqa: E402

STAGES = [(4, 512, 256), (8, 256, 128), (16, 128, 64), (32, 64, 3)]  # (input side, c_in, c_out) of G


def best_seconds(fn, repeats: int) -> float:
    """Fastest of ``repeats`` calls after a warm-up (trace) call: on a shared machine the minimum
    is the least disturbed measurement."""
    fn().numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn().numpy()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--kernel", type=int, default=5)
    args = p.parse_args(argv)
    b, k = args.batch, args.kernel
    peak = measure_matmul_peak("float32")
    rows = []
    for h, cin, cout in STAGES:
        rng = tf.random.Generator.from_seed(0)
        x = rng.normal((b, h, h, cin))           # G's stage input / D's output gradient
        u = rng.normal((b, 2 * h, 2 * h, cout))  # G's stage output / D's input
        kernel = rng.normal((k, k, cout, cin))
        shape = (b, 2 * h, 2 * h, cout)
        flops = 2.0 * b * h * h * k * k * cin * cout
        cases = {  # default arguments bind this stage's tensors
            "conv2d": lambda u=u, kernel=kernel: tf.reduce_sum(tf.nn.conv2d(u, kernel, 2, "SAME")),
            "transpose native": lambda x=x, kernel=kernel, shape=shape: tf.reduce_sum(
                tf.nn.conv2d_transpose(x, kernel, shape, 2, "SAME")),
            "transpose phases": lambda x=x, kernel=kernel: tf.reduce_sum(conv2d_transpose_phases(x, kernel, (2, 2))),
            "weight grad": lambda u=u, x=x, kernel=kernel: tf.reduce_sum(tf.raw_ops.Conv2DBackpropFilter(
                input=u, filter_sizes=kernel.shape, out_backprop=x, strides=[1, 2, 2, 1], padding="SAME")),
        }
        for name, fn in cases.items():
            seconds = best_seconds(tf.function(fn), args.repeats)
            rows.append((f"{h}->{2 * h} {cin}<->{cout}", name, seconds, flops / seconds / 1e9))
            print(f"  measured {rows[-1][0]} {name}: {seconds * 1e3:.1f} ms", flush=True)
    peak = max(peak, measure_matmul_peak("float32"))  # the larger of before and after: a conservative yardstick
    for stage, name, seconds, gflops in rows:
        print(f"{stage} {name}: {seconds * 1e3:.1f} ms, {gflops:.1f} GFLOP/s; "
              f"ratio to float32 matmul peak {peak:.1f} GFLOP/s: {gflops / peak:.2f}")


if __name__ == "__main__":
    main()
