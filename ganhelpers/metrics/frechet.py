"""Fréchet distance (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a
Local Nash Equilibrium", sec. 3) and Inception Score (Salimans et al. 2016, sec. 4), as plain
functions over feature statistics and class probabilities.

FID fits a Gaussian to the features of real and of generated images and measures the Fréchet
distance between the two Gaussians::

    FID = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))

Lower is better; 0 means identical statistics. Which network extracts the features decides which
numbers you may compare (see :mod:`ganhelpers.metrics.inception`). :mod:`ganhelpers.metrics.fid` computes
the statistics of image sources (arrays, folders, datasets, generators) batch by batch.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)


# -- streaming statistics -----------------------------------------------------------------------

class RunningStats:
    """Mean and covariance of rows fed batch by batch (Chan et al. 1979 pairwise update, float64).

    Each batch contributes its own mean and centred scatter matrix, merged exactly into the
    running ones, so the result equals ``np.mean``/``np.cov`` of all rows without cancellation.
    """

    def __init__(self):
        self.n, self.mean, self.scatter = 0, None, None

    def update(self, rows) -> None:
        x = np.asarray(rows, dtype=np.float64)
        x = x.reshape(len(x), -1)
        nb = len(x)
        if nb == 0:
            return
        mb = x.mean(axis=0)
        c = x - mb
        scatter_b = c.T @ c
        if self.n == 0:
            self.n, self.mean, self.scatter = nb, mb, scatter_b
            return
        if mb.shape != self.mean.shape:
            raise ValueError(f"feature size changed from {self.mean.shape[0]} to {mb.shape[0]} between batches")
        n = self.n + nb
        delta = mb - self.mean
        self.mean = self.mean + delta * (nb / n)
        self.scatter += scatter_b + np.outer(delta, delta) * (self.n * nb / n)
        self.n = n

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(mu (D,), sigma (D, D)) with the unbiased (N - 1) covariance, as ``np.cov``."""
        if self.n < 2:
            raise ValueError(f"need at least 2 images for a covariance, got {self.n}")
        return self.mean.copy(), self.scatter / (self.n - 1)


# -- the Fréchet distance -----------------------------------------------------------------------

def _checked(mu, sigma, which: str) -> tuple[np.ndarray, np.ndarray]:
    mu, sigma = np.atleast_1d(np.asarray(mu, np.float64)), np.atleast_2d(np.asarray(sigma, np.float64))
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(f"statistics {which}: mu must be (D,) and sigma (D, D), got {mu.shape} and {sigma.shape}")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise ValueError(f"statistics {which} contain NaN or inf: the features (or the generator) diverged")
    scale = max(np.abs(sigma).max(), 1e-300)
    if np.abs(sigma - sigma.T).max() > 1e-6 * scale:
        raise ValueError(f"sigma{which} is not symmetric: pass a covariance matrix")
    return mu, (sigma + sigma.T) / 2


def _psd_root_factor(sigma: np.ndarray, which: str) -> np.ndarray:
    """B (D, r) with B B^T = sigma: eigenvectors times sqrt(eigenvalues), null space dropped."""
    w, v = np.linalg.eigh(sigma)
    if w.min() < -1e-5 * max(w.max(), 1e-300):
        raise ValueError(f"sigma{which} is not positive semi-definite (eigenvalue {w.min():.3g}, largest "
                         f"{w.max():.3g}): pass a covariance matrix")
    w = _denoised(w)
    keep = w > 0
    return v[:, keep] * np.sqrt(w[keep])


def _denoised(w: np.ndarray, size: int | None = None) -> np.ndarray:
    """Eigenvalues below the round-off of ``eigh`` (size * eps * largest; size defaults to len(w)) set
    to 0 before a square root: sqrt amplifies noise near 0, and rank-deficient covariances have many
    such eigenvalues."""
    size = len(w) if size is None else size
    return np.where(w > size * np.finfo(np.float64).eps * max(w.max(), 0.0), w, 0.0)


def _sum_sqrt_psd(m: np.ndarray, what: str, why: str, size: int | None = None) -> float:
    """Sum of the square roots of the eigenvalues of the symmetric PSD matrix ``m`` (round-off below
    zero clipped by :func:`_denoised`; a clearly negative eigenvalue raises, saying ``why``)."""
    if m.size == 0:
        return 0.0
    w = np.linalg.eigvalsh((m + m.T) / 2)
    if w.min() < -1e-5 * max(w.max(), 1e-300):
        raise ValueError(f"{what} has a negative eigenvalue {w.min():.3g} (largest {w.max():.3g}): {why}")
    return float(np.sqrt(_denoised(w, size)).sum())


