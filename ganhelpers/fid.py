"""Fréchet Inception Distance (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule
Converge to a Local Nash Equilibrium", sec. 3) and Inception Score (Salimans et al. 2016, sec. 4).

FID fits a Gaussian to the 2048-d Inception pool_3 features of real and of generated images and
measures the Fréchet distance between the two Gaussians::

    FID = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))

Lower is better; 0 means identical statistics. Which network extracts the features decides which
numbers you may compare (see :mod:`ganhelpers.inception`): the 2015 FID graph gives values
comparable with published FIDs; Keras's ImageNet InceptionV3 gives self-consistent values for
ranking your own models; random weights only test the plumbing (and say so wherever printed).

Statistics are streamed: images flow through ``tf.data`` in batches and only the running mean and
the running centred sum of outer products (float64) are kept, so 50k images need 2048 x 2048
floats, not 50k x 2048. Real-data statistics are cached as ``.npz`` (``mu``, ``sigma``,
``num_images``, ``extractor``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from . import summaries
from .inception import (
    INCEPTION_2015_URL,
    RANDOM_NOTE,
    Extractor,
    Inception2015Graph,
    KerasInception,
    default_extractor,
    download_2015_graph,
    extract_2015_graph,
    inception_extractor,
)

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


# -- image sources -> tf.data -------------------------------------------------------------------

def _is_generator_model(source) -> bool:
    return hasattr(source, "generate") or (isinstance(source, keras.Model) and not isinstance(source, Extractor))


def _generated(model, num_samples: int, batch_size: int, seed: int = 0):
    """Yield ``num_samples`` images from a GAN (``generate``) or a bare generator keras.Model.

    A GAN's checkpointed noise RNG is restored afterwards, so evaluating FID does not change the
    noise that training draws next.
    """
    rng = getattr(model, "rng", None)
    state = rng.state.numpy() if isinstance(rng, tf.random.Generator) else None
    noise_rng = np.random.default_rng(seed)
    try:
        done = 0
        while done < num_samples:
            n = min(batch_size, num_samples - done)
            if hasattr(model, "generate"):
                batch = model.generate(n)
            else:
                noise = noise_rng.standard_normal((n, *model.input_shape[1:])).astype("float32")
                batch = model(noise, training=False)
            batch = np.asarray(batch)
            if batch.dtype != np.uint8:
                batch = batch.astype(np.float32)
            done += n
            yield batch
    finally:
        if state is not None:
            rng.state.assign(state)


def _folder(folder, size: int = 299):
    """(dataset of single uint8 RGB images, count). A folder whose images all share one size is
    fed at that size; mixed sizes are each resized to ``size`` (Pillow bilinear, antialiased).
    Files are decoded as :mod:`ganhelpers.data` does (EXIF orientation, 16-bit and float images
    scaled to 8 bits); files that are not images (empty, text, a decompression bomb) are skipped with
    one warning naming them, and a folder without any readable image is a ``ValueError``."""
    from PIL import Image

    from .data import image_size_of, list_images, read_image, warn_skipped

    paths, sizes, bad = [], set(), []
    for p in list_images(folder):
        try:
            sizes.add(image_size_of(p))
            paths.append(p)
        except Exception as err:  # noqa: BLE001 - any decoder error means "skip this file"
            bad.append(f"{p} ({type(err).__name__}: {err})")
    warn_skipped(bad, len(paths) + len(bad))
    if not paths:
        raise ValueError(f"none of the {len(bad)} image files under {folder} could be read (first: {bad[0]})")
    (w, h) = next(iter(sizes)) if len(sizes) == 1 else (size, size)

    def images():
        for p in paths:
            try:
                arr = read_image(p, 3)
            except Exception as err:  # noqa: BLE001 - a header that read but pixels that do not
                log.warning("skipping unreadable image %s (%s: %s)", p, type(err).__name__, err)
                continue
            if arr.shape[:2] != (h, w):
                arr = np.asarray(Image.fromarray(arr).resize((w, h), Image.Resampling.BILINEAR), dtype=np.uint8)
            yield arr

    spec = tf.TensorSpec((h, w, 3), tf.uint8)
    return tf.data.Dataset.from_generator(images, output_signature=spec), len(paths)


def image_batches(source, batch_size: int = 50, num_samples: int | None = None):
    """Any image source -> (raw batches (uint8 or float [-1, 1]), count or None). The batches are a
    ``tf.data.Dataset`` except for generator models (a Python iterator of tensors).

    ``source``: an array (N, H, W, C); a ``tf.data.Dataset`` of images or batches (``(x, y)``
    elements keep ``x``); a folder of image files; a GAN/generator model (needs ``num_samples``).
    """
    count = None
    if isinstance(source, (str, os.PathLike)):
        if not Path(source).is_dir():
            raise ValueError(f"{source} is not a folder of images (an .npz of statistics is only accepted "
                             "by fid() and the CLI)")
        ds, count = _folder(source)
        ds = ds.batch(batch_size)
    elif isinstance(source, tf.data.Dataset):
        ds = source
        if isinstance(ds.element_spec, (tuple, list)):
            ds = ds.map(lambda *items: items[0])
        elif isinstance(ds.element_spec, dict):
            raise ValueError("a dataset of dicts is ambiguous: map it to images first")
        if ds.element_spec.shape.rank == 3:
            ds = ds.batch(batch_size)
    elif _is_generator_model(source):
        if not num_samples:
            raise ValueError("a generator model needs num_samples (how many images to draw)")
        # Plain Python, not tf.data.from_generator: the model runs TF ops of its own.
        return (_check_range(tf.convert_to_tensor(b)) for b in _generated(source, num_samples, batch_size)), \
            num_samples
    else:
        arr = np.asarray(source)
        if arr.ndim != 4:
            raise ValueError(f"images must be (N, H, W, C), got shape {arr.shape}")
        if arr.dtype != np.uint8:
            arr = arr.astype(np.float32, copy=False)
        stop = len(arr) if num_samples is None else min(num_samples, len(arr))
        spec = tf.TensorSpec((None, *arr.shape[1:]), tf.as_dtype(arr.dtype))
        ds = tf.data.Dataset.from_generator(
            lambda: (arr[i:min(i + batch_size, stop)] for i in range(0, stop, batch_size)), output_signature=spec)
        count = stop
    if num_samples is not None and (count is None or count > num_samples):
        ds = ds.unbatch().take(num_samples).batch(batch_size)
        count = num_samples if count is None else min(count, num_samples)
    return ds.map(_check_range), count


def _check_range(x):
    if x.dtype == tf.uint8:
        return x
    x = tf.cast(x, tf.float32)
    msg = "float images must lie in [-1, 1] (or pass uint8 0..255); rescale with x / 127.5 - 1"
    with tf.control_dependencies([tf.debugging.assert_less_equal(tf.reduce_max(x), 1.001, message=msg),
                                  tf.debugging.assert_greater_equal(tf.reduce_min(x), -1.001, message=msg)]):
        return tf.identity(x)


def _preprocessed(source, extractor: Extractor, batch_size: int, num_samples: int | None):
    ds, count = image_batches(source, batch_size, num_samples)
    if not isinstance(ds, tf.data.Dataset):
        return (extractor.preprocess(b) for b in ds), count
    return ds.map(extractor.preprocess, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE), count


def activation_statistics(images, extractor: Extractor | None = None, batch_size: int = 50,
                          num_samples: int | None = None, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(mu (2048,), sigma (2048, 2048)) in float64 of ``extractor`` features over ``images``
    (anything :func:`image_batches` accepts), streamed batch by batch."""
    extractor = extractor or default_extractor()
    ds, count = _preprocessed(images, extractor, batch_size, num_samples)
    bar = keras.utils.Progbar(count, unit_name="image") if progress else None
    stats = RunningStats()
    for batch in ds:
        stats.update(extractor.features(batch))
        if bar is not None:
            bar.add(int(batch.shape[0]))
    return stats.result()


