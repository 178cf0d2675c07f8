"""Feature networks behind one interface, for the metrics of :mod:`ganhelpers.metrics` and FID.

Every extractor is a :class:`ganhelpers.metrics.inception.Extractor`: ``extractor(images)`` maps a batch
(uint8 [0, 255] or float [-1, 1], NHWC) to (N, D) float32 features; ``name`` identifies the network
in caches, results and printed lines, ``dims`` is D and ``note`` warns when numbers are plumbing only.

``feature_extractor(name)`` builds one by name (once per process):

``"inception"``
    Keras's ImageNet InceptionV3 pool features (2048-d; see :mod:`ganhelpers.metrics.inception`; a path to
    the 2015 FID graph gives published-comparable FIDs). Needs the weights download.
``"digits"``
    The penultimate layer (4096-d at 32x32: the flattened last pooled convolution) of the digit
    classifier of :func:`ganhelpers.evaluate.digit_classifier`, trained on scikit-learn's real
    digits and cached on disk with the datasets (:func:`ganhelpers.data.networks_dir`). Offline, and
    meaningful for digit-like data: the network behind rankable offline numbers. Images are converted
    to its channels and resized to its size.
``"none"``
    InceptionV3 with random weights: runs offline, tests the plumbing, ranks nothing (says so).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from .inception import Extractor, inception_extractor

FEATURE_NETWORKS = ("inception", "digits", "none")

_DIGITS: dict[str, "DigitFeatures"] = {}


class DigitFeatures(Extractor):
    """The penultimate activations of a trained digit classifier (a ``keras.Sequential`` whose last
    layer is the softmax ``Dense``), plus its class probabilities (``probabilities``).

    ``accuracy`` (held-out accuracy of the classifier) is recorded in :attr:`description`.
    """

    has_classifier = True

    def __init__(self, classifier, accuracy: float | None = None, name: str | None = None):
        self.classifier = classifier
        _, height, width, channels = classifier.input_shape
        self.image_size, self.channels = (int(height), int(width)), int(channels)
        self.accuracy = accuracy
        self.name = name or f"digit-cnn-{height}px-{channels}ch"
        head = classifier.layers[-1]
        body = classifier.layers[:-1]
        self.dims = int(np.prod(head.input.shape[1:]))

        def run(x):
            for layer in body:  # RandomTranslation and Dropout are identities at inference
                x = layer(x, training=False)
            return x, head(x, training=False)

        self._run = tf.function(run, reduce_retracing=True)

    @property
    def description(self) -> str:
        held_out = "" if self.accuracy is None else f", {self.accuracy:.1%} on held-out real digits"
        return f"{self.name} ({self.dims}-d penultimate layer of the digit classifier{held_out})"

    def preprocess(self, images) -> tf.Tensor:
        """uint8 or [-1, 1] NHWC -> float32 [-1, 1] at the classifier's size and channels."""
        x = tf.convert_to_tensor(images)
        if x.shape.rank != 4:
            raise ValueError(f"images must be a batch (N, H, W, C), got shape {x.shape}")
        x = tf.cast(x, tf.float32) / 127.5 - 1.0 if x.dtype == tf.uint8 else tf.cast(x, tf.float32)
        if x.shape[-1] == 3 and self.channels == 1:
            x = tf.reduce_mean(x, axis=-1, keepdims=True)
        elif x.shape[-1] == 1 and self.channels == 3:
            x = tf.repeat(x, 3, axis=-1)
        elif x.shape[-1] != self.channels:
            raise ValueError(f"images must have 1 or 3 channels, got shape {x.shape}")
        if tuple(x.shape[1:3]) != self.image_size:
            x = tf.image.resize(x, self.image_size, method="bilinear", antialias=True)
        return x


def digit_features(image_size: int = 32, channels: int = 1, epochs: int = 20, seed: int = 0,
                   cache_dir=None, data_dir=None) -> DigitFeatures:
    """The digit-features network at ``image_size`` x ``image_size`` x ``channels`` (built once per
    process; the classifier is trained once and cached on disk by
    :func:`ganhelpers.evaluate.cached_digit_classifier` in ``cache_dir``, default
    ``<data_dir>/models``: :func:`ganhelpers.data.networks_dir`). Any image size and 1 or 3 channels
    go in: images are resized and converted to the network's."""
    from ..data import networks_dir
    from ..evaluate import cached_digit_classifier, digit_classifier_cache_path

    cache_dir = networks_dir(data_dir) if cache_dir is None else cache_dir
    key = str(digit_classifier_cache_path(cache_dir, image_size, channels, epochs, seed))
    if key not in _DIGITS:
        classifier, accuracy = cached_digit_classifier(cache_dir, image_size, channels, epochs, seed)
        _DIGITS[key] = DigitFeatures(classifier, accuracy,
                                     name=f"digit-cnn-{image_size}px-{channels}ch-e{epochs}-s{seed}")
    return _DIGITS[key]


def feature_extractor(name="inception", weights=None, cache_dir=None, data_dir=None, **digit_options) -> Extractor:
    """The feature network called ``name``: ``"inception"`` (``weights``: ``"imagenet"`` by default,
    or a 2015-graph / Keras weights file), ``"digits"`` (``digit_options``: image_size, channels,
    epochs, seed; cached in ``cache_dir``, default ``<data_dir>/models``) or ``"none"`` (random
    InceptionV3). An :class:`Extractor` is returned as is."""
    if isinstance(name, Extractor):
        return name
    if name == "digits":
        return digit_features(cache_dir=cache_dir, data_dir=data_dir, **digit_options)
    if name == "none":
        return inception_extractor(None)
    if name == "inception":
        try:
            return inception_extractor(weights or "imagenet")
        except Exception as err:  # noqa: BLE001 - keras' download raises several kinds
            raise RuntimeError(f"could not build the Inception network ({err}); offline, use the digit features "
                               "(--features digits / feature_extractor('digits')) or random weights ('none'), or "
                               "pass a local weights file") from err
    raise ValueError(f"unknown feature network {name!r}; choose one of {FEATURE_NETWORKS}")


def describe(extractor: Extractor) -> str:
    """One line naming the network (and its warning, if its numbers are plumbing only)."""
    text = getattr(extractor, "description", None) or f"{extractor.name} ({extractor.dims}-d)"
    return f"{text} {extractor.note}".rstrip()


def extract(images, extractor: Extractor, batch_size: int = 200) -> np.ndarray:
    """(N, D) float32 features of an image array (N, H, W, C), uint8 or float in [-1, 1]."""
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must be (N, H, W, C), got shape {images.shape}")
    if images.dtype != np.uint8:
        images = images.astype(np.float32, copy=False)
        if images.size and (images.min() < -1.001 or images.max() > 1.001):
            raise ValueError("float images must lie in [-1, 1] (or pass uint8 0..255); rescale with x / 127.5 - 1")
    parts = [extractor(images[i:i + batch_size]) for i in range(0, len(images), batch_size)]
    if not parts:
        return np.zeros((0, extractor.dims), np.float32)
    return np.concatenate(parts).reshape(len(images), -1).astype(np.float32, copy=False)


__all__ = ["FEATURE_NETWORKS", "DigitFeatures", "digit_features", "feature_extractor", "describe", "extract"]
