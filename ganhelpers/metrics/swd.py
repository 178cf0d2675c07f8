"""Sliced Wasserstein distance on Laplacian-pyramid patches (Karras et al. 2018, "Progressive Growing
of GANs", sec. 5): do local image patches match, scale by scale (pixels, no network)? Lower is better."""

from __future__ import annotations

import numpy as np

from .checks import image_array

SWD_MIN_SIZE = 16  # the PGGAN pyramid's coarsest level

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
    real = image_array(real_images, "SWD", "real", 2, min_size)
    fake = image_array(fake_images, "SWD", "fake", 2, min_size)
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
