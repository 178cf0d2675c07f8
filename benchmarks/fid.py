"""FID throughput: Inception feature extraction (images/s and the fraction of this machine's fp32
matmul peak it reaches, both measured in this run) and ``frechet_distance`` at 2048-d, eig vs scipy,
plus the exact low-rank path (``frechet_distance_from_activations``) for M fake samples < 2048 vs the
eig path on the same statistics, timed in the same run.

    python benchmarks/fid.py [--weights none|imagenet|FILE] [--images 32] [--batch 16] [--skip-scipy]
                             [--low-rank 16,1000]

OpenBLAS threads oversubscribe a busy machine: compare ``OPENBLAS_NUM_THREADS=1`` with the default.

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

from ganhelpers.metrics import fid, frechet, inception  # noqa: E402


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
    ex = inception.inception_extractor(weights)
    build = time.perf_counter() - t0
    images = np.random.default_rng(0).integers(0, 256, (num_images, 64, 64, 3), dtype=np.uint8)
    fid.activation_statistics(images[:batch], ex, batch_size=batch)  # trace and warm up
    t0 = time.perf_counter()
    fid.activation_statistics(images, ex, batch_size=batch)
    seconds = time.perf_counter() - t0
    flops = keras_flops_per_image(ex.model) if hasattr(ex, "model") else float("nan")
    return {"name": ex.name, "note": ex.note, "build_s": build, "images_per_s": num_images / seconds,
            "gflop_per_image": flops / 1e9}


def _timed(fn, *args, **kwargs) -> tuple[float, float]:
    t0 = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - t0


def bench_frechet(skip_scipy: bool, low_rank: tuple[int, ...] = ()) -> dict:
    """{method: (FID, seconds)} on two 3000-sample 2048-d statistics, and {("low-rank", M): ((FID,
    seconds), (eig FID, eig seconds))} for M fake samples against the same real statistics."""
    rng = np.random.default_rng(0)
    stats = []
    for scale, shift in ((0.5, 0.0), (0.6, 0.05)):
        x = np.abs(rng.standard_normal((3000, 2048))) * scale + shift
        stats += [x.mean(axis=0), np.cov(x, rowvar=False)]
    out = {}
    for method in ("eig",) + (() if skip_scipy else ("scipy",)):
        out[method] = _timed(frechet.frechet_distance, *stats, method=method)
    for m in low_rank:
        fake = np.abs(rng.standard_normal((m, 2048))) * 0.6 + 0.05
        fast = _timed(frechet.frechet_distance_from_activations, *stats[:2], fake)
        t0 = time.perf_counter()  # the eig path from the same activations, covariance included
        eig = frechet.frechet_distance(*stats[:2], fake.mean(axis=0), np.cov(fake, rowvar=False))
        out[("low-rank", m)] = (fast, (eig, time.perf_counter() - t0))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=os.environ.get("GANHELPERS_FID_WEIGHTS", "none"))
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--skip-scipy", action="store_true", help="skip the scipy sqrtm path (minutes on 2 cores)")
    parser.add_argument("--low-rank", default="16,1000",
                        help="comma-separated fake sample counts M < 2048 for the low-rank path ('' skips it)")
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
    fr = bench_frechet(args.skip_scipy, tuple(int(m) for m in args.low_rank.split(",") if m.strip()))
    print(f"frechet_distance 2048-d, eig path:       {fr['eig'][1]:8.2f} s (FID {fr['eig'][0]:.6f})")
    if "scipy" in fr:
        rel = abs(fr["eig"][0] - fr["scipy"][0]) / fr["scipy"][0]
        print(f"frechet_distance 2048-d, scipy path:     {fr['scipy'][1]:8.2f} s (FID {fr['scipy'][0]:.6f})")
        print(f"  scipy / eig time: {fr['scipy'][1] / fr['eig'][1]:.1f}x; relative difference {rel:.1e}")
    for key in sorted(k for k in fr if isinstance(k, tuple)):
        (value, seconds), (eig, eig_seconds) = fr[key]
        rel = abs(value - eig) / eig
        print(f"frechet 2048-d, M={key[1]:<5d} low-rank path: {seconds:8.2f} s (FID {value:.6f}); eig path "
              f"{eig_seconds:.2f} s: {eig_seconds / seconds:.1f}x faster, relative difference {rel:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
