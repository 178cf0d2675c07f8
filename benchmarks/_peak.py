"""This machine's dense matmul peak with ``tf.matmul`` (GFLOP/s), the yardstick benchmarks divide by.

``measure_matmul_peak(dtype="float32", n=2048, seconds=2.0)`` times square n x n matmuls for about
``seconds`` after a warm-up and returns 2 n^3 * count / time / 1e9. Run alone it prints the fp32
peak and, where the CPU/GPU runs it, the bf16 peak.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

_REPS = 4  # matmuls per traced call, so Python overhead is amortised


def measure_matmul_peak(dtype: str = "float32", n: int = 2048, seconds: float = 2.0) -> float:
    """Dense ``dtype`` matmul throughput in GFLOP/s (2 n^3 flops per n x n product)."""
    rng = tf.random.Generator.from_seed(0)
    a = tf.cast(rng.normal((_REPS, n, n)), dtype)
    b = tf.cast(rng.normal((n, n)), dtype)

    @tf.function
    def step(a, b):
        return tf.add_n([tf.reduce_sum(tf.cast(tf.matmul(a[i], b), tf.float32)) for i in range(_REPS)])

    step(a, b).numpy()  # trace and warm up
    count, start = 0, time.perf_counter()
    while True:
        step(a, b).numpy()
        count += _REPS
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            break
    return 2.0 * n ** 3 * count / elapsed / 1e9


def bf16_supported() -> bool:
    """Whether ``tf.matmul`` runs in bfloat16 on the default device."""
    try:
        x = tf.ones((8, 8), tf.bfloat16)
        return bool(tf.reduce_all(tf.matmul(x, x) == 8.0).numpy())
    except (tf.errors.OpError, TypeError):
        return False


if __name__ == "__main__":
    print(f"fp32 matmul peak: {measure_matmul_peak('float32'):.1f} GFLOP/s (n=2048, tf.matmul)")
    if bf16_supported():
        print(f"bf16 matmul peak: {measure_matmul_peak('bfloat16'):.1f} GFLOP/s (n=2048, tf.matmul)")
    else:
        print("bf16 matmul: not supported on this device")