def _trace_sqrt_from_root(b1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr((S1 S2)^(1/2)) given B1 (D, r) with B1 B1^T = S1: S1 S2 = B1 (B1^T S2) has the nonzero
    eigenvalues of the r x r PSD matrix B1^T S2 B1. B1 depends on S1 only, so it can be cached."""
    return _sum_sqrt_psd(b1.T @ sigma2 @ b1, "S1^1/2 S2 S1^1/2", "sigma2 is not PSD")


def _trace_sqrt_low_rank(sigma1: np.ndarray, a2: np.ndarray) -> float:
    """Tr((S1 S2)^(1/2)) given A2 (D, M) with A2 A2^T = S2: S1 S2 = (S1 A2) A2^T has the nonzero
    eigenvalues of the M x M PSD matrix A2^T S1 A2, so the cost is O(D^2 M) and no D x D matrix is
    decomposed."""
    # Entries of A2^T S1 A2 are D-term sums: their round-off scales with D, not with M.
    return _sum_sqrt_psd(a2.T @ (sigma1 @ a2), "A2^T S1 A2", "sigma1 is not positive semi-definite",
                         size=max(a2.shape))


def trace_sqrt_product(sigma1, sigma2, method: str = "eig", eps: float = 1e-6) -> float:
    """Tr((S1 S2)^(1/2)) for positive semi-definite S1, S2.

    ``"eig"``: S1 S2 is similar to the symmetric PSD matrix M = S1^(1/2) S2 S1^(1/2), so the trace
    is the sum of the square roots of M's eigenvalues (two symmetric eigensolves; real by
    construction; 2-4x faster than ``sqrtm`` at 2048-d in ``benchmarks/fid.py`` on 2 CPU cores).
    ``"scipy"``: ``scipy.linalg.sqrtm(S1 S2)`` as in TTUR/pytorch-fid; if the product is singular
    enough to give non-finite values, ``eps`` * I is added to both (their offset). A complex result
    is accepted only when its imaginary diagonal is negligible, otherwise it raises.
    """
    if method == "eig":
        # S1^(1/2) S2 S1^(1/2) = V D^(1/2) (V^T S2 V) D^(1/2) V^T has the eigenvalues of B^T S2 B with
        # B = V D^(1/2) (r columns for rank r): one matmul fewer, and r x r when S1 is rank-deficient.
        return _trace_sqrt_from_root(_psd_root_factor(sigma1, "1"), sigma2)
    if method != "scipy":
        raise ValueError(f"method must be 'eig' or 'scipy', got {method!r}")
    from scipy import linalg

    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        log.warning("sqrtm(S1 S2) is not finite (singular product): adding %g * I to both covariances", eps)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        imag = np.abs(np.diagonal(covmean).imag).max()
        if imag > 1e-3 * max(1.0, abs(np.trace(covmean).real)):
            raise ValueError(f"sqrtm(S1 S2) has a large imaginary part ({imag:.3g}): the covariances are not "
                             "PSD or far too rank-deficient; use method='eig' or more images")
        covmean = covmean.real
    return float(np.trace(covmean))


def _combined(diff: np.ndarray, tr1: float, tr2: float, trace_sqrt: float) -> float:
    """||diff||^2 + Tr S1 + Tr S2 - 2 Tr((S1 S2)^(1/2)), round-off below 0 clipped, clearly negative raising."""
    value = diff @ diff + tr1 + tr2 - 2.0 * trace_sqrt
    # Round-off is relative to the terms that cancel (identical statistics give about -1e-13 from
    # sqrtm); the absolute 1e-9 floor covers (near-)zero covariances. Far below any FID worth reading.
    if value < -(1e-6 * (diff @ diff + abs(tr1) + abs(tr2) + 2.0 * abs(trace_sqrt)) + 1e-9):
        raise ValueError(f"Fréchet distance came out negative ({value:.6g}): the covariances are not PSD")
    return float(max(value, 0.0))


def frechet_distance(mu1, sigma1, mu2, sigma2, method: str = "eig", eps: float = 1e-6) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) between N(mu1, S1) and N(mu2, S2), as a float >= 0.

    Works for rank-deficient covariances (fewer images than dimensions). ``method`` picks how the
    matrix square root's trace is taken (:func:`trace_sqrt_product`); both agree to ~1e-9 relative
    on well-conditioned statistics. Round-off below zero is clipped to 0; a clearly negative
    value (non-PSD input) raises instead of being returned.
    """
    mu1, sigma1 = _checked(mu1, sigma1, "1")
    mu2, sigma2 = _checked(mu2, sigma2, "2")
    if mu1.shape != mu2.shape:
        raise ValueError(f"the two statistics have different sizes: {mu1.shape[0]} vs {mu2.shape[0]}")
    return _combined(mu1 - mu2, np.trace(sigma1), np.trace(sigma2), trace_sqrt_product(sigma1, sigma2, method, eps))


