"""ONE training callback for any set of metrics, FID included, from one feature pass per evaluation."""

from __future__ import annotations

import logging
import os

import keras
import numpy as np

from .. import summaries
from .checks import feature_array
from .compute import FEATURE_METRICS, compute_metrics, expand_metric_names, real_features_cached
from .fid import load_statistics
from .frechet import FrechetReference
from .prdc import PR_METRICS

log = logging.getLogger(__name__)


class MetricsMonitor(keras.callbacks.Callback):
    """Every ``every_n_epochs`` epochs: ``metrics`` (names of
    :data:`ganhelpers.metrics.compute.METRICS`: fid, kid, precision, recall, density, coverage, swd,
    msssim, or ``"pr"`` for the four k-NN numbers) of ``num_samples`` generated images against the
    real data.

    The real side is ``real_images`` (uint8 or [-1, 1], NHWC) and/or, for FID, ``real_stats``: a
    ``(mu, sigma)`` tuple or an ``.npz`` of statistics (:func:`ganhelpers.metrics.fid.save_statistics`;
    one made by another network is refused). Without ``real_stats`` FID uses the real features'
    mean and covariance. The samples come from ``model.sample(num_samples, seed=seed)``: the same
    noise at every evaluation and never the training RNG. Their features are extracted ONCE per
    evaluation by ``extractor`` (a name of :func:`ganhelpers.metrics.features.feature_extractor` or an
    Extractor; ``"digits"`` by default, the offline network) and shared by every feature metric; the
    real features are computed once (and cached in ``cache_path``, an ``.npz``, if given: see
    :func:`ganhelpers.metrics.compute.features_cache_path`), and FID's real side keeps its root
    factor between evaluations (:class:`~ganhelpers.metrics.frechet.FrechetReference`). Each value is

    * logged as the TensorBoard scalar ``metrics/<name>`` (the run's writer, at the model's ``step``,
      as the losses are; SWD's levels also as ``metrics/swd_<side>px``),
    * merged into ``results.json``: ``<name>`` (latest), ``<name>_history`` ([[epochs completed,
      value], ...], kept across resumes), plus ``kid_std``, ``swd_levels``, ``msssim_real``,
      ``metrics_network``, ``metrics_note``, ``metrics_num_fake``, ``metrics_num_real``,
      ``metrics_k`` (unless FID is its only metric), and with FID ``fid_extractor`` and ``fid_note``
      (the random-weights warning, else ""),
    * added to the epoch logs (so the progress bar and Keras' TensorBoard see it).
    """

    def __init__(self, run, real_images=None, metrics=("kid", "precision", "recall"), every_n_epochs: int = 1,
                 num_samples: int = 1000, extractor="digits", cache_path=None, seed: int = 0, k: int = 3,
                 kid_subsets: int = 100, kid_subset_size: int = 1000, msssim_pairs: int = 1000,
                 batch_size: int = 200, real_stats=None):
        super().__init__()
        self.names = expand_metric_names(metrics)
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs}")
        if real_images is None and (real_stats is None or self.names != ["fid"]):
            raise ValueError(f"{', '.join(self.names)} need real_images (FID alone can use real_stats instead)")
        minimum = max(2, k + 1 if any(m in self.names for m in PR_METRICS) else 2)
        num_real = len(real_images) if real_images is not None else minimum
        if num_samples < minimum or num_real < minimum:
            raise ValueError(f"{', '.join(self.names)} need at least {minimum} samples per side, got "
                             f"num_samples={num_samples} and {num_real} real images")
        self.run, self.real_images, self.real_stats = run, real_images, real_stats
        self.every_n_epochs, self.num_samples, self.seed, self.k = every_n_epochs, num_samples, seed, k
        self.kid_subsets, self.kid_subset_size, self.msssim_pairs = kid_subsets, kid_subset_size, msssim_pairs
        self.extractor, self.cache_path, self.batch_size = extractor, cache_path, batch_size
        self.real_features = None
        self.reference = None  # FID's real side (FrechetReference): built once
        self.msssim_real = None  # MS-SSIM among the real images (the diversity to aim for): computed once
        self._started = False
        self.history: dict[str, list] = {}

    @property
    def needs_features(self) -> bool:
        return any(m in FEATURE_METRICS for m in self.names)

    def _real_side(self) -> None:
        from .features import feature_extractor

        if self.needs_features:
            self.extractor = feature_extractor(self.extractor)
        if self.needs_features and self.real_features is None and self.real_images is not None and \
                (self.names != ["fid"] or self.real_stats is None):
            self.real_features = real_features_cached(self.real_images, self.extractor, self.cache_path,
                                                      self.batch_size)
        if "fid" in self.names and self.reference is None:
            stats = self.real_stats
            if isinstance(stats, (str, os.PathLike)):
                mu, sigma, name = load_statistics(stats)
                if name is not None and name != self.extractor.name:
                    raise ValueError(f"real statistics {stats} come from {name}, but the monitor uses "
                                     f"{self.extractor.name}: recompute them with real_statistics(...)")
                stats = (mu, sigma)
            if stats is None:
                rf = feature_array(self.real_features, "FID", "real", 2).astype(np.float64)
                stats = (rf.mean(axis=0), np.cov(rf, rowvar=False))
            self.reference = FrechetReference(*stats)

    def on_train_begin(self, logs=None):
        self._real_side()
        self._started = True
        results = self.run.results()
        self.history = {m: [list(h) for h in results.get(f"{m}_history", [])] for m in self.names}

    def evaluate(self) -> dict:
        """The configured metrics of ``num_samples`` fresh samples (no logging), from one feature pass."""
        from .features import extract

        if not hasattr(self.model, "sample"):
            raise TypeError("MetricsMonitor needs a model with sample(n, seed) (a ganhelpers GAN)")
        self._real_side()
        fake = np.asarray(self.model.sample(self.num_samples, seed=self.seed), np.float32)
        fake_features = extract(fake, self.extractor, self.batch_size) if self.needs_features else None
        values = compute_metrics(self.names, self.real_features, fake_features, self.real_images, fake,
                                 real_stats=self.reference, k=self.k, kid_subsets=self.kid_subsets,
                                 kid_subset_size=self.kid_subset_size, msssim_pairs=self.msssim_pairs,
                                 seed=self.seed, msssim_real=self.msssim_real is None)
        if "msssim" in self.names:  # the real data's value is the same every time: computed once
            self.msssim_real = values.setdefault("msssim_real", self.msssim_real)
        return values

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_n_epochs:
            return
        if not self._started:
            self.on_train_begin()
        done = epoch + 1
        values = self.evaluate()
        scalars = {f"metrics/{name}": values[name] for name in self.names}
        scalars.update({f"metrics/swd_{side}px": v for side, v in values.get("swd_levels", {}).items()})
        step = int(self.model.step.numpy()) if hasattr(self.model, "step") else done
        summaries.scalars(self.run, scalars, step)  # the run's writer, never dropped
        summaries.flush(self.run)
        update = {}
        for name in self.names:
            self.history[name] = [h for h in self.history[name] if h[0] != done] + [[done, values[name]]]
            update[name], update[f"{name}_history"] = values[name], self.history[name]
        for extra in ("kid_std", "msssim_real"):
            if extra in values:
                update[extra] = values[extra]
        if "swd_levels" in values:
            update["swd_levels"] = {f"{side}px": v for side, v in values["swd_levels"].items()}
        network = getattr(self.extractor, "name", None) if self.needs_features else None
        note = getattr(self.extractor, "note", "") if network else ""
        if "fid" in self.names:
            update.update(fid_extractor=network, fid_note=note)  # "" unless the numbers are plumbing only
        num_real = len(self.real_images) if self.real_images is not None else None
        if self.names != ["fid"]:  # a run may hold an FID monitor beside another: fid_extractor names FID's network
            update.update(metrics_network=network, metrics_note=note, metrics_num_fake=self.num_samples,
                          metrics_num_real=num_real, metrics_k=self.k)
        self.run.update_results(update)
        if logs is not None:
            logs.update({name: values[name] for name in self.names})
        log.info("epoch %d: %s (%s, %d fake / %s real)", done,
                 ", ".join(f"{n} {values[n]:.4g}" for n in self.names), network or "pixels", self.num_samples,
                 num_real if num_real is not None else "statistics of the")

    def on_train_end(self, logs=None):
        self._started = False
