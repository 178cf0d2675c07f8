"""k-NN manifolds: improved precision and recall (Kynkaanniemi et al. 2019) and density and coverage
(Naeem et al. 2020), from blocked distance products with ties on the balls' boundary decided exactly.

- ``precision``: what share of generated samples fall on the real data's manifold (quality)?
- ``recall``: what share of real samples fall on the generator's manifold (coverage)?
- ``density``: like precision, counting how many real neighbourhoods hold each sample (about 1 when
  the sets match); ``coverage``: share of real neighbourhoods holding a generated sample.

All higher is better.
"""

from __future__ import annotations

import numpy as np

from .checks import feature_pair

#: the four numbers of one k-NN pass (:func:`precision_recall`)
PR_METRICS = ("precision", "recall", "density", "coverage")


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


#: share of a block's entries left undecided by the float32 bound above which that block and the later
#: ones are computed in float64
_FLOAT64_STAGE = 1e-3


def _centred_bound(dtype, dims: int) -> float:
    """The float64 stage's bound, relative to ||a||^2 + ||b||^2: the centring's rounding to ``dtype``
    (at most 2 eps of it) and a float64 product over ``dims`` components, each with a margin of 4."""
    return 8.0 * float(np.finfo(dtype).eps) + 8.0 * (dims + 4) * float(np.finfo(np.float64).eps)


def exact_squared_distances(a, b, i, j, budget_bytes: int = 2 << 20) -> np.ndarray:
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
        if width == dims:  # a chunk small enough to stay in cache through every pass
            d = a[i[s:s + chunk]].astype(np.float64)
        else:
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
    real, fake = feature_pair(real_features, fake_features, "precision/recall", k + 1)
    centre = real.mean(axis=0, dtype=np.float64)
    real_c, fake_c = (real - centre).astype(dtype), (fake - centre).astype(dtype)
    real_r2, fake_r2 = _knn_radii(real_c, real, k, block_rows), _knn_radii(fake_c, fake, k, block_rows)
    real_balls = np.zeros(len(fake), np.int64)  # density: how many real balls hold fake j (> 0: precision)
    covered = np.zeros(len(real), bool)      # coverage: real ball i holds some fake
    in_fake = np.zeros(len(real), bool)      # recall: real i inside some fake ball
    fake_sq, real_sq = np.einsum("ij,ij->i", fake_c, fake_c), np.einsum("ij,ij->i", real_c, real_c)
    tol = _round_off_bound(dtype, real.shape[1])
    wide = {}  # the float64 stage's real side, made once if a block needs it

    def classify(d2, err, start, stop):
        """(surely inside a real ball, surely inside a fake ball, undecided), entry by entry."""
        low, high = d2 - err, d2 + err
        fake_radius = fake_r2[start:stop, None]
        inside_real, inside_fake = high <= real_r2[None, :], high <= fake_radius
        unsure = ((low <= real_r2[None, :]) & ~inside_real) | ((low <= fake_radius) & ~inside_fake)
        return inside_real, inside_fake, unsure

    real_m2 = np.ascontiguousarray(-2.0 * real_c.T)  # (D, N): one matrix product per block of fake rows
    step = block_rows or _block_rows(len(real_c), real_c.dtype.itemsize)
    starts = [0, *range(min(step, 256), len(fake_c), step)]  # a small first block: it decides the dtype early
    for start, stop in zip(starts, [*starts[1:], len(fake_c)], strict=True):
        if not wide:
            d2 = fake_c[start:stop] @ real_m2
            d2 += real_sq[None, :]
            d2 += fake_sq[start:stop, None]  # squared distances, each within err of the exact one
            inside_real, inside_fake, unsure = classify(d2, tol * (fake_sq[start:stop, None] + real_sq[None, :]),
                                                        start, stop)
            if dtype != np.float64 and np.count_nonzero(unsure) > _FLOAT64_STAGE * unsure.size:
                # Concentrated high-dimensional features leave many pairs within the float32 bound: from
                # this block on, float64 products of the same centred values, whose bound is far tighter.
                r64 = real_c.astype(np.float64)
                wide.update(m2=np.ascontiguousarray(-2.0 * r64.T), sq=np.einsum("ij,ij->i", r64, r64))
        if wide:
            f64 = fake_c[start:stop].astype(np.float64)
            f_sq = np.einsum("ij,ij->i", f64, f64)[:, None]
            d64 = f64 @ wide["m2"]
            d64 += wide["sq"][None, :]
            d64 += f_sq
            inside_real, inside_fake, unsure = classify(d64, _centred_bound(dtype, real.shape[1]) *
                                                        (f_sq + wide["sq"][None, :]), start, stop)
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