def activations(images, extractor: Extractor | None = None, batch_size: int = 50,
                num_samples: int | None = None) -> np.ndarray:
    """All features (N, 2048) float32: for small sets (analysis, tests); FID uses the statistics."""
    extractor = extractor or default_extractor()
    ds, _ = _preprocessed(images, extractor, batch_size, num_samples)
    return np.concatenate([extractor.features(b) for b in ds])


def _fake_features(images, extractor: Extractor, batch_size: int, num_samples: int | None, progress: bool = False):
    """(activations (M, D) float32, None) when fewer images than feature dimensions arrive (kept for
    the low-rank path), else (None, (mu, sigma)) streamed as in :func:`activation_statistics`
    (identical numbers). At most D rows are held, so 50k images still need no 50k x D array."""
    ds, count = _preprocessed(images, extractor, batch_size, num_samples)
    bar = keras.utils.Progbar(count, unit_name="image") if progress else None
    rows, stats = [], None
    for batch in ds:
        f = np.asarray(extractor.features(batch))
        if stats is not None:
            stats.update(f)
        else:
            rows.append(f)
            if sum(map(len, rows)) >= f.reshape(len(f), -1).shape[1]:  # M >= D: full rank possible
                stats = RunningStats()
                for r in rows:
                    stats.update(r)
                rows = None
        if bar is not None:
            bar.add(int(batch.shape[0]))
    if stats is not None:
        return None, stats.result()
    if sum(map(len, rows)) < 2:
        raise ValueError(f"need at least 2 images for a covariance, got {sum(map(len, rows))}")
    return np.concatenate(rows), None


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


