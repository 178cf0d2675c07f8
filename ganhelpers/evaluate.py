"""Is the demo learning? A digit classifier trained on the real digits judges generated samples.

``digit_report`` answers the question a person asks of the demo's grid, with numbers: what
fraction of generated images does a classifier that knows real digits recognise with high
confidence, and how many of the 10 classes do those images cover (mode collapse shows as few).
"""

from __future__ import annotations

from pathlib import Path

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
    :func:`ganhelpers.data.networks_dir`, ``models/`` in the data folder, beside the datasets)."""
    from . import data

    folder = Path(cache_dir) if cache_dir is not None else data.networks_dir()
    return folder / f"digit_classifier_{image_size}px_{channels}ch_e{epochs}_s{seed}.keras"


_LOADED: dict[str, tuple[keras.Model, float]] = {}

# digit_classifier's training time on 2 shared CPU cores, the estimate printed before it starts: a fixed
# ~3 s (building, tracing) plus 0.5 s per epoch per 1,000 input values (measured: 20 epochs at 32x32x1, 13 s).
_SECONDS_FIXED, _SECONDS_PER_EPOCH_PER_KVALUE = 3.0, 0.5


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
    import time

    estimate = _SECONDS_FIXED + _SECONDS_PER_EPOCH_PER_KVALUE * epochs * image_size * image_size * channels / 1000
    print(f"training the digit classifier for the metric features ({image_size}x{image_size}x{channels}, "
          f"{epochs} epoch{'s' if epochs != 1 else ''} on scikit-learn's digits; once, cached in {path.parent}): "
          f"~{estimate:.0f} s on a CPU", flush=True)
    start = time.perf_counter()
    model, accuracy = digit_classifier(image_size, channels, epochs=epochs, seed=seed)
    print(f"digit classifier trained in {time.perf_counter() - start:.0f} s: {accuracy:.1%} on held-out real digits; "
          f"saved as {path.name}", flush=True)
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


def learning_check(model, num_samples: int = 500, seed: int = 0, cache_dir=None, run=None) -> dict:
    """The demo's learning check for any generator of digits: :func:`digit_report` of
    ``model.sample(num_samples, seed)`` by the cached digit classifier at the samples' size, plus
    ``classifier_holdout_accuracy``, the model's ``step`` and a one-line ``summary`` to print.
    With ``run`` (the run, or its folder) it is also recorded there (:func:`record_learning_check`)."""
    samples = model.sample(num_samples, seed=seed)
    classifier, accuracy = cached_digit_classifier(cache_dir, samples.shape[1], samples.shape[-1])
    report = digit_report(classifier, samples)
    report["classifier_holdout_accuracy"] = accuracy
    report["step"] = int(model.step.numpy()) if hasattr(model, "step") else None
    report["summary"] = (f"learning check: {report['confident_fraction']:.0%} of {report['num_images']} samples are "
                         f"digits to a classifier (p >= {report['threshold']}; it scores {accuracy:.1%} on held-out "
                         f"real digits), covering {report['classes_covered']}/10 classes")
    if run is not None:
        record_learning_check(run, report)
    return report


def record_learning_check(run, check: dict, step: int | None = None) -> dict:
    """Write a learning check (:func:`learning_check`'s dict) into the run folder ``run`` (a
    :class:`~ganhelpers.experiment.Run` or its path): ``results.json`` gets it whole as
    ``learning_check`` (with its ``step``), and TensorBoard the scalars
    ``Headline/learning_check`` (the confident fraction) and ``Headline/learning_check_classes``
    (classes covered) at ``step`` (default: the check's, i.e. the model's final step). The folder is
    checked for links first and written under the run's lock (atomic results.json). Returns the
    merged results."""
    from . import summaries
    from .experiment import Run, check_run_folder

    if not isinstance(run, Run):
        folder = Path(run)
        run = Run(dir=folder, experiment=folder.parent.name, name=folder.name)
    step = int(step if step is not None else check.get("step") or 0)
    check_run_folder(run.dir)
    with run.lock():
        results = run.update_results({"learning_check": {**check, "step": step}})
        summaries.scalars(run, {"Headline/learning_check": check["confident_fraction"],
                                "Headline/learning_check_classes": check["classes_covered"]}, step)
        summaries.close(run)
    return results


# -- the judge of the mnist presets -----------------------------------------------------------------

# The judge's architecture and training, the key of its cache file: a change here trains a new one.
# Two 3x3 convolution pairs with max pooling and a 128-unit dense layer (a small VGG-style MNIST CNN,
# as in the Keras examples), Adam(1e-3), batch 128; its penultimate layer (128-d) gives KID's features.
MNIST_JUDGE = {"filters": (32, 32, 64, 64), "dense": 128, "dropout": 0.3, "epochs": 4, "batch_size": 128,
               "learning_rate": 1e-3, "seed": 0, "image_size": 32}
MNIST_JUDGE_MIN_ACCURACY = 0.99


def mnist_judge_network(spec: dict = MNIST_JUDGE) -> keras.Model:
    """The judge's (untrained) CNN: 32x32x1 in [-1, 1] -> 10 softmax probabilities."""
    f, seed = spec["filters"], spec["seed"]
    return keras.Sequential([
        keras.Input((spec["image_size"], spec["image_size"], 1)),
        keras.layers.Conv2D(f[0], 3, activation="relu", padding="same"),
        keras.layers.Conv2D(f[1], 3, activation="relu", padding="same"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(f[2], 3, activation="relu", padding="same"),
        keras.layers.Conv2D(f[3], 3, activation="relu", padding="same"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(spec["dense"], activation="relu"),
        keras.layers.Dropout(spec["dropout"], seed=seed),
        keras.layers.Dense(10, activation="softmax"),
    ], name="mnist_judge")


def _judge_name(spec: dict) -> str:
    import hashlib
    import json

    return "mnist_judge_" + hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def mnist_judge_cache_path(cache_dir=None, spec: dict = MNIST_JUDGE):
    """``<cache_dir>/mnist_judge_<hash of spec>.keras`` (default cache dir as the digit classifier's)."""
    from . import data

    folder = Path(cache_dir) if cache_dir is not None else data.networks_dir()
    return folder / f"{_judge_name(spec)}.keras"


#: Where the judge trained with :data:`MNIST_JUDGE` ships inside the package: its weights
#: (``.weights.h5``, 2.4 MB) and a ``.json`` with its test accuracy, its spec and the weights' sha256.
#: Trained once by ``python tools/train_mnist_judge.py`` (the same :func:`train_mnist_judge`), so every
#: machine and every Colab session judges with the very same network, and none spends the 5 CPU
#: minutes training it.
SHIPPED_NETWORKS = Path(__file__).resolve().parent / "networks"


def shipped_mnist_judge_path(spec: dict = MNIST_JUDGE):
    """``ganhelpers/networks/mnist_judge_<hash of spec>.weights.h5`` (present for :data:`MNIST_JUDGE`)."""
    return SHIPPED_NETWORKS / f"{_judge_name(spec)}.weights.h5"


def shipped_record_path(weights_path) -> Path:
    """The ``.json`` record beside a shipped ``.weights.h5`` (test accuracy, spec, sha256)."""
    weights_path = Path(weights_path)
    return weights_path.with_name(weights_path.name.replace(".weights.h5", ".json"))


def load_shipped_mnist_judge(spec: dict = MNIST_JUDGE, path=None) -> tuple[keras.Model, float] | None:
    """The shipped judge of ``spec`` and its recorded test accuracy; ``None`` (with a logged line saying
    why, when files exist) where there is none for this spec, or its weights do not match the sha256 its
    ``.json`` records (a damaged or replaced file is never used: the judge is then trained as before)."""
    import json
    import logging

    from .data import file_hash

    path = Path(path) if path is not None else shipped_mnist_judge_path(spec)
    meta = shipped_record_path(path)
    if not (path.is_file() and meta.is_file()):
        return None
    log = logging.getLogger(__name__)
    try:
        info = json.loads(meta.read_text())
        expected, accuracy = info["sha256"], float(info["test_accuracy"])
    except (ValueError, KeyError, TypeError) as e:
        log.warning("ignoring the shipped MNIST judge: %s is not its record (%s)", meta, e)
        return None
    if info.get("spec") != json.loads(json.dumps(spec)):
        log.warning("ignoring the shipped MNIST judge %s: it was trained with another spec", path.name)
        return None
    if file_hash(path, "sha256") != expected:
        log.warning("ignoring the shipped MNIST judge: %s does not match the sha256 in %s", path, meta.name)
        return None
    model = mnist_judge_network(spec)
    model.load_weights(path)
    return model, accuracy


def train_mnist_judge(data_dir=None, spec: dict = MNIST_JUDGE, download: bool = True) -> tuple[keras.Model, float]:
    """Train the judge on the 60,000 MNIST training images (32x32, :func:`ganhelpers.data.mnist_padded`);
    returns it and its accuracy on the 10,000 test images. Raises ``RuntimeError`` below
    :data:`MNIST_JUDGE_MIN_ACCURACY`: a judge that misreads real digits would misjudge generated ones."""
    import logging
    import time

    from .data import mnist_padded

    log = logging.getLogger(__name__)
    keras.utils.set_random_seed(spec["seed"])
    d = mnist_padded(data_dir, spec["image_size"], 1, download=download)
    scale = lambda x: x.astype("float32") / 127.5 - 1.0  # noqa: E731
    model = mnist_judge_network(spec)
    model.compile(keras.optimizers.Adam(spec["learning_rate"]), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    log.info("training the MNIST judge (%d epochs on 60,000 images; a few minutes on a CPU, once: it is cached)",
             spec["epochs"])
    start = time.perf_counter()
    model.fit(scale(d["x_train"]), d["y_train"], batch_size=spec["batch_size"], epochs=spec["epochs"], verbose=2)
    accuracy = float(model.evaluate(scale(d["x_test"]), d["y_test"], batch_size=500, verbose=0)[1])
    log.info("MNIST judge: %.2f%% on the 10,000 test images after %.0f s", 100 * accuracy,
             time.perf_counter() - start)
    if accuracy < MNIST_JUDGE_MIN_ACCURACY:
        raise RuntimeError(f"the MNIST judge scores {accuracy:.2%} on the test set, below "
                           f"{MNIST_JUDGE_MIN_ACCURACY:.0%}: change MNIST_JUDGE (more epochs) and train again")
    return model, accuracy


def mnist_judge(data_dir=None, cache_dir=None, download: bool = True, spec: dict = MNIST_JUDGE
                ) -> tuple[keras.Model, float]:
    """The judge of the ``mnist`` presets, trained by no preset. For :data:`MNIST_JUDGE` the network
    shipped in the package (:func:`load_shipped_mnist_judge`: the same on every machine); for any
    other ``spec`` (or where the shipped file is damaged) :func:`train_mnist_judge` once, then kept
    on disk (``.keras`` plus its test accuracy in a ``.json``) keyed by ``spec``, so every process
    judges with the very same network. Returns (model, MNIST test accuracy)."""
    import json
    import os
    import tempfile

    from .experiment import atomic_write

    path = mnist_judge_cache_path(cache_dir, spec)
    if str(path) in _LOADED:
        return _LOADED[str(path)]
    shipped = load_shipped_mnist_judge(spec)
    if shipped is not None:
        _LOADED[str(path)] = shipped
        return shipped
    meta = path.with_suffix(".json")
    if path.is_file() and meta.is_file():
        _LOADED[str(path)] = (keras.saving.load_model(path, compile=False),
                              float(json.loads(meta.read_text())["test_accuracy"]))
        return _LOADED[str(path)]
    model, accuracy = train_mnist_judge(data_dir, spec, download)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".part.keras")
    os.close(fd)
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    atomic_write(meta, json.dumps({"test_accuracy": accuracy, "spec": spec}) + "\n")
    _LOADED[str(path)] = (model, accuracy)
    return model, accuracy


def mnist_features(data_dir=None, cache_dir=None, download: bool = True):
    """The judge as a feature network (:class:`ganhelpers.metrics.features.DigitFeatures`: its 128-d
    penultimate layer), for KID and FID on MNIST."""
    from .metrics.features import DigitFeatures

    judge, accuracy = mnist_judge(data_dir, cache_dir, download)
    return DigitFeatures(judge, accuracy, name=f"mnist-judge-{mnist_judge_cache_path(cache_dir).stem[12:]}")


def mnist_learning_check(images, data_dir=None, cache_dir=None, threshold: float = 0.9, kid_subsets: int = 100,
                         kid_subset_size: int = 1000) -> dict:
    """The bar of every generator's ``mnist`` preset, over generated images (N, 32, 32, 1) in [-1, 1]
    (the benchmark passes 1,000):

    * ``confident_fraction``: share whose top class has judge probability >= ``threshold`` (bar 0.8);
    * ``class_shares``: share of each class 0-9 among all N top classes, and ``classes_in_range``:
      how many lie between half and twice 1/10 (5%-20%; bar: all 10; mode collapse shows here);
    * ``kid``, ``kid_std``: KID (:func:`ganhelpers.metrics.kid`) against the 10,000 MNIST test images
      on the judge's penultimate features, mean and spread over ``kid_subsets`` subsets (its scale
      is the features': 128-d ReLU activations with norms near 30; 1,000 real training digits score
      about 1.5, a generator of one class over 100);
    * ``passes`` (both bars met), ``judge_test_accuracy`` and a one-line ``summary``.
    """
    from .data import mnist_padded
    from .metrics import kid
    from .metrics.features import extract

    features = mnist_features(data_dir, cache_dir)
    x = np.asarray(images, dtype="float32")
    report = digit_report(features.classifier, x, threshold)
    probs = np.concatenate([keras.ops.convert_to_numpy(features.classifier(x[i:i + 250], training=False))
                            for i in range(0, len(x), 250)])
    shares = np.bincount(probs.argmax(axis=1), minlength=10) / max(len(x), 1)
    in_range = int(((shares >= 0.05) & (shares <= 0.20)).sum())
    test = mnist_padded(data_dir, 32, 1)["x_test"]
    kid_mean, kid_std = kid(extract(test, features), extract(x, features), num_subsets=kid_subsets,
                            subset_size=kid_subset_size)
    passes = report["confident_fraction"] >= 0.8 and in_range == 10
    report.update(class_shares=[round(float(s), 4) for s in shares], classes_in_range=in_range,
                  kid=float(kid_mean), kid_std=float(kid_std), judge_test_accuracy=features.accuracy,
                  passes=bool(passes))
    report["summary"] = (f"MNIST judge ({features.accuracy:.2%} on the test set): "
                         f"{report['confident_fraction']:.1%} of {len(x)} samples with p >= {threshold}, "
                         f"{in_range}/10 classes within 5%-20% (min {shares.min():.1%}, max {shares.max():.1%}), "
                         f"KID {kid_mean:.4f} ± {kid_std:.4f}: {'passes' if passes else 'does not pass'}")
    return report


def learning_check_for(model, config: dict, run=None, data_dir=None, num_samples: int | None = None) -> dict:
    """The learning check that fits the data a run trained on, as the notebooks print it: the digit
    classifier's :func:`learning_check` for the offline ``digits``, the ``mnist`` presets' bar
    (:func:`mnist_learning_check` of 1,000 samples by the MNIST judge; the judge is trained once, about
    5 minutes on 2 CPU cores, and cached in ``<data_dir>/models``) for ``mnist``; both recorded into
    ``run`` (results.json and TensorBoard, :func:`record_learning_check`). Any other data (birds, dogs,
    flowers): ``{"skipped": True, "summary": ...}`` saying why (no judge knows them)."""
    from .data import networks_dir

    name = config["data"]["name"]
    cache_dir = networks_dir(data_dir)
    if name == "digits":
        return learning_check(model, num_samples=num_samples or 500, cache_dir=cache_dir, run=run)
    if name == "mnist":
        report = mnist_learning_check(model.sample(num_samples or 1000, seed=0), data_dir=data_dir, cache_dir=cache_dir)
        report["step"] = int(model.step.numpy()) if hasattr(model, "step") else None
        report["summary"] = f"learning check: {report['summary']}"
        if run is not None:
            record_learning_check(run, report)
        return report
    return {"skipped": True, "summary": f"learning check skipped: its judges know digits (the offline digits and "
                                        f"MNIST), and this run trained on {name}"}
