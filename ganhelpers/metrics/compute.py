"""Any set of metrics at once, by name, from one set of features and images, and the real features'
cache: what :class:`ganhelpers.metrics.monitor.MetricsMonitor` and ``python -m ganhelpers eval`` use.

The metrics themselves live one family per module: :mod:`.frechet` (FID, Inception Score),
:mod:`.mmd` (KID), :mod:`.prdc` (precision, recall, density, coverage), :mod:`.swd`, :mod:`.msssim`.
"""

from __future__ import annotations

import io
import logging
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .checks import feature_array
from .frechet import FrechetReference, frechet_distance
from .mmd import kid
from .msssim import ms_ssim
from .prdc import PR_METRICS, precision_recall
from .swd import sliced_wasserstein

log = logging.getLogger(__name__)

#: every metric name :func:`compute_metrics` and the monitor understand
METRICS = ("fid", "kid", "precision", "recall", "density", "coverage", "swd", "msssim")
FEATURE_METRICS = ("fid", "kid", "precision", "recall", "density", "coverage")
IMAGE_METRICS = ("swd", "msssim")
#: which way is better, for ranking runs by any metric (MS-SSIM: lower = more diverse)
LOWER_IS_BETTER = {"fid": True, "kid": True, "precision": False, "recall": False, "density": False,
                   "coverage": False, "swd": True, "msssim": True}


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
    ``(mu, sigma)`` statistics for FID only (``real_stats`` may also be a :class:`FrechetReference`,
    which keeps its root factor between calls). Returns a flat dict: each metric's value plus
    ``kid_std``, ``swd_levels`` ({side: distance}) and ``msssim_real`` where computed."""
    out: dict = {}
    names = expand_metric_names(names)

    def need(what, value, metric):
        if value is None:
            raise ValueError(f"{metric} needs {what}")
        return value

    if "fid" in names:
        if real_stats is None:
            rf = feature_array(need("real features or statistics", real_features, "FID"), "FID", "real", 2)
            real_stats = (rf.mean(axis=0, dtype=np.float64), np.cov(rf.astype(np.float64), rowvar=False))
        reference = real_stats if isinstance(real_stats, FrechetReference) else FrechetReference(*real_stats)
        if fake_stats is not None:
            out["fid"] = frechet_distance(reference.mu, reference.sigma, *fake_stats)
        else:
            ff = feature_array(need("fake features or statistics", fake_features, "FID"), "FID", "fake", 2)
            out["fid"] = reference.distance(ff)
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
    from ..experiment import atomic_write

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