# -- statistics files ---------------------------------------------------------------------------

def save_statistics(path, mu, sigma, extractor: Extractor | str, num_images: int | None = None) -> Path:
    """Write ``mu``, ``sigma``, ``num_images`` and the extractor's name to ``path`` (.npz, atomically)."""
    import io

    from .experiment import atomic_write

    buf = io.BytesIO()
    np.savez(buf, mu=np.asarray(mu, np.float64), sigma=np.asarray(sigma, np.float64),
             num_images=np.int64(num_images or -1), extractor=np.str_(getattr(extractor, "name", extractor)))
    return atomic_write(path, buf.getvalue())


def load_statistics(path) -> tuple[np.ndarray, np.ndarray, str | None]:
    """(mu, sigma, extractor name or None) from an .npz with ``mu`` and ``sigma`` (TTUR's format too)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"statistics file {path} not found")
    with np.load(path, allow_pickle=False) as z:
        if "mu" not in z.files or "sigma" not in z.files:
            raise ValueError(f"{path} has no 'mu' and 'sigma' arrays (found {z.files})")
        name = str(z["extractor"]) if "extractor" in z.files else None
        return z["mu"].astype(np.float64), z["sigma"].astype(np.float64), name


def statistics_cache_path(cache_dir, dataset: str, image_size: int, extractor: Extractor) -> Path:
    """``<cache_dir>/fid_stats_<dataset>_<size>px_<extractor>.npz``: one file per data and network."""
    return Path(cache_dir) / f"fid_stats_{dataset}_{image_size}px_{extractor.name}.npz"


def real_statistics(images, extractor: Extractor | None = None, cache_path=None, batch_size: int = 50,
                    num_samples: int | None = None, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Statistics of the real data, loaded from ``cache_path`` if it exists, else computed and saved.

    A cache written by a different extractor raises (its numbers would not be comparable).
    """
    extractor = extractor or default_extractor()
    if cache_path is not None and Path(cache_path).is_file():
        mu, sigma, name = load_statistics(cache_path)
        if name is not None and name != extractor.name:
            raise ValueError(f"{cache_path} holds statistics from {name}, not {extractor.name}: delete it or "
                             "use statistics_cache_path(...) to keep one file per extractor")
        return mu, sigma
    mu, sigma = activation_statistics(images, extractor, batch_size, num_samples, progress)
    if cache_path is not None:
        count = len(images) if isinstance(images, np.ndarray) else None
        save_statistics(cache_path, mu, sigma, extractor, count if num_samples is None else num_samples)
        log.info("saved real-data FID statistics to %s", cache_path)
    return mu, sigma


def _is_statistics(source) -> bool:
    return (isinstance(source, tuple) and len(source) == 2) or \
        (isinstance(source, (str, os.PathLike)) and str(source).endswith(".npz"))


def _statistics_of(source, extractor_fn, num_samples, batch_size, progress):
    if isinstance(source, tuple) and len(source) == 2:
        return np.asarray(source[0]), np.asarray(source[1]), None
    if isinstance(source, (str, os.PathLike)) and str(source).endswith(".npz"):
        return load_statistics(source)
    extractor = extractor_fn()
    mu, sigma = activation_statistics(source, extractor, batch_size, num_samples, progress)
    return mu, sigma, extractor.name


