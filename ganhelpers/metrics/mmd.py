"""Kernel Inception Distance (Binkowski et al. 2018, "Demystifying MMD GANs", sec. 4): the unbiased
squared MMD between two feature sets with the cubic polynomial kernel. Lower is better, 0 = same
distribution; unbiased at any sample count, so small runs can be compared."""

from __future__ import annotations

import numpy as np

from .checks import feature_pair


def polynomial_kernel(a, b) -> np.ndarray:
    """k(x, y) = (x . y / d + 1)^3 for every row pair of ``a`` (m, d) and ``b`` (n, d): (m, n)."""
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def _mmd2_unbiased(kxx: np.ndarray, kyy: np.ndarray, kxy: np.ndarray) -> float:
    """The unbiased MMD^2 estimate from the three kernel matrices (Gretton et al. 2012, eq. 3)."""
    m, n = len(kxx), len(kyy)
    xx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    yy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(xx + yy - 2.0 * kxy.mean())


def kid(real_features, fake_features, num_subsets: int = 100, subset_size: int = 1000, seed: int = 0,
        dtype=np.float64) -> tuple[float, float]:
    """Kernel Inception Distance (Binkowski et al. 2018, "Demystifying MMD GANs", sec. 4): the
    unbiased estimate of the squared MMD between real and fake features with the cubic polynomial
    kernel k(x, y) = (x . y / d + 1)^3, averaged over ``num_subsets`` random subsets of
    ``subset_size`` rows of each side (a side with fewer rows is used whole; seeded; the paper's
    code uses 100 subsets of 1000).

    Returns (mean, standard deviation over the subsets). Unlike FID its expectation does not depend
    on the sample count, so it may be compared across runs with few samples; 0 means the same
    distribution and values may come out slightly negative. With both sides no larger than
    ``subset_size`` every subset is the whole set: one evaluation, std 0 (pass a smaller
    ``subset_size`` to see the spread). Computed in ``dtype`` (float64 by default: the result is a
    small difference of large kernel means). Needs at least 2 samples per side.

    The estimator (Gretton et al. 2012, eq. 3) for m real rows x and n fake rows y::

        sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (n (n - 1))
            - 2 sum_{i, j} k(x_i, y_j) / (m n)
    """
    real, fake = feature_pair(real_features, fake_features, "KID", 2)
    real, fake = real.astype(dtype, copy=False), fake.astype(dtype, copy=False)
    if subset_size < 2:
        raise ValueError(f"KID needs subset_size >= 2, got {subset_size}")
    mr, mf = min(subset_size, len(real)), min(subset_size, len(fake))
    if mr == len(real) and mf == len(fake):
        return _mmd2_unbiased(polynomial_kernel(real, real), polynomial_kernel(fake, fake),
                              polynomial_kernel(real, fake)), 0.0
    rng = np.random.default_rng(seed)
    # Small sets: one kernel matrix per pair of sides, then subsets index into it (no repeated products).
    pairs = len(real) ** 2 + len(fake) ** 2 + len(real) * len(fake)
    whole = pairs <= min(3 * 4096 ** 2, num_subsets * (mr * mr + mf * mf + mr * mf))
    if whole:
        krr, kff, krf = polynomial_kernel(real, real), polynomial_kernel(fake, fake), polynomial_kernel(real, fake)
    values = []
    for _ in range(num_subsets):
        i = rng.choice(len(real), mr, replace=False)
        j = rng.choice(len(fake), mf, replace=False)
        if whole:
            values.append(_mmd2_unbiased(krr[np.ix_(i, i)], kff[np.ix_(j, j)], krf[np.ix_(i, j)]))
        else:
            x, y = real[i], fake[j]
            values.append(_mmd2_unbiased(polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)))
    return float(np.mean(values)), float(np.std(values))
