"""Time and memory of every metric of ganhelpers.metrics, and the k-NN distance blocks' GFLOP/s as a
ratio of this machine's fp32 matmul peak (``_peak.measure_matmul_peak``, measured in the same run).

Feature metrics run on N x D random features (ReLU of Gaussians, like pool features; the fake set
shifted) at D = 2048 (Inception pool_3) and D = 4096 (the digit features' width); SWD and MS-SSIM
on N random images at 32x32x1 (the digits' shape) and 64x64x3. Each case runs in its own process,
so its memory figures are its own: ``peak RSS rise`` is the process's peak resident size during the
call (reset through /proc/self/clear_refs just before) minus its size before the call, TensorFlow's
buffers included; ``numpy peak`` the largest live numpy/Python allocation seen by ``tracemalloc``.
The k-NN cases (``dist``: the blocked distance products of one set alone; ``knn``: its k-NN radii,
products plus selection; ``pr``: all of precision/recall/density/coverage, three N x N products)
report GFLOP/s (2 N^2 D per product) against the fp32 matmul peak measured in the same process,
alternating with the case (the best of 1 + ``--repeats`` timings of each: the machine may be shared).

    python benchmarks/metrics.py                      # N = 10,000, every case
    python benchmarks/metrics.py --n 2000 --cases knn pr
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ganhelpers.precision import speed_flags  # noqa: E402  (TensorFlow-free: flags only)

CASES = ("dist", "knn", "pr", "kid", "fid", "swd", "msssim")
FEATURE_CASES = ("dist", "knn", "pr", "kid", "fid")


def _features(n: int, dims: int, seed: int, shift: float = 0.0):
    import numpy as np

    rng = np.random.default_rng(seed)
    return np.maximum(rng.standard_normal((n, dims), dtype=np.float32) + shift, 0.0)


def _images(n: int, shape, seed: int):
    import numpy as np

    return np.random.default_rng(seed).uniform(-1, 1, (n, *shape)).astype(np.float32)


def _status_mb(field: str) -> float | None:
    """VmRSS / VmHWM (peak) of this process from /proc, in MB (None where /proc is missing)."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset this process's peak resident size (Linux: write 5 to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rise_mb(before: float | None, reset: bool) -> float:
    if reset and before is not None:
        return max(0.0, _status_mb("VmHWM") - before)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # whole-process peak (kB on Linux)


def run_case(case: str, n: int, dims: int | None, shape, repeats: int = 2) -> dict:
    """One case in this process: {"seconds", "flops" (matmul flops, k-NN cases), "peak_rss_mb", "numpy_peak_mb"}."""
    import numpy as np

    from ganhelpers import metrics

    if case in FEATURE_CASES:
        real, fake = _features(n, dims, 0), _features(n, dims, 1, shift=0.1)
    else:
        real, fake = _images(n, shape, 0), _images(n, shape, 1)
    flops = None
    if case == "dist":  # the blocked distance products alone (one set against itself), no selection
        x = real - real.mean(axis=0)
        call = lambda: sum(float(d2[0, 0]) for _, _, d2 in metrics.squared_distance_blocks(x, x))  # noqa: E731
        flops = 2.0 * n * n * dims
    elif case == "knn":  # the k-NN radii of one set: N x N distances as blocked products
        x = real - real.mean(axis=0)
        call = lambda: metrics.knn_radii(x, 3)  # noqa: E731
        flops = 2.0 * n * n * dims
    elif case == "pr":  # the radii of both sets and the cross distances: three N x N blocked products
        call = lambda: metrics.precision_recall(real, fake, k=3)  # noqa: E731
        flops = 3 * 2.0 * n * n * dims
    elif case == "kid":  # 100 subsets of 1000, float64
        call = lambda: metrics.kid(real, fake)  # noqa: E731
    elif case == "fid":
        call = lambda: metrics.compute_metrics(["fid"], real, fake)  # noqa: E731
    elif case == "swd":
        call = lambda: metrics.sliced_wasserstein(real, fake)  # noqa: E731
    elif case == "msssim":  # the diversity of one set over 10,000 random pairs
        call = lambda: metrics.ms_ssim(fake, num_pairs=10_000)  # noqa: E731
    else:
        raise ValueError(case)
    if case == "msssim":
        metrics.ms_ssim(fake[:4], num_pairs=4)  # trace TensorFlow's graph outside the clock
    reset = _reset_peak_rss()
    before = _status_mb("VmRSS")
    tracemalloc.start()
    start = time.perf_counter()
    value = call()
    seconds = time.perf_counter() - start
    numpy_peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    rise = _peak_rise_mb(before, reset)
    peaks = []
    if flops:  # a shared machine: alternate the yardstick and the case, keep the best of each
        from _peak import measure_matmul_peak

        for _ in range(repeats):
            peaks.append(measure_matmul_peak("float32"))
            start = time.perf_counter()
            call()
            seconds = min(seconds, time.perf_counter() - start)
        peaks.append(measure_matmul_peak("float32"))
    if isinstance(value, dict):
        summary = {k: round(v, 6) for k, v in value.items() if k in ("precision", "recall", "mean", "fid")}
    elif isinstance(value, np.ndarray):
        summary = f"mean k-NN squared radius {value.mean():.4g}"
    else:
        summary = np.round(np.asarray(value, np.float64), 6).tolist()
    return {"seconds": seconds, "flops": flops, "peak_rss_mb": rise, "rss_reset": reset,
            "numpy_peak_mb": numpy_peak, "matmul_peak": max(peaks) if peaks else None, "value": summary}


