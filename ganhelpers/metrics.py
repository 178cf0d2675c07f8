"""Evaluation beyond FID: KID, precision/recall (+ density/coverage), SWD and MS-SSIM.

FID (:mod:`ganhelpers.fid`) is biased upwards below ~2,048 samples and folds quality and diversity
into one number. The metrics here answer narrower questions, each after its paper:

- ``kid``: do real and generated features come from one distribution? Lower is better, 0 = same.
  Unbiased at any sample count, so small runs can be compared (Binkowski et al. 2018).
- ``precision``: what share of generated samples fall on the real data's manifold (quality)?
- ``recall``: what share of real samples fall on the generator's manifold (coverage)? Both higher is
  better (Kynkaanniemi et al. 2019).
- ``density``: like precision, counting how many real neighbourhoods hold each sample (about 1 when
  the sets match); ``coverage``: share of real neighbourhoods holding a generated sample (Naeem et
  al. 2020). Both higher is better.
- ``swd``: do local image patches match, scale by scale (pixels, no network)? Lower is better
  (Karras et al. 2018).
- ``msssim``: how alike two generated images are: near 1 is mode collapse, lower is more diverse;
  compare with the real data's value (Odena et al. 2017; Karras et al. 2018).

The feature metrics are plain functions over (N, D) feature arrays from any network of
:mod:`ganhelpers.features`; SWD and MS-SSIM take images (uint8 or float in [-1, 1], NHWC, one size).
Bad input (too few samples, NaN features, mixed image sizes) raises a ``ValueError`` that names the
metric and what it needs.

:class:`MetricsMonitor` computes a list of them during training; ``python -m ganhelpers eval`` (see
:func:`add_eval_parser`) computes them between two folders, ``.npz`` files or run folders.
"""

from __future__ import annotations

import io
import logging
import math
import zipfile
import zlib
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from . import summaries

log = logging.getLogger(__name__)

#: every metric name :func:`compute_metrics` and :class:`MetricsMonitor` understand
METRICS = ("fid", "kid", "precision", "recall", "density", "coverage", "swd", "msssim")
FEATURE_METRICS = ("fid", "kid", "precision", "recall", "density", "coverage")
IMAGE_METRICS = ("swd", "msssim")
#: the four numbers of one k-NN pass (:func:`precision_recall`)
PR_METRICS = ("precision", "recall", "density", "coverage")
#: MS-SSIM's per-scale exponents (Wang et al. 2003, sec. 3, calibrated on human ratings), finest first
WANG_POWER_FACTORS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
SWD_MIN_SIZE = 16  # the PGGAN pyramid's coarsest level
#: which way is better, for ranking runs by any metric (MS-SSIM: lower = more diverse)
LOWER_IS_BETTER = {"fid": True, "kid": True, "precision": False, "recall": False, "density": False,
                   "coverage": False, "swd": True, "msssim": True}


# -- input checks -------------------------------------------------------------------------------

def _feature_array(x, metric: str, side: str, minimum: int) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 2:
        raise ValueError(f"{metric}: {side} features must be a 2-d array (N, D), got shape {a.shape}")
    if len(a) < minimum:
        raise ValueError(f"{metric} needs at least {minimum} {side} samples, got {len(a)}")
    if not np.isfinite(a).all():
        raise ValueError(f"{metric}: {side} features contain NaN or inf (the generator or the feature network "
                         "diverged); check the images")
    return a


def _feature_pair(real, fake, metric: str, minimum: int) -> tuple[np.ndarray, np.ndarray]:
    real = _feature_array(real, metric, "real", minimum)
    fake = _feature_array(fake, metric, "fake", minimum)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"{metric}: real and fake features differ in width ({real.shape[1]} vs {fake.shape[1]}): "
                         "use the same network for both")
    return real, fake


def _image_array(images, metric: str, side: str, minimum: int, min_size: int) -> np.ndarray:
    """float32 [-1, 1] (N, H, W, C) from uint8/float arrays or a list of same-sized images."""
    if isinstance(images, (list, tuple)):
        shapes = sorted({tuple(np.shape(im)) for im in images})
        if len(shapes) > 1:
            raise ValueError(f"{metric}: {side} images of mixed sizes {shapes[:4]}: resize them to one size "
                             f"(at least {min_size}x{min_size}) first; the metric compares pixels at one resolution")
    x = np.asarray(images)
    if x.ndim != 4:
        raise ValueError(f"{metric}: {side} images must be (N, H, W, C), got shape {x.shape}")
    if len(x) < minimum:
        raise ValueError(f"{metric} needs at least {minimum} {side} images, got {len(x)}")
    if min(x.shape[1:3]) < min_size:
        raise ValueError(f"{metric} needs images of at least {min_size}x{min_size}, got {x.shape[1]}x{x.shape[2]}")
    x = x.astype(np.float32) / 127.5 - 1.0 if x.dtype == np.uint8 else x.astype(np.float32, copy=False)
    if not np.isfinite(x).all():
        raise ValueError(f"{metric}: {side} images contain NaN or inf")
    return x


# -- KID ----------------------------------------------------------------------------------------

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
    real, fake = _feature_pair(real_features, fake_features, "KID", 2)
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


# -- k-NN manifolds: precision, recall, density, coverage ---------------------------------------