def fid(real, fake, extractor: Extractor | None = None, num_samples: int | None = None, batch_size: int = 50,
        method: str = "eig", progress: bool = False) -> float:
    """FID between two sources: arrays, ``tf.data`` datasets, image folders, ``.npz`` statistics,
    ``(mu, sigma)`` tuples, or a GAN / generator model. ``num_samples`` limits (or, for a model,
    sets) the number of *fake* images; the real source is used in full. With fewer images than
    2048 the covariance is rank-deficient and FID is biased upwards: compare FIDs at equal counts
    (the usual protocol is 50k generated images; Heusel et al. 2017 warn below 10k).

    ``extractor`` defaults to :func:`ganhelpers.inception.default_extractor` (ImageNet Keras
    InceptionV3, or ``$GANHELPERS_FID_WEIGHTS``); it is only built when images must be featurised.
    With ``method="eig"`` and fewer fake images than feature dimensions, the fake activations are
    kept and :func:`frechet_distance_from_activations` (exact, low-rank) is used.
    """
    chosen = []

    def extractor_fn():
        if not chosen:
            chosen.append(extractor or default_extractor())
        return chosen[0]

    mu1, s1, name1 = _statistics_of(real, extractor_fn, None, batch_size, progress)
    if method == "eig" and not _is_statistics(fake):
        feats, stats = _fake_features(fake, extractor_fn(), batch_size, num_samples, progress)
        name2 = extractor_fn().name
    else:
        feats, (mu2, s2, name2) = None, _statistics_of(fake, extractor_fn, num_samples, batch_size, progress)
        stats = (mu2, s2)
    if name1 and name2 and name1 != name2:
        raise ValueError(f"statistics from different networks ({name1} vs {name2}) are not comparable")
    if feats is not None:
        return frechet_distance_from_activations(mu1, s1, feats)
    return frechet_distance(mu1, s1, *stats, method=method)


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


def inception_score(images, splits: int = 10, extractor: Extractor | None = None, classifier=None,
                    batch_size: int = 50, num_samples: int | None = None) -> tuple[float, float]:
    """Inception Score (mean, std over ``splits``) of ``images`` (any :func:`image_batches` source).

    Uses the extractor's ImageNet classifier (1000-way Keras softmax or the 2015 graph's 1008-way),
    or ``classifier``: any callable mapping a batch in [-1, 1] to class probabilities (e.g. a
    digit classifier for MNIST). Higher is better; at most the number of classes.
    """
    if classifier is not None:
        ds, _ = image_batches(images, batch_size, num_samples)
        probs = [np.asarray(classifier(_to_unit(b))) for b in ds]
    else:
        extractor = extractor or default_extractor()
        ds, _ = _preprocessed(images, extractor, batch_size, num_samples)
        probs = [extractor.probabilities(b) for b in ds]
    return inception_score_from_probabilities(np.concatenate(probs), splits)


def _to_unit(batch):
    return tf.cast(batch, tf.float32) / 127.5 - 1.0 if batch.dtype == tf.uint8 else batch


# -- training callback --------------------------------------------------------------------------

