"""FID and the Inception Score of image sources: arrays, ``tf.data`` datasets, image folders and
generators, streamed through a feature network (:mod:`ganhelpers.metrics.inception`) in batches, and the
real data's statistics cached as ``.npz`` (``mu``, ``sigma``, ``num_images``, ``extractor``).

Only the running mean and the running centred sum of outer products (float64) are kept, so 50k
images need 2048 x 2048 floats, not 50k x 2048. The mathematics is :mod:`ganhelpers.metrics.frechet`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from .frechet import (
    RunningStats,
    frechet_distance,
    frechet_distance_from_activations,
    inception_score_from_probabilities,
)
from .inception import Extractor, default_extractor

log = logging.getLogger(__name__)


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

    from ..data import image_size_of, list_images, read_image, warn_skipped

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


# -- statistics files ---------------------------------------------------------------------------

def save_statistics(path, mu, sigma, extractor: Extractor | str, num_images: int | None = None) -> Path:
    """Write ``mu``, ``sigma``, ``num_images`` and the extractor's name to ``path`` (.npz, atomically)."""
    import io

    from ..experiment import atomic_write

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

    ``extractor`` defaults to :func:`ganhelpers.metrics.inception.default_extractor` (ImageNet Keras
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