def _block_rows(n_columns: int, itemsize: int = 4, budget_bytes: int = 64 << 20) -> int:
    """Rows per distance block so one block (rows x n_columns) stays within ``budget_bytes``."""
    return int(max(64, min(4096, budget_bytes // max(1, n_columns * itemsize))))


def _partial_distance_blocks(a, b, block_rows: int | None = None):
    """Yield (start, stop, block) with block[i, j] = ||b[j]||^2 - 2 a[start + i] . b[j]: the squared
    distance without the row's own ||a_i||^2 (a constant per row, added by the caller where needed).
    One matrix product (the -2 folded into b once) and one pass over each block."""
    b_sq = np.einsum("ij,ij->i", b, b)
    b_m2 = np.ascontiguousarray(-2.0 * b.T, dtype=b.dtype)  # (D, N)
    rows = block_rows or _block_rows(len(b), a.dtype.itemsize)
    for start in range(0, len(a), rows):
        block = a[start:start + rows] @ b_m2
        block += b_sq[None, :]
        yield start, min(start + rows, len(a)), block


def squared_distance_blocks(a, b, block_rows: int | None = None):
    """Yield (start, stop, block) with block[i, j] = ||a[start + i] - b[j]||^2, clamped at 0.

    Each block is one matrix product, ||a||^2 + ||b||^2 - 2 a b^T, in the arrays' dtype: at most
    ``block_rows`` x len(b) numbers live at a time, never an N x N x D tensor. Centre both sets on a
    common mean first (:func:`precision_recall` does) so float32 loses no digits to the norms.
    """
    a_sq = np.einsum("ij,ij->i", a, a)
    for start, stop, d2 in _partial_distance_blocks(a, b, block_rows):
        d2 += a_sq[start:stop, None]
        np.maximum(d2, 0.0, out=d2)
        yield start, stop, d2


def _kth_smallest(block: np.ndarray, k: int) -> np.ndarray:
    """The k-th smallest value of each row of ``block`` (B, N), overwriting ``block``.

    For small k, k - 1 vectorised passes each mask one row minimum (ties count separately, as in a
    sort), then one more takes the minimum: 30-100x faster here than ``np.partition`` (~20 ns per
    element), which would cost more than the matrix product that made the block."""
    if k > 16:
        return np.partition(block, k - 1, axis=1)[:, k - 1]
    rows = np.arange(len(block))
    for _ in range(k - 1):
        block[rows, block.argmin(axis=1)] = np.inf
    return block.min(axis=1)


def _round_off_bound(dtype, dims: int) -> float:
    """Bound on the round-off of a blocked squared distance ||a||^2 + ||b||^2 - 2 a.b over ``dims``
    components in ``dtype``, relative to ||a||^2 + ||b||^2: the products' worst case ((dims + 2)
    eps, whatever the summation order) plus the centring's rounding, with a margin of 2."""
    return 8.0 * (dims + 4) * float(np.finfo(dtype).eps)


def exact_squared_distances(a, b, i, j, budget_bytes: int = 32 << 20) -> np.ndarray:
    """The canonical squared distance of each pair (a[i[p]], b[j[p]]) (P,) float64: the float64
    differences, squared, summed in one fixed pairwise order (halves added elementwise until one
    column is left). One value per pair of vectors, whichever set, row or block they come from,
    and symmetric (a copy of a point ties exactly with it); exact for integer-valued features
    (squared distances below 2^53)."""
    a, b = np.asarray(a), np.asarray(b)
    i, j = np.asarray(i, np.intp), np.asarray(j, np.intp)
    dims = a.shape[1]
    width = 1 << max(0, dims - 1).bit_length()  # zero-padded to a power of two: adding 0 is exact
    out = np.empty(len(i), np.float64)
    chunk = int(max(1, budget_bytes // (8 * width)))
    for s in range(0, len(i), chunk):
        d = np.zeros((len(i[s:s + chunk]), width), np.float64)
        d[:, :dims] = a[i[s:s + chunk]]
        d[:, :dims] -= b[j[s:s + chunk]]
        d *= d
        while d.shape[1] > 1:  # elementwise adds only: no BLAS or SIMD regrouping, the same order for every pair
            half = d.shape[1] // 2
            d = d[:, :half] + d[:, half:]
        out[s:s + chunk] = d[:, 0]
    return out


def _exact_kth(approx: np.ndarray, err: np.ndarray, k: int, points: np.ndarray, start: int) -> np.ndarray:
    """The exact k-th smallest squared distance of each row of a block (rows ``start`` ... of the
    set ``points`` against all of it) known to within ``err`` (``approx``, +inf where excluded): only
    the entries that could be among the k nearest are computed by :func:`exact_squared_distances`."""
    upper = _kth_smallest(approx + err, k)  # the exact k-th smallest is at most this
    rows, cols = np.nonzero(approx - err <= upper[:, None])  # at least k per row, rows ascending
    exact = exact_squared_distances(points, points, start + rows, cols)
    order = np.lexsort((exact, rows))  # by row, then by distance
    return exact[order][np.searchsorted(rows, np.arange(len(approx))) + k - 1]


def _knn_radii(fast: np.ndarray, original: np.ndarray, k: int, block_rows: int | None) -> np.ndarray:
    """Exact squared k-NN radii of ``original`` (the points as given) from
    blocked products over ``fast`` (the same points, centred and in the working dtype), refined
    where round-off could change the k-th."""
    sq = np.einsum("ij,ij->i", fast, fast)
    tol = _round_off_bound(fast.dtype, fast.shape[1])
    radii = np.empty(len(fast), np.float64)
    for start, stop, g in _partial_distance_blocks(fast, fast, block_rows):
        g += sq[start:stop, None]
        rows = np.arange(stop - start)
        g[rows, start + rows] = np.inf  # not its own neighbour
        err = tol * (sq[start:stop, None] + sq[None, :])
        radii[start:stop] = _exact_kth(g, err, k, original, start)
    return radii


def knn_radii(features, k: int = 3, block_rows: int | None = None) -> np.ndarray:
    """Squared distance from each row of ``features`` to its k-th nearest *other* row (N,) float64,
    exactly as :func:`exact_squared_distances` gives it: blocked products
    (:func:`squared_distance_blocks`) find the neighbours, and the few distances that round-off
    could place either side of the k-th are computed exactly."""
    x = np.asarray(features)
    if len(x) <= k:
        raise ValueError(f"k-NN radii need more than k={k} samples, got {len(x)}")
    fast = x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)
    return _knn_radii(fast, x, k, block_rows)


def precision_recall(real_features, fake_features, k: int = 3, block_rows: int | None = None,
                     dtype=np.float32) -> dict:
    """Improved precision and recall (Kynkaanniemi et al. 2019, "Improved Precision and Recall Metric
    for Assessing Generative Models", sec. 2, eq. 1-2) and density and coverage (Naeem et al. 2020,
    "Reliable Fidelity and Diversity Metrics for Generative Models", sec. 3.2, eq. 6-7).

    Each sample's k-NN ball (radius: distance to its k-th nearest neighbour in its own set) builds a
    manifold of the real and one of the fake set. precision: share of fake samples inside some real
    ball (quality); recall: share of real samples inside some fake ball (coverage of the data);
    density: real balls holding each fake sample, averaged, divided by k (about 1 when the sets match,
    above 1 where fakes crowd dense real regions); coverage: share of real balls holding at least one
    fake sample. k = 3 as Kynkaanniemi et al.; Naeem et al. recommend k = 5 for density/coverage.

    Balls are closed: a point at exactly the radius is inside (as Kynkaanniemi et al. and
    StyleGAN2-ADA's code; the ``prdc`` package uses open balls), and ties are decided exactly, not by
    round-off. Distances are blocked matrix products (:func:`squared_distance_blocks`) on features
    centred on the real mean, in ``dtype``, with a bound on their round-off; every radius and every
    comparison that bound leaves open is redone on :func:`exact_squared_distances` of the features as
    given (one canonical float64 value per pair, exact for integer-valued features). So a copy of the
    real set gives precision = recall = coverage = 1 and, without tied distances, density exactly
    (k + 1) / k (each real point lies in its own ball and in those of the k points it is nearest to).

    Returns a dict with the four numbers, ``k``, ``num_real``, ``num_fake``. Needs at least k + 1
    samples per side.
    """
    if k < 1:
        raise ValueError(f"precision/recall: k must be >= 1, got {k}")
    real, fake = _feature_pair(real_features, fake_features, "precision/recall", k + 1)
    centre = real.mean(axis=0, dtype=np.float64)
    real_c, fake_c = (real - centre).astype(dtype), (fake - centre).astype(dtype)
    real_r2, fake_r2 = _knn_radii(real_c, real, k, block_rows), _knn_radii(fake_c, fake, k, block_rows)
    real_balls = np.zeros(len(fake), np.int64)  # density: how many real balls hold fake j (> 0: precision)
    covered = np.zeros(len(real), bool)      # coverage: real ball i holds some fake
    in_fake = np.zeros(len(real), bool)      # recall: real i inside some fake ball
    fake_sq, real_sq = np.einsum("ij,ij->i", fake_c, fake_c), np.einsum("ij,ij->i", real_c, real_c)
    tol = _round_off_bound(dtype, real.shape[1])
    for start, stop, d2 in _partial_distance_blocks(fake_c, real_c, block_rows):
        d2 += fake_sq[start:stop, None]  # squared distances, each within err of the exact one
        err = tol * (fake_sq[start:stop, None] + real_sq[None, :])
        low, high = d2 - err, d2 + err
        fake_radius = fake_r2[start:stop, None]
        inside_real, inside_fake = high <= real_r2[None, :], high <= fake_radius  # surely inside
        unsure = ((low <= real_r2[None, :]) & ~inside_real) | ((low <= fake_radius) & ~inside_fake)
        rows, cols = np.nonzero(unsure)
        if len(rows):
            exact = exact_squared_distances(fake, real, start + rows, cols)
            inside_real[rows, cols] = exact <= real_r2[cols]
            inside_fake[rows, cols] = exact <= fake_r2[start + rows]
        real_balls[start:stop] = np.count_nonzero(inside_real, axis=1)
        covered |= inside_real.any(axis=0)
        in_fake |= inside_fake.any(axis=0)
    in_real = real_balls > 0
    return {"precision": float(in_real.mean()), "recall": float(in_fake.mean()),
            "density": float(real_balls.sum() / (k * len(fake))), "coverage": float(covered.mean()),
            "k": k, "num_real": len(real), "num_fake": len(fake)}


# -- sliced Wasserstein distance on Laplacian-pyramid patches ------------------------------------

_BINOMIAL = np.array([1.0, 4.0, 6.0, 4.0, 1.0], np.float32) / 16.0


def _blur(x: np.ndarray) -> np.ndarray:
    """Separable 5-tap binomial filter of (N, H, W, C), mirrored borders."""
    h, w = x.shape[1:3]
    p = np.pad(x, ((0, 0), (2, 2), (0, 0), (0, 0)), mode="reflect")
    x = sum(c * p[:, i:i + h] for i, c in enumerate(_BINOMIAL))
    p = np.pad(x, ((0, 0), (0, 0), (2, 2), (0, 0)), mode="reflect")
    return sum(c * p[:, :, i:i + w] for i, c in enumerate(_BINOMIAL))


def _downsample(x: np.ndarray) -> np.ndarray:
    return _blur(x)[:, ::2, ::2]


def _upsample(x: np.ndarray) -> np.ndarray:
    n, h, w, c = x.shape
    z = np.zeros((n, 2 * h, 2 * w, c), x.dtype)
    z[:, ::2, ::2] = x
    return _blur(z) * 4.0  # each output pixel saw a quarter of the taps


def pyramid_sizes(height: int, width: int, min_size: int = SWD_MIN_SIZE) -> list[int]:
    """Sides of the Laplacian pyramid's levels, finest first: halve while the result stays >= ``min_size``."""
    sizes = [min(height, width)]
    while height % 2 == 0 and width % 2 == 0 and min(height, width) // 2 >= min_size:
        height, width = height // 2, width // 2
        sizes.append(min(height, width))
    return sizes


def laplacian_pyramid(images, min_size: int = SWD_MIN_SIZE) -> list[np.ndarray]:
    """Levels of (N, H, W, C) float images, finest first: band-pass levels image - up(down(image)),
    then the low-pass image at the coarsest size (>= ``min_size``, 16 in Karras et al. 2018)."""
    x = np.asarray(images, np.float32)
    levels = []
    for _ in pyramid_sizes(*x.shape[1:3], min_size)[1:]:
        low = _downsample(x)
        levels.append(x - _upsample(low))
        x = low
    levels.append(x)
    return levels


def _patch_offsets(n: int, level_shape, per_image: int, size: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Top-left corners (ys, xs), each (n, per_image), of random size x size patches inside the level."""
    h, w = level_shape
    return rng.integers(0, h - size + 1, (n, per_image)), rng.integers(0, w - size + 1, (n, per_image))


def _descriptors(level: np.ndarray, ys: np.ndarray, xs: np.ndarray, size: int) -> np.ndarray:
    """(N * P, size * size * C) patches at (ys, xs) (N, P), normalised per channel to mean 0, std 1."""
    n, _, _, c = level.shape
    d = np.arange(size)
    rows = (ys[:, :, None] + d)[:, :, :, None]
    cols = (xs[:, :, None] + d)[:, :, None, :]
    patches = level[np.arange(n)[:, None, None, None], rows, cols]  # (N, P, size, size, C)
    mean = patches.mean(axis=(0, 1, 2, 3), dtype=np.float64)
    std = patches.std(axis=(0, 1, 2, 3), dtype=np.float64)
    patches = (patches - mean.astype(np.float32)) / np.where(std > 0, std, 1.0).astype(np.float32)
    return patches.reshape(n * ys.shape[1], size * size * c)


def _sliced_distance(a: np.ndarray, b: np.ndarray, rng, directions: int, repeats: int,
                     budget_bytes: int = 64 << 20) -> float:
    """Mean over ``repeats`` x ``directions`` random unit directions of the 1-d Wasserstein-1 distance
    between the projections of ``a`` and ``b`` (equal counts: sorted projections, paired). Directions
    are projected a chunk at a time so each side's projections stay within ``budget_bytes``."""
    chunk = int(max(1, min(directions, budget_bytes // (4 * len(a)))))
    total = 0.0
    for _ in range(repeats):
        dirs = rng.standard_normal((a.shape[1], directions)).astype(np.float32)
        dirs /= np.linalg.norm(dirs, axis=0, keepdims=True)
        for s in range(0, directions, chunk):  # a chunk of directions at a time: bounded memory
            pa = np.ascontiguousarray((a @ dirs[:, s:s + chunk]).T)  # one direction per row: sorts fast
            pb = np.ascontiguousarray((b @ dirs[:, s:s + chunk]).T)
            pa.sort(axis=1)
            pb.sort(axis=1)
            total += float(np.abs(pa - pb).mean(axis=1, dtype=np.float64).sum())
    return total / (repeats * directions)


def sliced_wasserstein(real_images, fake_images, patches_per_image: int = 128, patch_size: int = 7,
                       directions: int = 128, repeats: int = 4, seed: int = 0,
                       min_size: int = SWD_MIN_SIZE) -> dict:
    """Sliced Wasserstein distance between Laplacian-pyramid patch descriptors (Karras et al. 2018,
    "Progressive Growing of GANs", sec. 5, after Rabin et al. 2011): each image's Laplacian pyramid
    down to 16x16, ``patches_per_image`` (128) random 7x7 neighbourhoods per image and level, each
    level's descriptors normalised per channel to mean 0 and standard deviation 1 (each set on its
    own), and the distance estimated with ``repeats`` x ``directions`` (4 x 128 = 512) random
    projections. Fine levels measure details and texture, the coarsest level the large-scale shape.

    Patch positions are drawn independently for each set, as PGGAN's own code does (its
    ``metrics/sliced_wasserstein.py`` picks random neighbourhoods per image set), so SWD compares
    two samples of patches and not image i's patches with image i's: two identical sets give a small
    positive value (the sampling noise, falling as ``patches_per_image`` grows), and the figures are
    on the scale of the paper's tables. The random projections are shared by both sets.

    Returns ``{"sizes": [side of each level, finest first], "levels": [distance per level], "mean":
    their mean}``. Lower is better; the paper's tables print values x 10^3. Deterministic for a
    given ``seed``. Both sets need the same image size (at least 16x16) and 2 images; the larger
    set is subsampled (seeded) to the size of the smaller so the two descriptor sets have equal counts.
    """
    real = _image_array(real_images, "SWD", "real", 2, min_size)
    fake = _image_array(fake_images, "SWD", "fake", 2, min_size)
    if real.shape[1:] != fake.shape[1:]:
        raise ValueError(f"SWD: real images are {real.shape[1:]} but fake images {fake.shape[1:]}: "
                         "compare images of one size (resize one set)")
    if min(real.shape[1:3]) < patch_size:
        raise ValueError(f"SWD needs images of at least {patch_size}x{patch_size} (the patch size)")
    rng = np.random.default_rng(seed)
    n = min(len(real), len(fake))
    real = real[np.sort(rng.choice(len(real), n, replace=False))] if len(real) > n else real
    fake = fake[np.sort(rng.choice(len(fake), n, replace=False))] if len(fake) > n else fake
    real_levels = laplacian_pyramid(real, min_size)
    fake_levels = laplacian_pyramid(fake, min_size)
    distances = []
    for r, f in zip(real_levels, fake_levels, strict=True):
        real_patches = _descriptors(r, *_patch_offsets(n, r.shape[1:3], patches_per_image, patch_size, rng), patch_size)
        fake_patches = _descriptors(f, *_patch_offsets(n, f.shape[1:3], patches_per_image, patch_size, rng), patch_size)
        distances.append(_sliced_distance(real_patches, fake_patches, rng, directions, repeats))
    return {"sizes": [lvl.shape[1] for lvl in real_levels], "levels": distances, "mean": float(np.mean(distances))}


# -- MS-SSIM ------------------------------------------------------------------------------------

def ms_ssim_scales(height: int, width: int, filter_size: int = 11, max_scales: int = 5) -> int:
    """How many MS-SSIM scales an image allows: scale s is the image halved s times (rounded up, as
    ``tf.image.ssim_multiscale`` pads), and each must be at least ``filter_size`` wide."""
    side = min(height, width)
    if side < filter_size:
        raise ValueError(f"MS-SSIM needs images of at least {filter_size}x{filter_size} (the SSIM window), "
                         f"got {height}x{width}")
    scales = 1
    while scales < max_scales and math.ceil(side / 2 ** scales) >= filter_size:
        scales += 1
    return scales


def ms_ssim_power_factors(scales: int) -> tuple[float, ...]:
    """Wang et al.'s first ``scales`` exponents, renormalised to sum to 1 when fewer than all five
    (all five, unchanged as in the paper and ``tf.image.ssim_multiscale``, from 176x176)."""
    if scales >= len(WANG_POWER_FACTORS):
        return WANG_POWER_FACTORS
    w = WANG_POWER_FACTORS[:scales]
    return tuple(v / sum(w) for v in w)


def ms_ssim_between(a, b, filter_size: int = 11, batch_size: int = 256) -> np.ndarray:
    """MS-SSIM (Wang, Simoncelli & Bovik 2003, "Multi-scale structural similarity for image quality
    assessment", sec. 2) of each pair (a[i], b[i]) of images in [-1, 1] (or uint8): (N,) in [0, 1],
    1 for identical images. As many scales as the size allows (:func:`ms_ssim_scales`: 2 at 32x32,
    3 at 64x64, all 5 from 176x176), with Wang et al.'s exponents renormalised; 11x11 Gaussian
    window (sigma 1.5), images mapped to [0, 1] (``tf.image.ssim_multiscale``)."""
    a = _image_array(a, "MS-SSIM", "first", 1, filter_size)
    b = _image_array(b, "MS-SSIM", "second", 1, filter_size)
    if a.shape != b.shape:
        raise ValueError(f"MS-SSIM compares images of one shape, got {a.shape} and {b.shape}")
    factors = ms_ssim_power_factors(ms_ssim_scales(*a.shape[1:3], filter_size))
    out = []
    for s in range(0, len(a), batch_size):
        x = tf.constant((a[s:s + batch_size] + 1.0) / 2.0)
        y = tf.constant((b[s:s + batch_size] + 1.0) / 2.0)
        out.append(tf.image.ssim_multiscale(x, y, max_val=1.0, power_factors=factors,
                                            filter_size=filter_size).numpy())
    return np.concatenate(out).astype(np.float64)


def ms_ssim(images, num_pairs: int = 1000, seed: int = 0, filter_size: int = 11) -> float:
    """Diversity of a set of images: the mean MS-SSIM over ``num_pairs`` random pairs of distinct
    images (seeded), as Odena et al. 2017 (AC-GAN, sec. 4.2) and Karras et al. 2018 (sec. 5, Table 1)
    use it. Near 1: the images look alike (mode collapse); lower is more diverse. Compare with the
    same number computed on real images. Needs at least 2 images of at least 11x11."""
    x = _image_array(images, "MS-SSIM", "generated", 2, filter_size)
    rng = np.random.default_rng(seed)
    i = rng.integers(0, len(x), num_pairs)
    j = (i + rng.integers(1, len(x), num_pairs)) % len(x)  # j != i
    return float(ms_ssim_between(x[i], x[j], filter_size).mean())


# -- all of them at once ------------------------------------------------------------------------

def expand_metric_names(names) -> list[str]:
    """Metric names in :data:`METRICS` order; ``"pr"`` stands for precision, recall, density, coverage."""
    wanted = set()
    for name in names:
        name = name.lower().replace("-", "").replace("_", "")
        if name == "pr":
            wanted.update(PR_METRICS)
        elif name in METRICS:
            wanted.add(name)
        else:
            raise ValueError(f"unknown metric {name!r}; choose from {METRICS} (or 'pr')")
    return [m for m in METRICS if m in wanted]


def compute_metrics(names, real_features=None, fake_features=None, real_images=None, fake_images=None,
                    real_stats=None, fake_stats=None, k: int = 3, kid_subsets: int = 100,
                    kid_subset_size: int = 1000, msssim_pairs: int = 1000, seed: int = 0,
                    msssim_real: bool = True) -> dict:
    """The metrics ``names`` (see :func:`expand_metric_names`) from whatever is given: features
    (N, D) for fid/kid/precision/recall/density/coverage, images for swd (both sides) and msssim
    (the fake side; the real side's value is added as ``msssim_real`` when real images are given,
    unless ``msssim_real=False``),
    ``(mu, sigma)`` statistics for FID only. Returns a flat dict: each metric's value plus
    ``kid_std``, ``swd_levels`` ({side: distance}) and ``msssim_real`` where computed."""
    from .fid import frechet_distance, frechet_distance_from_activations

    out: dict = {}
    names = expand_metric_names(names)

    def need(what, value, metric):
        if value is None:
            raise ValueError(f"{metric} needs {what}")
        return value

    if "fid" in names:
        if real_stats is None:
            rf = _feature_array(need("real features or statistics", real_features, "FID"), "FID", "real", 2)
            real_stats = (rf.mean(axis=0, dtype=np.float64), np.cov(rf.astype(np.float64), rowvar=False))
        if fake_stats is not None:
            out["fid"] = frechet_distance(*real_stats, *fake_stats)
        else:
            ff = _feature_array(need("fake features or statistics", fake_features, "FID"), "FID", "fake", 2)
            out["fid"] = frechet_distance_from_activations(*real_stats, ff)
    if "kid" in names:
        out["kid"], out["kid_std"] = kid(need("real features", real_features, "KID"),
                                         need("fake features", fake_features, "KID"),
                                         kid_subsets, kid_subset_size, seed)
    if any(m in names for m in PR_METRICS):
        pr = precision_recall(need("real features", real_features, "precision/recall"),
                              need("fake features", fake_features, "precision/recall"), k)
        out.update({m: pr[m] for m in PR_METRICS if m in names})
    if "swd" in names:
        swd = sliced_wasserstein(need("real images", real_images, "SWD"), need("fake images", fake_images, "SWD"),
                                 seed=seed)
        out["swd"], out["swd_levels"] = swd["mean"], dict(zip(swd["sizes"], swd["levels"], strict=True))
    if "msssim" in names:
        out["msssim"] = ms_ssim(need("fake images", fake_images, "MS-SSIM"), msssim_pairs, seed)
        if real_images is not None and msssim_real:
            out["msssim_real"] = ms_ssim(real_images, msssim_pairs, seed)
    return out


# -- real-feature cache -------------------------------------------------------------------------

def features_cache_path(cache_dir, dataset: str, image_size: int, extractor) -> Path:
    """``<cache_dir>/features_<dataset>_<size>px_<network>.npz``: one file per data, size and network."""
    return Path(cache_dir) / f"features_{dataset}_{image_size}px_{getattr(extractor, 'name', extractor)}.npz"


def save_features(path, features, extractor, **extra) -> Path:
    """Write ``features`` (N, D) and the network's name to an ``.npz`` (atomically)."""
    from .experiment import atomic_write

    buf = io.BytesIO()
    np.savez(buf, features=np.asarray(features, np.float32), extractor=np.str_(getattr(extractor, "name", extractor)),
             **extra)
    return atomic_write(path, buf.getvalue())


def load_npz(path) -> dict:
    """An ``.npz`` of ``features`` (N, D) (all feature metrics), ``images`` (N, H, W, C) (every metric)
    or FID statistics ``mu``/``sigma`` (FID only), as a dict with ``extractor`` (name or None)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            if not hasattr(z, "files"):
                raise ValueError("a single array, not an archive of named arrays")
            out = {key: z[key] for key in z.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        why = "it holds pickled objects or is not NumPy data" if "pickle" in str(err) else str(err).splitlines()[0]
        raise ValueError(f"{path} is not a valid .npz ({why}): pass an .npz written by numpy.savez with arrays "
                         "'images', 'features' or 'mu'/'sigma'") from None
    out["extractor"] = str(out["extractor"]) if "extractor" in out else None
    if not any(key in out for key in ("features", "images", "mu")):
        raise ValueError(f"{path} holds none of 'features', 'images' or 'mu'/'sigma' (found {sorted(out)})")
    return out


def real_features_cached(images, extractor, cache_path=None, batch_size: int = 200) -> np.ndarray:
    """Features of the real ``images``, loaded from ``cache_path`` (.npz) if it was written by the same
    network for as many images, else computed (and saved there)."""
    from .features import extract

    if cache_path is not None and Path(cache_path).is_file():
        z = load_npz(cache_path)
        if z.get("extractor") == extractor.name and "features" in z and len(z["features"]) == len(images):
            return z["features"]
        log.warning("ignoring %s: written by %s for %d images, not %s for %d", cache_path, z.get("extractor"),
                    len(z.get("features", [])), extractor.name, len(images))
    feats = extract(images, extractor, batch_size)
    if cache_path is not None:
        save_features(cache_path, feats, extractor)
    return feats


# -- training callback --------------------------------------------------------------------------

class MetricsMonitor(keras.callbacks.Callback):
    """Every ``every_n_epochs`` epochs: ``metrics`` (names from :data:`METRICS`, or ``"pr"``) of
    ``num_samples`` generated images against ``real_images`` (uint8 or [-1, 1], NHWC).

    The samples come from ``model.sample(num_samples, seed=seed)``: the same noise at every
    evaluation and never the training RNG. Features come from ``extractor`` (a name of
    :func:`ganhelpers.features.feature_extractor` or an Extractor; ``"digits"`` by default, the
    offline network); the real features are computed once (and cached in ``cache_path``, an
    ``.npz``, if given: see :func:`features_cache_path`). Each value is

    * logged as the TensorBoard scalar ``metrics/<name>`` (the run's writer, step = epochs
      completed; SWD's levels also as ``metrics/swd_<side>px``),
    * merged into ``results.json``: ``<name>`` (latest), ``<name>_history`` ([[epoch, value], ...],
      kept across resumes), plus ``kid_std``, ``swd_levels``, ``metrics_network``, ``metrics_note``,
      ``metrics_num_fake``, ``metrics_num_real``, ``metrics_k``,
    * added to the epoch logs (so the progress bar and Keras' TensorBoard see it).
    """

    def __init__(self, run, real_images, metrics=("kid", "precision", "recall"), every_n_epochs: int = 1,
                 num_samples: int = 1000, extractor="digits", cache_path=None, seed: int = 0, k: int = 3,
                 kid_subsets: int = 100, kid_subset_size: int = 1000, msssim_pairs: int = 1000,
                 batch_size: int = 200):
        super().__init__()
        self.names = expand_metric_names(metrics)
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs}")
        minimum = max(2, k + 1 if any(m in self.names for m in PR_METRICS) else 2)
        if num_samples < minimum or len(real_images) < minimum:
            raise ValueError(f"{', '.join(self.names)} need at least {minimum} samples per side, got "
                             f"num_samples={num_samples} and {len(real_images)} real images")
        self.run, self.real_images = run, real_images
        self.every_n_epochs, self.num_samples, self.seed, self.k = every_n_epochs, num_samples, seed, k
        self.kid_subsets, self.kid_subset_size, self.msssim_pairs = kid_subsets, kid_subset_size, msssim_pairs
        self.extractor, self.cache_path, self.batch_size = extractor, cache_path, batch_size
        self.real_features = None
        self.real_stats = None  # (mu, sigma) of the real features, for FID: computed once
        self.msssim_real = None  # MS-SSIM among the real images (the diversity to aim for): computed once
        self._started = False
        self.history: dict[str, list] = {}

    @property
    def needs_features(self) -> bool:
        return any(m in FEATURE_METRICS for m in self.names)

    def on_train_begin(self, logs=None):
        from .features import feature_extractor

        if self.needs_features and self.real_features is None:
            self.extractor = feature_extractor(self.extractor)
            self.real_features = real_features_cached(self.real_images, self.extractor, self.cache_path,
                                                      self.batch_size)
        if "fid" in self.names and self.real_stats is None:
            rf = _feature_array(self.real_features, "FID", "real", 2).astype(np.float64)
            self.real_stats = (rf.mean(axis=0), np.cov(rf, rowvar=False))
        self._started = True
        results = self.run.results()
        self.history = {m: [list(h) for h in results.get(f"{m}_history", [])] for m in self.names}

    def evaluate(self) -> dict:
        """The configured metrics of ``num_samples`` fresh samples (no logging)."""
        from .features import extract

        if not hasattr(self.model, "sample"):
            raise TypeError("MetricsMonitor needs a model with sample(n, seed) (a ganhelpers GAN)")
        fake = np.asarray(self.model.sample(self.num_samples, seed=self.seed), np.float32)
        fake_features = extract(fake, self.extractor, self.batch_size) if self.needs_features else None
        values = compute_metrics(self.names, self.real_features, fake_features, self.real_images, fake,
                                 real_stats=self.real_stats, k=self.k, kid_subsets=self.kid_subsets,
                                 kid_subset_size=self.kid_subset_size, msssim_pairs=self.msssim_pairs,
                                 seed=self.seed, msssim_real=self.msssim_real is None)
        if "msssim" in self.names:  # the real data's value is the same every time: computed once
            self.msssim_real = values.setdefault("msssim_real", self.msssim_real)
        return values

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_n_epochs:
            return
        if not self._started:
            self.on_train_begin()
        step = epoch + 1
        values = self.evaluate()
        scalars = {f"metrics/{name}": values[name] for name in self.names}
        scalars.update({f"metrics/swd_{side}px": v for side, v in values.get("swd_levels", {}).items()})
        summaries.scalars(self.run, scalars, step)  # the run's writer, never dropped
        summaries.flush(self.run)
        update = {}
        for name in self.names:
            self.history[name] = [h for h in self.history[name] if h[0] != step] + [[step, values[name]]]
            update[name], update[f"{name}_history"] = values[name], self.history[name]
        for extra in ("kid_std", "msssim_real"):
            if extra in values:
                update[extra] = values[extra]
        if "swd_levels" in values:
            update["swd_levels"] = {f"{side}px": v for side, v in values["swd_levels"].items()}
        network = getattr(self.extractor, "name", None) if self.needs_features else None
        update.update(metrics_network=network, metrics_note=getattr(self.extractor, "note", "") if network else "",
                      metrics_num_fake=self.num_samples, metrics_num_real=len(self.real_images), metrics_k=self.k)
        self.run.update_results(update)
        if logs is not None:
            logs.update({name: values[name] for name in self.names})
        log.info("epoch %d: %s (%s, %d fake / %d real)", step,
                 ", ".join(f"{n} {values[n]:.4g}" for n in self.names), network or "pixels", self.num_samples,
                 len(self.real_images))

    def on_train_end(self, logs=None):
        self._started = False


# -- command line: python -m ganhelpers eval REAL FAKE ------------------------------------------

EVAL_METRICS = ("fid", "kid", "pr", "swd", "msssim")


def add_eval_parser(subparsers):
    """Register ``eval REAL FAKE [--features inception|digits|none] [--metrics fid kid pr swd msssim]
    [-n N]`` on an ``argparse`` sub-parser collection; returns the sub-parser."""
    from .configs import option_number

    p = subparsers.add_parser(
        "eval", help="FID, KID, precision/recall, SWD, MS-SSIM between two image sources",
        description="Metrics between REAL and FAKE. Each is a folder of images (one size), a run folder "
                    "(config.yaml + checkpoints/: draws N samples from its generator, seed 0), or an .npz: "
                    "'images' (every metric), 'features' of the chosen network (fid, kid, pr) or FID "
                    "statistics 'mu'/'sigma' (fid only). Prints one line per metric.")
    p.add_argument("real", help="folder of images, run folder, or .npz (images / features / mu+sigma)")
    p.add_argument("fake", help="folder of images, run folder, or .npz (images / features / mu+sigma)")
    p.add_argument("--features", choices=("inception", "digits", "none"), default="inception",
                   help="feature network: inception (ImageNet InceptionV3; needs its download), digits (the "
                        "digit classifier's penultimate layer; offline, for digit-like data), none (random "
                        "InceptionV3: plumbing only) (default: inception)")
    p.add_argument("--data-dir", default=None,
                   help="data folder whose models/ holds the cached digit classifier of --features digits "
                        "(trained there once if missing; default: $GANHELPERS_DATA or ~/.keras/datasets)")
    p.add_argument("--metrics", nargs="+", choices=EVAL_METRICS, default=list(EVAL_METRICS),
                   help="pr = precision, recall, density, coverage (default: all)")
    p.add_argument("-n", "--num-samples", type=option_number(int, 1, True, "-n"), default=None,
                   help="samples drawn from a run folder (default 1000); a folder or .npz with more "
                        "than N images/rows gives N of them, chosen at random (seeded) (default: all)")
    p.add_argument("--k", type=option_number(int, 0, True, "--k"), default=3,
                   help="neighbours of the k-NN manifolds (default: 3)")
    p.add_argument("--kid-subsets", type=option_number(int, 0, True, "--kid-subsets"), default=100,
                   help="KID: random subsets (default: 100)")
    p.add_argument("--kid-subset-size", type=option_number(int, 1, True, "--kid-subset-size"), default=None,
                   help="KID: rows per subset (default: 1000, or half the smaller side when that is less, "
                        "so the spread over subsets means something)")
    p.add_argument("--seed", type=int, default=0, help="seed of subsets, pairs, patches and run samples")
    p.add_argument("--batch", type=option_number(int, 0, True, "--batch"), default=100,
                   help="images per feature batch (default: 100)")
    p.set_defaults(fn=eval_cli)
    return p


def _folder_images(folder: Path) -> np.ndarray:
    """uint8 (N, H, W, C) of every readable image under ``folder``, decoded by the loaders' checked
    reader (:func:`ganhelpers.data.read_image`: decompression bombs and unreadable files are skipped
    with one warning naming them); mixed sizes are an error (1 channel when every file is
    grayscale, else RGB)."""
    from .data import image_header, list_images, read_image, warn_skipped

    paths = list_images(folder)
    headers, bad = {}, []
    for p in paths:
        try:
            headers[p] = image_header(p)
        except Exception as err:  # noqa: BLE001 - any decoder error means "skip this file"
            bad.append(f"{p} ({type(err).__name__}: {err})")
    sizes = {(w, h) for w, h, _ in headers.values()}
    if len(sizes) > 1:
        shown = ", ".join(f"{w}x{h}" for w, h in sorted(sizes)[:4])
        raise ValueError(f"eval: images under {folder} have mixed sizes ({shown}, ...): SWD and MS-SSIM compare "
                         "pixels at one size (at least 16x16 for SWD, 11x11 for MS-SSIM): resize them first")
    channels = 1 if {mode for _, _, mode in headers.values()} <= {"L", "1", "I", "I;16", "F"} else 3
    out = []
    for p in headers:
        try:
            out.append(read_image(p, channels))
        except Exception as err:  # noqa: BLE001 - a header that read but pixels that do not
            bad.append(f"{p} ({type(err).__name__}: {err})")
    warn_skipped(bad, len(paths))
    if not out:
        raise ValueError(f"eval: none of the {len(paths)} image files under {folder} could be read (first: {bad[0]})")
    return np.stack(out)


def _at_most(arr: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """``arr`` itself, or ``n`` of its rows chosen at random (seeded; files are often sorted by class)."""
    if not n or len(arr) <= n:
        return arr
    return arr[np.sort(np.random.default_rng(seed).choice(len(arr), n, replace=False))]


def _load_source(path: str, n: int | None, seed: int) -> dict:
    """{"kind", "images"|"features"|"mu"+"sigma", "extractor", "count"} of one CLI argument."""
    p = Path(path)
    if not p.exists():
        raise SystemExit(f"{path} does not exist: pass an image folder, a run folder or an .npz")
    if p.suffix == ".npz":
        try:
            z = load_npz(p)
        except ValueError as err:
            raise SystemExit(f"error: {err}") from None
        for key in ("images", "features"):
            if key in z:
                arr = _at_most(z[key], n, seed)
                return {"kind": f"npz of {key}", key: arr, "extractor": z["extractor"], "count": len(arr)}
        return {"kind": "npz of FID statistics", "mu": z["mu"], "sigma": z["sigma"], "extractor": z["extractor"],
                "count": int(z.get("num_images", -1))}
    from .run import is_run_folder, restore_model

    if is_run_folder(p):
        model = restore_model(p)
        count = n or 1000
        return {"kind": "run", "images": np.asarray(model.sample(count, seed=seed), np.float32), "count": count}
    images = _at_most(_folder_images(p), n, seed)
    return {"kind": "folder", "images": images, "count": len(images)}


def _features_of(source: dict, extractor, batch: int, side: str) -> np.ndarray | None:
    from .features import extract

    if "features" in source:
        if source["extractor"] not in (None, extractor.name):
            raise SystemExit(f"{side} features come from {source['extractor']}, not {extractor.name}: pass "
                             "--features for that network, or images")
        return source["features"]
    if "images" in source:
        return extract(source["images"], extractor, batch)
    return None


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def eval_cli(args) -> int:
    """``python -m ganhelpers eval``: prints a header naming the network and sample counts, then one
    line per metric (``FID: 12.34``, ``KID: 0.0123 ± 0.0011``, ``precision: 0.812``, ``recall: 0.640``,
    ``density: ...``, ``coverage: ...``, ``SWD: 32px 1.2e-3, 16px ..., mean ...``, ``MS-SSIM: ...``)."""
    from .features import describe, feature_extractor

    names = expand_metric_names(args.metrics)
    real = _load_source(args.real, args.num_samples, args.seed)
    fake = _load_source(args.fake, args.num_samples, args.seed)
    feature_names = [m for m in names if m in FEATURE_METRICS]
    only_stats = all("images" not in s and "features" not in s for s in (real, fake))
    for side, src in (("REAL", real), ("FAKE", fake)):
        if "mu" in src and any(m != "fid" for m in names):
            others = ", ".join(m for m in names if m != "fid")
            raise SystemExit(f"{side} is an .npz of FID statistics (mu, sigma): only fid can use it, not {others}; "
                             "pass --metrics fid, or images / an .npz of features")
        if "images" not in src and any(m in IMAGE_METRICS for m in names):
            raise SystemExit(f"{side} ({src['kind']}) has no images: SWD and MS-SSIM need pixels; drop them "
                             "with --metrics, or pass an image folder, a run folder or an .npz of images")
    extractor = None
    if feature_names and not only_stats:
        extractor = feature_extractor(args.features, data_dir=getattr(args, "data_dir", None))
    real_features = _features_of(real, extractor, args.batch, "REAL") if extractor else None
    fake_features = _features_of(fake, extractor, args.batch, "FAKE") if extractor else None
    stats = {side: (src["mu"], src["sigma"]) for side, src in (("real", real), ("fake", fake)) if "mu" in src}
    made_by = {src["extractor"] for src in (real, fake) if "mu" in src and src["extractor"]}
    if extractor is not None:
        made_by.add(extractor.name)
    if stats and len(made_by) > 1:
        raise SystemExit(f"FID statistics and features come from different networks ({', '.join(sorted(made_by))}): "
                         "their FID would mean nothing; use one network for both sides")
    network = describe(extractor) if extractor else (real.get("extractor") or "statistics from the .npz files")
    print(f"network: {network if feature_names else 'none (pixel metrics only)'}; real: {real['count']} "
          f"({real['kind']} {args.real}), fake: {fake['count']} ({fake['kind']} {args.fake})")
    smaller = min(len(f) for f in (real_features, fake_features)) if real_features is not None and \
        fake_features is not None else 0
    subset = args.kid_subset_size or max(2, min(1000, smaller // 2))
    values = compute_metrics(names, real_features, fake_features, real.get("images"), fake.get("images"),
                             real_stats=stats.get("real"), fake_stats=stats.get("fake"), k=args.k, seed=args.seed,
                             kid_subsets=args.kid_subsets, kid_subset_size=subset)
    note = f" {extractor.note}" if extractor is not None and extractor.note else ""
    for name in names:
        v = values[name]
        if name == "fid":
            print(f"FID: {v:.2f}{note}")
        elif name == "kid":
            print(f"KID: {_fmt(v)} ± {_fmt(values['kid_std'])} ({args.kid_subsets} subsets of {subset}){note}")
        elif name in PR_METRICS:
            print(f"{name}: {v:.3f} (k={args.k}){note}")
        elif name == "swd":
            levels = ", ".join(f"{s}px {_fmt(d)}" for s, d in values["swd_levels"].items())
            print(f"SWD: {levels}, mean {_fmt(v)} (x1e3: {v * 1e3:.3g})")
        elif name == "msssim":
            ref = f"; real images: {values['msssim_real']:.3f}" if "msssim_real" in values else ""
            print(f"MS-SSIM: {v:.3f} (fake, mean of random pairs{ref})")
    return 0


__all__ = ["METRICS", "FEATURE_METRICS", "IMAGE_METRICS", "PR_METRICS", "LOWER_IS_BETTER", "polynomial_kernel", "kid",
           "squared_distance_blocks",
           "exact_squared_distances", "knn_radii", "precision_recall", "pyramid_sizes", "laplacian_pyramid",
           "sliced_wasserstein", "ms_ssim_scales", "ms_ssim_power_factors", "ms_ssim_between", "ms_ssim",
           "expand_metric_names", "compute_metrics", "features_cache_path", "save_features", "load_npz",
           "real_features_cached", "MetricsMonitor", "add_eval_parser", "eval_cli", "EVAL_METRICS"]
