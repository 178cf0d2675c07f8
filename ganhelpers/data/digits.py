"""scikit-learn's 1,797 8x8 digits, upscaled: the offline default every preset can fall back on."""


from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

def digits(image_size: int = 32, channels: int = 1) -> dict:
    """scikit-learn's 1,797 real 8x8 handwritten digit scans (UCI), upsampled to ``image_size``.

    Ships inside scikit-learn, so it needs no network: the offline default of the demo and every
    smoke preset. Returns ``{"images": uint8 (1797, S, S, channels), "labels": int (1797,)}``;
    white digits on black, like MNIST.
    """
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    raw = np.clip(np.rint(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    out = np.stack([np.asarray(Image.fromarray(im).resize((image_size, image_size), Image.Resampling.BICUBIC))
                    for im in raw])[..., None]
    if channels == 3:
        out = np.repeat(out, 3, axis=-1)
    elif channels != 1:
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    return {"images": out, "labels": d.target.astype(np.int64)}
