"""``tf.data`` pipelines: uint8 or float image arrays to shuffled float32 batches in [-1, 1]."""


from __future__ import annotations

import logging

import numpy as np

from .images import load_folder

log = logging.getLogger(__name__)

def to_float(images_uint8):
    """uint8 [0, 255] -> float32 [-1, 1] (works on numpy and on tensors)."""
    return images_uint8 / 127.5 - 1.0 if isinstance(images_uint8, np.ndarray) else \
        _tf().cast(images_uint8, _tf().float32) / 127.5 - 1.0


def _tf():
    import tensorflow as tf

    return tf


def make_dataset(images, batch_size: int, labels=None, shuffle: bool = True, seed: int = 0,
                 repeat: bool = False, drop_remainder: bool = True):
    """uint8 or float images (N, H, W, C) -> ``tf.data.Dataset`` of float32 batches in [-1, 1].

    uint8 stays uint8 in memory (4x smaller) and is scaled per batch. Shuffling reshuffles every
    epoch; ``drop_remainder`` keeps every batch the same size (no retracing, fair BatchNorm).
    """
    tf = _tf()
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must be (N, H, W, C), got shape {images.shape}")
    if len(images) < batch_size and drop_remainder:
        raise ValueError(f"only {len(images)} images for batch_size={batch_size}: lower the batch size")
    items = images if labels is None else (images, np.asarray(labels))
    ds = tf.data.Dataset.from_tensor_slices(items)
    if shuffle:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)

    def scale(x, *rest):
        x = to_float(x) if x.dtype == tf.uint8 else tf.cast(x, tf.float32)
        return (x, *rest) if rest else x

    return ds.map(scale, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def image_folder(folder, image_size: int = 64, batch_size: int = 64, channels: int = 3, crop: str = "center",
                 shuffle: bool = True, seed: int = 0, cache: bool | str = True):
    """A folder of image files -> batched ``tf.data.Dataset`` in [-1, 1] (see :func:`load_folder`)."""
    return make_dataset(load_folder(folder, image_size, channels, crop, cache), batch_size,
                        shuffle=shuffle, seed=seed)