class FIDMonitor(keras.callbacks.Callback):
    """Every ``every_n_epochs`` epochs: FID of ``num_samples`` generated images against
    ``real_stats`` (a (mu, sigma) tuple or an .npz path).

    Logs the scalar ``metrics/fid`` to TensorBoard (the run's writer, step = epochs completed), adds ``fid``
    to the epoch logs, and merges into ``results.json``: ``fid`` (latest), ``fid_history``
    ([[epochs completed, value], ...], kept across resumes), ``fid_extractor`` and ``fid_note``
    (the random-weights warning, else ""). Samples come from ``model.generate(n)`` or
    ``model.generator(model.sample_noise(n))``; the model's noise RNG is restored afterwards, so
    monitoring does not change training. Pass ``extractor`` (e.g. ``inception_extractor(None)``
    offline); the default is :func:`~ganhelpers.inception.default_extractor`.

    Speed: with ``num_samples`` below the feature size (2048) the exact low-rank path of
    :func:`frechet_distance_from_activations` is used (no 2048 x 2048 eigendecomposition); otherwise
    the real side's root factor is computed once and reused at every evaluation.
    """

    def __init__(self, run, real_stats, every_n_epochs: int = 1, num_samples: int = 1000,
                 extractor: Extractor | None = None, batch_size: int = 50):
        super().__init__()
        if every_n_epochs < 1 or num_samples < 2:
            raise ValueError(f"every_n_epochs must be >= 1 and num_samples >= 2, got {every_n_epochs}, {num_samples}")
        self.run, self.real_stats = run, real_stats
        self.every_n_epochs, self.num_samples, self.batch_size = every_n_epochs, num_samples, batch_size
        self.extractor = extractor
        self.history: list[list] = []
        self._real = None  # (real_stats it was made from, checked mu1, checked sigma1, root factor or None)

    def _load_real(self):
        self.extractor = self.extractor or default_extractor()
        if isinstance(self.real_stats, (str, os.PathLike)):
            mu, sigma, name = load_statistics(self.real_stats)
            if name is not None and name != self.extractor.name:
                raise ValueError(f"real statistics {self.real_stats} come from {name}, but the monitor uses "
                                 f"{self.extractor.name}: recompute them with real_statistics(...)")
            self.real_stats = (mu, sigma)

    def on_train_begin(self, logs=None):
        self._load_real()
        self.history = [list(h) for h in self.run.results().get("fid_history", [])]
        self._started = True

    def _sample_source(self):
        model = self.model
        if hasattr(model, "generate"):
            return model
        return _NoiseGenerator(model)

    def _real_side(self):
        """(mu1, sigma1) checked once per ``real_stats`` object (replacing it invalidates the cache)."""
        self._load_real()
        if self._real is None or self._real[0] is not self.real_stats:
            self._real = [self.real_stats, *_checked(*self.real_stats, "1"), None]
        return self._real

    def compute(self) -> float:
        """FID of ``num_samples`` fresh samples: the same value as :func:`frechet_distance` on their
        statistics, through the low-rank path (M < D) or the cached root factor of sigma1 (M >= D)."""
        real = self._real_side()
        feats, stats = _fake_features(self._sample_source(), self.extractor, self.batch_size, self.num_samples)
        mu1, sigma1 = real[1], real[2]
        if feats is not None:
            x = _checked_activations(feats, mu1.shape[0])
            return _frechet_low_rank(mu1, sigma1, x)
        mu2, sigma2 = _checked(*stats, "2")
        if mu2.shape != mu1.shape:
            raise ValueError(f"real statistics are {mu1.shape[0]}-d but {self.extractor.name} gives "
                             f"{mu2.shape[0]}-d features: use the extractor that made them")
        if real[3] is None:
            real[3] = _psd_root_factor(sigma1, "1")  # eigh(S1): once per monitor, not per evaluation
        return _combined(mu1 - mu2, np.trace(sigma1), np.trace(sigma2), _trace_sqrt_from_root(real[3], sigma2))

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_n_epochs:
            return
        if not getattr(self, "_started", False):
            self.on_train_begin()
        value = self.compute()
        step = int(self.model.step.numpy()) if getattr(self, "model", None) is not None else epoch + 1
        summaries.scalars(self.run, {"metrics/fid": value}, step)
        summaries.flush(self.run)
        self.history = [h for h in self.history if h[0] != epoch + 1] + [[epoch + 1, value]]
        results = {"fid": value, "fid_history": self.history, "fid_extractor": self.extractor.name,
                   "fid_note": self.extractor.note}  # "" unless the numbers are plumbing only
        self.run.update_results(results)
        if logs is not None:
            logs["fid"] = value
        log.info("epoch %d: FID %s", epoch + 1, self.extractor.label(value))

    def on_train_end(self, logs=None):
        self._started = False


class _NoiseGenerator:
    """A model exposing ``generator`` + ``sample_noise`` seen through the ``generate(n)`` interface."""

    def __init__(self, model):
        self.model = model
        self.rng = getattr(model, "rng", None)

    def generate(self, n):
        return self.model.generator(self.model.sample_noise(n), training=False)


# -- command line -------------------------------------------------------------------------------

def cli_main(args) -> int:
    """``python -m ganhelpers fid PATH_A PATH_B [--weights imagenet|none|FILE] [--batch B]``."""
    for path in (args.path_a, args.path_b):
        if not Path(path).exists():
            raise SystemExit(f"{path} does not exist: pass a folder of images or an .npz of statistics")
    extractor = None
    needs_images = not (str(args.path_a).endswith(".npz") and str(args.path_b).endswith(".npz"))
    if needs_images:
        extractor = inception_extractor(args.weights)
        print(f"extractor: {extractor.name} {extractor.note}".rstrip())
    value = fid(args.path_a, args.path_b, extractor=extractor, batch_size=args.batch, progress=True)
    note = extractor.note if extractor is not None else ""
    print(f"FID: {value:.6g} {note}".rstrip())
    return 0


__all__ = ["Extractor", "KerasInception", "Inception2015Graph", "inception_extractor", "default_extractor",
           "download_2015_graph", "extract_2015_graph", "INCEPTION_2015_URL", "RANDOM_NOTE", "RunningStats",
           "image_batches", "activation_statistics", "activations", "trace_sqrt_product", "frechet_distance",
           "frechet_distance_from_activations",
           "save_statistics", "load_statistics", "statistics_cache_path", "real_statistics", "fid",
           "inception_score", "inception_score_from_probabilities", "FIDMonitor", "cli_main"]
