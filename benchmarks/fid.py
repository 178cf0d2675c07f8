"""FID throughput: Inception feature extraction (images/s and the fraction of this machine's fp32
matmul peak it reaches, both measured in this run) and ``frechet_distance`` at 2048-d, eig vs scipy.

    python benchmarks/fid.py [--weights none|imagenet|FILE] [--images 32] [--batch 16] [--skip-scipy]

The weights do not change the speed; ``none`` (random) runs offline.
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

import numpy as np  # noqa: E402
from _peak import measure_matmul_peak  # noqa: E402

from ganhelpers import fid  # noqa: E402


def keras_flops_per_image(model) -> float:
    """2 x multiply-adds of every Conv2D and Dense layer of a Keras model (BatchNorm, pooling and
    activations are left out: under 1% of InceptionV3's work)."""
    import keras

    total = 0.0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, h, w, _ = layer.output.shape
            total += 2.0 * h * w * float(np.prod(layer.kernel.shape))
        elif isinstance(layer, keras.layers.Dense):
            total += 2.0 * float(np.prod(layer.kernel.shape))
    return total


def bench_extractor(weights, num_images: int, batch: int) -> dict:
    t0 = time.perf_counter()
    ex = fid.inception_extractor(weights)
    build = time.perf_counter() - t0
    images = np.random.default_rng(0).integers(0, 256, (num_images, 64, 64, 3), dtype=np.uint8)
    fid.activation_statistics(images[:batch], ex, batch_size=batch)  # trace and warm up
    t0 = time.perf_counter()
    fid.activation_statistics(images, ex, batch_size=batch)
    seconds = time.perf_counter() - t0
    flops = keras_flops_per_image(ex.model) if hasattr(ex, "model") else float("nan")
    return {"name": ex.name, "note": ex.note, "build_s": build, "images_per_s": num_images / seconds,
            "gflop_per_image": flops / 1e9}


def bench_frechet(skip_scipy: bool) -> dict:
    rng = np.random.default_rng(0)
    stats = []
    for scale, shift in ((0.5, 0.0), (0.6, 0.05)):
        x = np.abs(rng.standard_normal((3000, 2048))) * scale + shift
        stats += [x.mean(axis=0), np.cov(x, rowvar=False)]
    out = {}
    for method in ("eig",) + (() if skip_scipy else ("scipy",)):
        t0 = time.perf_counter()
        out[method] = (fid.frechet_distance(*stats, method=method), time.perf_counter() - t0)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=os.environ.get("GANHELPERS_FID_WEIGHTS", "none"))
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--skip-scipy", action="store_true", help="skip the scipy sqrtm path (minutes on 2 cores)")
    args = parser.parse_args(argv)

    # The peak is measured before and after the extraction and the larger one is used: on a shared
    # machine the CPU share drifts, and a peak taken in a busy moment would flatter the ratio.
    peaks = [measure_matmul_peak("float32")]
    ext = bench_extractor(args.weights, args.images, args.batch)
    peaks.append(measure_matmul_peak("float32"))
    peak = max(peaks)
    achieved = ext["images_per_s"] * ext["gflop_per_image"]
    print(f"matmul peak (fp32, tf.matmul 2048^2):   {peak:8.1f} GFLOP/s (before {peaks[0]:.1f}, after {peaks[1]:.1f})")
    print(f"extractor {ext['name']} {ext['note']}".rstrip())
    print(f"  build:                                 {ext['build_s']:8.1f} s")
    print(f"  features at 299x299, batch {args.batch:<3d}:       {ext['images_per_s']:8.2f} images/s")
    print(f"  work per image (conv + dense):         {ext['gflop_per_image']:8.2f} GFLOP")
    print(f"  achieved:                              {achieved:8.1f} GFLOP/s = {achieved / peak:.1%} of matmul peak")
    fr = bench_frechet(args.skip_scipy)
    print(f"frechet_distance 2048-d, eig path:       {fr['eig'][1]:8.2f} s (FID {fr['eig'][0]:.6f})")
    if "scipy" in fr:
        rel = abs(fr["eig"][0] - fr["scipy"][0]) / fr["scipy"][0]
        print(f"frechet_distance 2048-d, scipy path:     {fr['scipy'][1]:8.2f} s (FID {fr['scipy'][0]:.6f})")
        print(f"  scipy / eig time: {fr['scipy'][1] / fr['eig'][1]:.1f}x; relative difference {rel:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
