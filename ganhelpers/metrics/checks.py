"""Input checks shared by the metric modules: each error names the metric and what it needs."""

from __future__ import annotations

import numpy as np


def feature_array(x, metric: str, side: str, minimum: int) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 2:
        raise ValueError(f"{metric}: {side} features must be a 2-d array (N, D), got shape {a.shape}")
    if len(a) < minimum:
        raise ValueError(f"{metric} needs at least {minimum} {side} samples, got {len(a)}")
    if not np.isfinite(a).all():
        raise ValueError(f"{metric}: {side} features contain NaN or inf (the generator or the feature network "
                         "diverged); check the images")
    return a


def feature_pair(real, fake, metric: str, minimum: int) -> tuple[np.ndarray, np.ndarray]:
    real = feature_array(real, metric, "real", minimum)
    fake = feature_array(fake, metric, "fake", minimum)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"{metric}: real and fake features differ in width ({real.shape[1]} vs {fake.shape[1]}): "
                         "use the same network for both")
    return real, fake


def image_array(images, metric: str, side: str, minimum: int, min_size: int) -> np.ndarray:
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
