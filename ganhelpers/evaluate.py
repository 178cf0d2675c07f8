"""Is the demo learning? A digit classifier trained on the real digits judges generated samples.

``digit_report`` answers the question a person asks of the demo's grid, with numbers: what
fraction of generated images does a classifier that knows real digits recognise with high
confidence, and how many of the 10 classes do those images cover (mode collapse shows as few).
"""

from __future__ import annotations

import keras
import numpy as np


def digit_classifier(image_size: int = 32, channels: int = 1, epochs: int = 20, seed: int = 0,
                     holdout: float = 0.2) -> tuple[keras.Model, float]:
    """A small CNN trained on scikit-learn's real digits at ``image_size``; returns it and its
    accuracy on a held-out ``holdout`` fraction (seeded split)."""
    from .data import digits

    keras.utils.set_random_seed(seed)
    d = digits(image_size, channels)
    x = d["images"].astype("float32") / 127.5 - 1.0
    y = d["labels"]
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(len(x) * holdout)
    test, train = order[:n_test], order[n_test:]
    model = keras.Sequential([
        keras.Input((image_size, image_size, channels)),
        keras.layers.RandomTranslation(0.08, 0.08, fill_mode="constant", fill_value=-1.0, seed=seed),
        keras.layers.Conv2D(32, 3, activation="relu", padding="same"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, activation="relu", padding="same"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dropout(0.3, seed=seed),
        keras.layers.Dense(10, activation="softmax"),
    ], name="digit_classifier")
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[train], y[train], batch_size=64, epochs=epochs, verbose=0)
    accuracy = float(model.evaluate(x[test], y[test], verbose=0)[1]) if n_test else float("nan")
    return model, accuracy


def digit_report(classifier: keras.Model, images, threshold: float = 0.9) -> dict:
    """How recognisable generated digits (N, S, S, C) in [-1, 1] are to ``classifier``.

    Returns ``confident_fraction`` (share of images whose top class has probability >= threshold),
    ``classes_covered`` (distinct top classes among those confident images), ``mean_confidence``
    and ``class_counts`` (confident images per class, 0-9).
    """
    x = np.asarray(images, dtype="float32")
    # direct calls in batches (predict() traces a new function per call and TensorFlow warns)
    probs = np.concatenate([keras.ops.convert_to_numpy(classifier(x[i:i + 256], training=False))
                            for i in range(0, len(x), 256)])
    top, conf = probs.argmax(axis=1), probs.max(axis=1)
    confident = conf >= threshold
    counts = np.bincount(top[confident], minlength=10)
    return {"num_images": int(len(probs)), "threshold": threshold,
            "confident_fraction": float(confident.mean()),
            "classes_covered": int((counts > 0).sum()),
            "mean_confidence": float(conf.mean()),
            "class_counts": counts.tolist()}


def digit_classifier_cache_path(cache_dir=None, image_size: int = 32, channels: int = 1, epochs: int = 20,
                                seed: int = 0):
    """``<cache_dir>/digit_classifier_<size>px_<channels>ch_e<epochs>_s<seed>.keras`` (default cache dir:
    ``$GANHELPERS_DATA`` or ``~/.keras/datasets``, under ``models/``)."""
    from pathlib import Path

    from . import data

    folder = Path(cache_dir) if cache_dir is not None else Path(data.DEFAULT_DATA_DIR) / "models"
    return folder / f"digit_classifier_{image_size}px_{channels}ch_e{epochs}_s{seed}.keras"


_LOADED: dict[str, tuple[keras.Model, float]] = {}


def cached_digit_classifier(cache_dir=None, image_size: int = 32, channels: int = 1, epochs: int = 20,
                            seed: int = 0) -> tuple[keras.Model, float]:
    """:func:`digit_classifier`, trained once and kept on disk (a ``.keras`` file plus its held-out
    accuracy in a ``.json`` beside it), so every process that measures digit features uses the very
    same network. Returns (model, held-out accuracy)."""
    import json
    import os
    import tempfile

    from .experiment import atomic_write

    path = digit_classifier_cache_path(cache_dir, image_size, channels, epochs, seed)
    if str(path) in _LOADED:  # once per process: the same network every call, no reload
        return _LOADED[str(path)]
    meta = path.with_suffix(".json")
    if path.is_file() and meta.is_file():
        _LOADED[str(path)] = (keras.saving.load_model(path, compile=False),
                              float(json.loads(meta.read_text())["accuracy"]))
        return _LOADED[str(path)]
    model, accuracy = digit_classifier(image_size, channels, epochs=epochs, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".part.keras")
    os.close(fd)
    try:
        model.save(tmp)
        os.replace(tmp, path)  # atomic: a reader sees the old file or the whole new one
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    atomic_write(meta, json.dumps({"accuracy": accuracy, "image_size": image_size, "channels": channels,
                                   "epochs": epochs, "seed": seed}) + "\n")
    _LOADED[str(path)] = (model, accuracy)
    return model, accuracy


def learning_check(model, num_samples: int = 500, seed: int = 0, cache_dir=None) -> dict:
    """The demo's learning check for any generator of digits: :func:`digit_report` of
    ``model.sample(num_samples, seed)`` by the cached digit classifier at the samples' size, plus
    ``classifier_holdout_accuracy`` and a one-line ``summary`` to print."""
    samples = model.sample(num_samples, seed=seed)
    classifier, accuracy = cached_digit_classifier(cache_dir, samples.shape[1], samples.shape[-1])
    report = digit_report(classifier, samples)
    report["classifier_holdout_accuracy"] = accuracy
    report["summary"] = (f"learning check: {report['confident_fraction']:.0%} of {report['num_images']} samples are "
                         f"digits to a classifier (p >= {report['threshold']}; it scores {accuracy:.1%} on held-out "
                         f"real digits), covering {report['classes_covered']}/10 classes")
    return report
