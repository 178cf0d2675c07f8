"""MS-SSIM (Wang, Simoncelli & Bovik 2003) as a diversity measure of generated images (Odena et al.
2017; Karras et al. 2018): near 1 is mode collapse, lower is more diverse; compare with the real
data's value."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from .checks import image_array

#: MS-SSIM's per-scale exponents (Wang et al. 2003, sec. 3, calibrated on human ratings), finest first
WANG_POWER_FACTORS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


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
    a = image_array(a, "MS-SSIM", "first", 1, filter_size)
    b = image_array(b, "MS-SSIM", "second", 1, filter_size)
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
    x = image_array(images, "MS-SSIM", "generated", 2, filter_size)
    rng = np.random.default_rng(seed)
    i = rng.integers(0, len(x), num_pairs)
    j = (i + rng.integers(1, len(x), num_pairs)) % len(x)  # j != i
    return float(ms_ssim_between(x[i], x[j], filter_size).mean())