def _child(case: str, n: int, dims: int | None, shape, repeats: int) -> dict:
    cmd = [sys.executable, __file__, "--child", case, "--n", str(n), "--repeats", str(repeats)]
    cmd += ["--dims", str(dims)] if dims else ["--shape", *map(str, shape)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=10_000, help="samples per side (default 10,000)")
    p.add_argument("--dims", type=int, nargs="+", default=[2048, 4096], help="feature widths")
    p.add_argument("--shapes", nargs="+", default=["32x32x1", "64x64x3"], help="image shapes for SWD/MS-SSIM")
    p.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    p.add_argument("--repeats", type=int, default=2, help="extra timed calls of the k-NN cases, alternating with "
                   "the peak measurement (the best of each is kept; default 2)")
    p.add_argument("--child", choices=CASES, help=argparse.SUPPRESS)
    p.add_argument("--shape", type=int, nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        dims = args.dims[0] if args.child in FEATURE_CASES else None
        print(json.dumps(run_case(args.child, args.n, dims, args.shape, args.repeats)))
        return 0

    from _peak import measure_matmul_peak

    print(f"CPU: {os.cpu_count()} logical cores; flags: {speed_flags()}")
    peak_before = measure_matmul_peak("float32")
    rows = []
    for case in args.cases:
        if case in FEATURE_CASES:
            settings = [(d, None, f"{args.n:,} x {d:,} features") for d in args.dims]
        else:
            settings = [(None, tuple(int(v) for v in s.split("x")), f"{args.n:,} images {s}") for s in args.shapes]
        for dims, shape, label in settings:
            r = _child(case, args.n, dims, shape, args.repeats)
            rows.append((case, label, r))
            print(f"  {case:7s} {label:30s} {r['seconds']:8.2f} s  peak RSS +{r['peak_rss_mb']:7.0f} MB  "
                  f"numpy peak {r['numpy_peak_mb']:7.0f} MB  value {r['value']}", flush=True)
    peak = max(peak_before, measure_matmul_peak("float32"))
    print(f"\nfp32 matmul peak: {peak:.1f} GFLOP/s at the start and end of the run (tf.matmul 2048^3, the "
          f"larger of {peak_before:.1f} and the end); k-NN cases are divided by the peak measured right "
          "around them in their own process\n")
    print("| metric | input | seconds | peak RSS rise (MB) | numpy peak (MB) | GFLOP/s | fp32 peak there | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for case, label, r in rows:
        rate = r["flops"] / r["seconds"] / 1e9 if r["flops"] else None
        there = r["matmul_peak"]
        cells = ["", "", ""] if rate is None else [f"{rate:.1f}", f"{there:.1f}", f"{rate / there:.2f}"]
        print(f"| {case} | {label} | {r['seconds']:.2f} | {r['peak_rss_mb']:.0f} | {r['numpy_peak_mb']:.0f} | "
              + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