def _checked_activations(activations, dims: int) -> np.ndarray:
    x = np.asarray(activations, np.float64)
    x = x.reshape(len(x), -1) if x.ndim else x
    if x.ndim != 2 or len(x) < 2 or x.shape[1] != dims:
        raise ValueError(f"fake activations must be (M >= 2, {dims}) to match mu1 (the real statistics), "
                         f"got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("activations2 contain NaN or inf: the features (or the generator) diverged")
    return x


def _frechet_low_rank(mu1, sigma1, x) -> float:
    """:func:`frechet_distance_from_activations` on checked inputs with M < D (no checks, no copies)."""
    if np.diagonal(sigma1).min() < -1e-5 * max(np.abs(np.diagonal(sigma1)).max(), 1e-300):
        raise ValueError("sigma1 has a negative variance on its diagonal: it is not positive semi-definite")
    mu2 = x.mean(axis=0)
    a2 = (x - mu2).T / np.sqrt(len(x) - 1)  # (D, M), A2 A2^T = np.cov(x, rowvar=False)
    return _combined(mu1 - mu2, np.trace(sigma1), float(np.sum(a2 * a2)), _trace_sqrt_low_rank(sigma1, a2))


def frechet_distance_from_activations(mu1, sigma1, activations2) -> float:
    """:func:`frechet_distance` between N(mu1, sigma1) and the Gaussian fitted to ``activations2``
    (M, D) (mean and unbiased covariance, as :func:`activation_statistics`), computed exactly.

    With fewer samples than dimensions (M < D, e.g. 1000 generated images against 2048-d pool_3
    features) the fake covariance is S2 = A A^T with A = (X - mean)^T / sqrt(M - 1) (D, M), and the
    nonzero eigenvalues of S1 S2 are those of the M x M matrix A^T S1 A: O(D^2 M) work and no
    D x D eigendecomposition, instead of the seconds an ``eigh`` of a 2048 x 2048 matrix takes.
    With M >= D the covariance is formed and the eig path of :func:`frechet_distance` is used.
    sigma1 is checked for PSD on the samples' span (and its diagonal) only; use
    :func:`frechet_distance` to check it fully.
    """
    mu1, sigma1 = _checked(mu1, sigma1, "1")
    x = _checked_activations(activations2, mu1.shape[0])
    if len(x) >= x.shape[1]:
        return frechet_distance(mu1, sigma1, x.mean(axis=0), np.cov(x, rowvar=False))
    return _frechet_low_rank(mu1, sigma1, x)


class FrechetReference:
    """The real side of FID, checked once: :meth:`distance` of generated features (M, D) equals
    :func:`frechet_distance_from_activations` against (``mu``, ``sigma``). With M < D it takes the
    exact low-rank path; with M >= D the root factor of sigma (one D x D ``eigh``) is computed at
    the first call and reused at every later one (a training monitor evaluates many times)."""

    def __init__(self, mu, sigma):
        self.mu, self.sigma = _checked(mu, sigma, "1")
        self.root = None

    def distance(self, activations) -> float:
        x = _checked_activations(activations, self.mu.shape[0])
        if len(x) < x.shape[1]:
            return _frechet_low_rank(self.mu, self.sigma, x)
        mu2, sigma2 = _checked(x.mean(axis=0), np.cov(x, rowvar=False), "2")
        if self.root is None:
            self.root = _psd_root_factor(self.sigma, "1")  # eigh(S1): once, not per evaluation
        trace_sqrt = _trace_sqrt_from_root(self.root, sigma2)
        return _combined(self.mu - mu2, np.trace(self.sigma), np.trace(sigma2), trace_sqrt)

# -- Inception Score ----------------------------------------------------------------------------

def inception_score_from_probabilities(probs, splits: int = 10) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))) on each of ``splits`` equal parts of ``probs`` (N, classes);
    returns the mean and standard deviation over the splits (Salimans et al. 2016, sec. 4)."""
    p = np.asarray(probs, np.float64)
    if p.ndim != 2 or len(p) < splits:
        raise ValueError(f"probabilities must be (N >= splits={splits}, classes), got {p.shape}")
    scores = []
    for part in np.array_split(p, splits):
        py = part.mean(axis=0, keepdims=True)
        kl = np.where(part > 0, part * (np.log(np.clip(part, 1e-300, None)) - np.log(np.clip(py, 1e-300, None))), 0)
        scores.append(np.exp(kl.sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))
