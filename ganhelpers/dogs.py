"""Stanford Dogs and the dog experiment's DCGAN variants, ranked by a metric over one training path.

* :func:`stanford_dogs` downloads ``images.tar`` and ``annotation.tar`` (sha256 and size checked),
  extracts them and returns 64x64 uint8 dogs, optionally cropped to each dog's bounding box from the
  annotation XML: the remedy the experiment named for dogs that are small or off-centre in the frame.
* :func:`variant_config` gives each variant as a DCGAN config (data / generator / discriminator /
  training, plus ``fid``, ``metrics`` and ``rank_by``); every variant trains through
  :func:`ganhelpers.run.train` (model ``dogs``) with a :class:`ganhelpers.metrics.MetricsMonitor` for FID and the
  config's metrics, so the variants differ only in their config.
* :func:`run_comparison` trains the selected variants with the same seed, data and budget (epochs,
  i.e. real images seen) and :func:`comparison_table` ranks their ``results.json`` by ``rank_by``
  (FID in ``full``, KID where samples are few).

Run folders: ``<model_data>/dog_dcgan_variants/<comparison>-<variant>/``.
"""

from __future__ import annotations

import copy
import logging
import math
from pathlib import Path

import numpy as np

from . import data as data_lib
from . import losses as losses_lib
from .configs import merge_config
from .experiment import DEFAULT_ROOT, atomic_write, load_results

log = logging.getLogger(__name__)

# Stanford Dogs itself lives with the other datasets (ganhelpers.data.stanford_dogs); its names stay here too
from .data.stanford_dogs import (  # noqa: E402, F401
    DOGS_ARCHIVES,
    DOGS_URL,
    dog_box,
    dog_examples,
    fetch_verified,
    parse_annotation,
    stanford_dogs,
    stanford_dogs_files,
)

# -- the variants -------------------------------------------------------------------------------

EXPERIMENT = "dog_dcgan_variants"

# The baseline is Radford et al. 2015's reference DCGAN as the PyTorch DCGAN tutorial trains it:
# 64x64x3, batch 128, latent 100, 64 feature maps in G and D (ngf = ndf = 64), 4x4 kernels, a 4x4
# projection and a 4x4 logit convolution, Adam(2e-4, beta_1 0.5), hard labels, and (as in the dog
# experiment's Keras model) binary cross-entropy on D's sigmoid probability.
DOGS_PRESETS: dict[str, dict] = {
    "full": {
        "experiment": EXPERIMENT,
        "seed": 0,
        "data": {"name": "stanford_dogs", "image_size": 64, "channels": 3, "batch_size": 128, "crop": "bbox",
                 "box": "largest", "num_images": None},
        "generator": {"latent_dim": 100, "base_filters": 64, "kernel_size": 4, "projection": "conv",
                      "activation_name": "relu", "start_size": 4},
        "discriminator": {"base_filters": 64, "kernel_size": 4, "head": "conv", "start_size": 4},
        # Budget: 30 epochs = 617k real images per variant (about 20 min each on a Colab T4).
        "training": {"epochs": 30, "d_lr": 2e-4, "g_lr": 2e-4, "beta_1": 0.5, "loss": "bce_probs",
                     "label_noise": None, "snapshot_every_images": 12_800, "checkpoint_every_steps": None,
                     "checkpoint_every_epochs": 1, "keep_checkpoints": 2},
        # FID with ImageNet InceptionV3 on 5,000 samples every 3 epochs, against all real crops.
        "fid": {"every_n_epochs": 3, "num_samples": 5000, "weights": "imagenet", "batch_size": 50,
                "real_samples": None},
        # Other metrics (ganhelpers.metrics) by name, e.g. ["kid", "precision", "recall"]: none here, as
        # they would extract the 5,000 samples' Inception features a second time beside FID's. With
        # 5,000 samples FID's small-sample bias is small: it ranks the variants.
        "metrics": {"names": [], "features": "inception", "weights": "imagenet",
                    "every_n_epochs": 3, "num_samples": 5000, "batch_size": 50, "real_samples": None},
        "rank_by": "fid",
    },
}
# The workshop preset: the offline digits at 32x32x1 as stand-ins for dogs, the demo's network sizes
# (32 base maps), batch 64, 20 epochs (560 steps); FID on the digit classifier's features (a network
# that knows digits, so the ranking means something offline) on 500 samples every 5 epochs.
DOGS_PRESETS["cpu"] = copy.deepcopy(DOGS_PRESETS["full"])
DOGS_PRESETS["cpu"]["data"].update(name="digits", image_size=32, channels=1, batch_size=64, crop="center")
DOGS_PRESETS["cpu"]["generator"]["base_filters"] = 32
DOGS_PRESETS["cpu"]["discriminator"]["base_filters"] = 32
DOGS_PRESETS["cpu"]["training"].update(epochs=20, snapshot_every_images=3_200, log_every=20)
DOGS_PRESETS["cpu"]["fid"].update(every_n_epochs=5, num_samples=500, weights="digits", batch_size=250,
                                  real_samples=None)
# 500 samples: FID is biased upwards there, KID is not (Binkowski et al. 2018): KID ranks.
DOGS_PRESETS["cpu"]["metrics"].update(names=["kid", "precision", "recall"], features="digits", weights=None,
                                      every_n_epochs=5, num_samples=500, batch_size=250)
DOGS_PRESETS["cpu"]["rank_by"] = "kid"
CPU_VARIANTS = ("dcgan1", "leaky", "lsgan")
# Offline and tiny: 64 of scikit-learn's digits as 64x64x3 stand-ins for dogs (the full preset's image
# shape, so its networks' shapes are what smoke builds), 4 feature maps, 2 epochs of 4 steps. The metrics'
# features come from the 32x32x1 digit classifier (the cpu preset's and the demo's: one cached network,
# ~15 s to train on a fresh machine; the samples are converted to grey and resized to 32x32): KID on
# 16 samples ranks, FID on 4 samples against 8 real images is plumbing only.
DOGS_PRESETS["smoke"] = copy.deepcopy(DOGS_PRESETS["full"])
DOGS_PRESETS["smoke"]["data"].update(name="digits", batch_size=16, crop="center", num_images=64)
DOGS_PRESETS["smoke"]["generator"]["base_filters"] = 4
DOGS_PRESETS["smoke"]["discriminator"]["base_filters"] = 4
DOGS_PRESETS["smoke"]["training"].update(epochs=2, snapshot_every_images=32, log_every=2)
DOGS_PRESETS["smoke"]["fid"].update(every_n_epochs=1, num_samples=4, weights="digits", batch_size=4, real_samples=8,
                                    digits={"image_size": 32, "channels": 1})
DOGS_PRESETS["smoke"]["metrics"].update(names=["kid"], features="digits", weights=None, every_n_epochs=1,
                                        num_samples=16, batch_size=16, digits={"image_size": 32, "channels": 1})
DOGS_PRESETS["smoke"]["rank_by"] = "kid"

# The real MNIST (60,000 training images) at 32x32x1 as stand-ins for dogs, 28 -> 32 by zero padding 2
# pixels a side (ganhelpers.data.mnist_padded); the baseline's recipe unchanged (batch 128, Adam(2e-4,
# beta_1 0.5), hard labels, BCE on probabilities), half its width (32 base maps: ours, for 2 CPU cores).
# Budget: 8 epochs (3,744 steps) per variant, DCGAN's own mnist preset's (the same recipe), up from 3
# epochs, which gave 62.6% (dcgan1) and 62.8% (lsgan) confident samples, below the judge's 80% bar.
# Measured (benchmarks/reproduce.py --only dogs; docs/mnist_presets_results.md), 2 cores with no other
# visible process (load average near 3, our threads): dcgan1 80.8% of 1,000 samples with p >= 0.9, 10/10
# classes (5.7%-13.5%), 15.8 min; lsgan 79.7%, 10/10 (5.9%-13.6%), 15.2 min (just below the bar). An
# epoch takes 103-130 s, FID pass included: 8 epochs exceed 15 minutes per variant (about 16), and both
# variants together take about 31 minutes. FID on the MNIST judge's features
# (ganhelpers.evaluate.mnist_features: a network that knows MNIST) of 1,000 samples against 10,000
# training images, every epoch: the same sample count for every variant, so FID ranks them.
DOGS_PRESETS["mnist"] = copy.deepcopy(DOGS_PRESETS["full"])
DOGS_PRESETS["mnist"]["data"].update(name="mnist", image_size=32, channels=1, batch_size=128, crop="center")
DOGS_PRESETS["mnist"]["generator"]["base_filters"] = 32
DOGS_PRESETS["mnist"]["discriminator"]["base_filters"] = 32
DOGS_PRESETS["mnist"]["training"].update(epochs=8, snapshot_every_images=12_800, log_every=50)
DOGS_PRESETS["mnist"]["fid"].update(every_n_epochs=1, num_samples=1000, weights="mnist", batch_size=250,
                                    real_samples=10_000)
DOGS_PRESETS["mnist"]["metrics"].update(names=[])
DOGS_PRESETS["mnist"]["rank_by"] = "fid"
MNIST_VARIANTS = ("dcgan1", "lsgan")  # both at batch 128: leaky's batch 32 costs 4x the steps on a CPU

# name -> (why it might help, the sections it changes on the baseline)
VARIANTS: dict[str, tuple[str, dict]] = {
    "dcgan1": ("the baseline: reference DCGAN, BCE on sigmoid probabilities", {}),
    "dcgan2": ("an extra 2x2 stage: latent -> 2x2 -> 4x4 ... in G, ... -> 4x4 -> 2x2 in D (more depth and "
               "twice the widest feature maps)",
               # G's projection is a 2x2 valid transposed convolution: (1 - 1) * 1 + 2 = 2; each 4x4
               # stride-2 stage then gives (n - 1) * 2 - 2 * 1 + 4 = 2n (padding 1, Keras 'same').
               {"generator": {"start_size": 2}, "discriminator": {"start_size": 2}}),
    "leaky": ("LeakyReLU(0.2) in every generator layer (no dead units) and batch 32 (4x the updates)",
              {"generator": {"activation_name": "leaky"}, "data": {"batch_size": 32}}),
    "bce_logits": ("BCE computed from logits: no clipping, so no zero gradient once D is sure",
                   {"training": {"loss": "bce"}}),
    "kl": ("KL divergence between target and predicted Bernoulli (BCE minus a constant)",
           {"training": {"loss": "kl"}}),
    "smooth_l1": ("Smooth L1 on probabilities: a bounded, least-squares-like loss",
                  {"training": {"loss": "smooth_l1"}}),
    "lsgan": ("least squares on the raw output (Mao et al. 2017): no saturation", {"training": {"loss": "lsgan"}}),
    "hinge": ("hinge loss (Lim & Ye 2017; Miyato et al. 2018): margins instead of probabilities",
              {"training": {"loss": "hinge"}}),
}
SMOKE_VARIANTS = ("dcgan1", "dcgan2")


def variant_config(name: str, preset: str = "full", **overrides) -> dict:
    """The config of variant ``name`` (see :data:`VARIANTS`) in preset ``full`` or ``smoke``;
    keyword arguments replace whole top-level values or update sections
    (``variant_config("leaky", "full", training={"epochs": 5})``)."""
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; choose from {list(VARIANTS)}")
    if preset not in DOGS_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(DOGS_PRESETS)}")
    description, changes = VARIANTS[name]
    config = merge_config(copy.deepcopy(DOGS_PRESETS[preset]), copy.deepcopy(changes))
    config = merge_config(config, copy.deepcopy(overrides))
    config["model"], config["variant"], config["description"] = "dogs", name, description
    t = config["training"]
    losses_lib.get(t["loss"])  # an unknown loss fails here, not after the data has loaded
    # Snapshots every so many images, so every variant's GIF has the same frames whatever its batch.
    t["snapshot_every"] = max(1, t.get("snapshot_every_images", 12_800) // config["data"]["batch_size"])
    return config


# -- training -----------------------------------------------------------------------------------

def load_images(config: dict, data_dir=None, download: bool = False) -> np.ndarray:
    """The uint8 training images a variant config asks for (its first ``num_images`` if set): any
    dataset of :data:`ganhelpers.data.DATASETS` (``stanford_dogs`` in ``full``, ``digits`` offline)."""
    d = config["data"]
    images = data_lib.load(d, data_dir, download)["images"]
    return images[: d["num_images"]] if d.get("num_images") else images


def fid_setup(config: dict, images: np.ndarray, cache_dir=None, extractor=None, networks_dir=None):
    """(extractor, real (mu, sigma)) for the config's ``fid`` section (``extractor`` overrides its
    ``weights``; ``weights: digits`` is the digit classifier at ``fid.digits`` {image_size, channels},
    default the data's, cached in ``networks_dir``, default :func:`ganhelpers.data.networks_dir`); the
    statistics are cached in ``cache_dir`` per dataset, crop, image count and network."""
    from .metrics import fid
    from .metrics.inception import inception_extractor

    f = config["fid"]
    if extractor is None and f["weights"] == "mnist":  # the real MNIST: its judge's features
        from .evaluate import mnist_features

        extractor = mnist_features()
    if extractor is None and f["weights"] == "digits":  # the offline digits: a network that knows them
        from .metrics.features import feature_extractor

        options = {"image_size": config["data"]["image_size"], "channels": config["data"].get("channels", 1),
                   **(f.get("digits") or {})}
        extractor = feature_extractor("digits", cache_dir=networks_dir, **options)
    extractor = extractor or inception_extractor(f["weights"])
    real = images[: f["real_samples"]] if f.get("real_samples") else images
    d = config["data"]
    cache = None
    if cache_dir is not None:
        crop = d.get("crop", "none") + (f"-{d.get('box', 'largest')}" if d.get("crop") == "bbox" else "")
        cache = fid.statistics_cache_path(cache_dir, f"{d['name']}-{crop}-{len(real)}", d["image_size"], extractor)
    return extractor, fid.real_statistics(real, extractor, cache_path=cache, batch_size=f["batch_size"])


# -- the run loop's view of the dog experiment --------------------------------------------------

def _load_data(config: dict, data_dir=None, download: bool = True) -> dict:
    return {"images": load_images(config, data_dir, download)}


def _own_callbacks(run, config: dict, model, data) -> list:
    """The DCGAN's own (label noise) and the FID monitor against the real images (``data`` may
    carry ``extractor`` and ``real_stats`` shared by a comparison)."""
    from .dcgan import own_callbacks
    from .metrics import MetricsMonitor

    if data.get("real_stats") is None:
        data["extractor"], data["real_stats"] = fid_setup(config, data["images"], cache_dir=run.dir.parent,
                                                          extractor=data.get("extractor"),
                                                          networks_dir=data.get("networks_dir"))
    f = config["fid"]
    names, real, cache = ["fid"], None, None
    if metrics_in_fid_pass(config):  # one feature pass for FID and the metrics section (the run loop adds none)
        from .run import metrics_real_side

        real, _, cache = metrics_real_side(run, config, data, extractor=data["extractor"])
        names += [n for n in config["metrics"]["names"] if n != "fid"]
    monitor = MetricsMonitor(run, real, real_stats=data["real_stats"], metrics=names,
                             every_n_epochs=f["every_n_epochs"], num_samples=f["num_samples"],
                             extractor=data["extractor"], batch_size=f["batch_size"], cache_path=cache)
    data["fid_monitor"] = monitor
    return own_callbacks(run, config, model, data) + [monitor]


def metrics_in_fid_pass(config: dict) -> bool:
    """Whether the config's ``metrics`` section asks for what its ``fid`` section does (the same
    network: digits at the same size, or Inception with the same weights; the same samples, batch,
    real images and schedule): then one monitor computes FID and those metrics from one feature pass
    (the ``cpu`` preset: FID, KID, precision and recall on the digit features of 500 samples)."""
    m, f = config.get("metrics") or {}, config.get("fid") or {}
    if not m.get("names") or not f:
        return False
    same_network = (m.get("features", "digits") == "digits" and f.get("weights") == "digits"
                    and (m.get("digits") or {}) == (f.get("digits") or {})) or \
        (m.get("features") == "inception" and m.get("weights") == f.get("weights") and f.get("weights") != "digits")
    return same_network and all(m.get(k, d) == f.get(k, d) for k, d in (
        ("every_n_epochs", 1), ("num_samples", 1000), ("batch_size", 200), ("real_samples", None)))


def _finish(run, config: dict, model, data) -> dict:
    """FID at the last epoch too (when it was not a multiple of ``every_n_epochs``), the final
    grid (``samples/final_grid.png``; when the samples span less than half of [-1, 1], i.e. look flat
    grey, also ``final_grid_stretched.png``, their range stretched to black..white: see
    ``final_grid_range``), and the comparison's figures."""
    from .images import save_grid, stretch

    monitor = data.get("fid_monitor")
    epochs_done = int(model.epoch.numpy())
    measured = [h[0] for h in run.results().get("fid_history", [])]
    if monitor is not None and epochs_done > 0 and epochs_done not in measured:
        monitor.every_n_epochs = 1  # the last epoch was not a multiple: measure it too
        monitor.on_epoch_end(epochs_done - 1)
        monitor.on_train_end()
    samples = model.snapshot_images()
    save_grid(run.samples / "final_grid.png", samples)
    grid_range = [round(float(samples.min()), 4), round(float(samples.max()), 4)]
    if grid_range[1] - grid_range[0] < 1.0:
        save_grid(run.samples / "final_grid_stretched.png", stretch(samples))
    else:
        (run.samples / "final_grid_stretched.png").unlink(missing_ok=True)  # a resumed run's old one
    fid_history = run.results().get("fid_history", [])
    best = min(fid_history, key=lambda h: h[1]) if fid_history else [None, None]
    comparison = run.name[: -len(config["variant"]) - 1] if run.name.endswith("-" + config["variant"]) else run.name
    return {"variant": config["variant"], "comparison": comparison, "description": config["description"],
            "loss": config["training"]["loss"], "batch_size": config["data"]["batch_size"], "epochs": epochs_done,
            "steps": int(model.step.numpy()),
            "fid_best": best[1], "fid_best_epoch": best[0], "fid_num_samples": config["fid"]["num_samples"],
            "rank_by": config.get("rank_by", "fid"), "final_grid_range": grid_range,
            "data": config["data"]["name"], "run_dir": str(run.dir)}


def _kind():
    from . import dcgan
    from .run import ModelKind

    return ModelKind(
        name="dogs", presets=DOGS_PRESETS, build=dcgan.build_dcgan, load_data=_load_data, dataset=dcgan.dataset,
        steps_per_pass=dcgan.steps_per_pass, total_steps=dcgan.KIND.total_steps, callbacks=_own_callbacks,
        finish=_finish, variants=tuple(VARIANTS), metrics_in_own_pass=metrics_in_fid_pass,
        make_config=lambda preset, variant=None, **overrides: variant_config(variant or "dcgan1", preset, **overrides),
        description="the dog experiment's DCGAN variants on Stanford Dogs, ranked by FID (KID where samples are few)")


KIND = _kind()


def train_variant(config: dict, images: np.ndarray, comparison: str = "default", root=None,
                  extractor=None, real_stats=None, steps: int | None = None, verbose="auto",
                  networks_dir=None, strategy=None) -> dict:
    """Train one variant into ``<root>/dog_dcgan_variants/<comparison>-<variant>/`` through
    :func:`ganhelpers.run.train` (resuming if checkpoints exist), with FID every
    ``fid.every_n_epochs`` epochs and at the last; returns the run's ``results.json``.
    ``networks_dir``: where the digit features' classifier is cached (default
    :func:`ganhelpers.data.networks_dir`); ``strategy``: a ``tf.distribute`` strategy, as for
    :func:`ganhelpers.run.train`."""
    from .run import train

    data = {"images": images, "extractor": extractor, "real_stats": real_stats, "networks_dir": networks_dir}
    return train(dict(config, model="dogs"), f"{comparison}-{config['variant']}", root=root, steps=steps,
                 data=data, verbose=verbose, strategy=strategy).results


def run_comparison(variants=None, preset: str = "full", comparison: str = "default", root=None,
                   data_dir=None, download: bool = False, images: np.ndarray | None = None,
                   steps: int | None = None, verbose="auto", extractor=None, networks_dir=None,
                   strategy=None, **overrides) -> Table:
    """Train ``variants`` (default: all in ``full``, :data:`MNIST_VARIANTS` in ``mnist``, else
    :data:`SMOKE_VARIANTS`) one after the
    other with the same seed, data, real FID statistics and budget (``extractor``: a
    ``ganhelpers.metrics.inception`` extractor instead of the config's ``fid.weights``; ``networks_dir``: where the
    digit features' classifier is cached, default ``models/`` in the data folder,
    :func:`ganhelpers.data.networks_dir`); returns :func:`comparison_table` of their runs (also
    written as ``<comparison>-comparison.md`` beside them). With ``verbose``, one line per variant
    says what is training. ``strategy``: a ``tf.distribute`` strategy for every variant's run."""
    variants = list(variants or {"full": VARIANTS, "mnist": MNIST_VARIANTS}.get(preset, SMOKE_VARIANTS))
    configs = [variant_config(v, preset, **overrides) for v in variants]
    if images is None:
        images = load_images(configs[0], data_dir, download)
    exp_dir = Path(root if root is not None else DEFAULT_ROOT) / configs[0]["experiment"]
    extractor, real_stats = fid_setup(configs[0], images, cache_dir=exp_dir, extractor=extractor,
                                      networks_dir=networks_dir)
    run_dirs = []
    for i, config in enumerate(configs, 1):
        if verbose:
            print(f"training variant {i} of {len(configs)}, {config['variant']}: {config['description']} "
                  f"({config['training']['epochs']} epochs)", flush=True)
        run_dirs.append(train_variant(config, images, comparison, root, extractor, real_stats, steps,
                                      verbose, networks_dir, strategy)["run_dir"])
    table = comparison_table(run_dirs)
    atomic_write(exp_dir / f"{comparison}-comparison.md", table.markdown() + "\n")
    return table


# -- comparing runs -----------------------------------------------------------------------------

class Table(list):
    """Rows (dicts) of a comparison, best first by ``by`` (a metric in the runs' results.json);
    ``markdown()`` renders them (so do notebooks)."""

    def __init__(self, rows=(), by: str = "fid"):
        super().__init__(rows)
        self.by = by

    @property
    def columns(self) -> tuple:
        label = self.by.upper() if self.by in ("fid", "kid", "swd") else self.by
        others = tuple((m, m.upper() if m in ("fid", "kid") else m) for m in ("fid", "kid", "precision", "recall")
                       if m != self.by and any(r.get(m) is not None for r in self))
        return ((("rank", "rank"), ("variant", "variant"), (self.by, f"{label} (last)"),
                 (f"{self.by}_best", f"best {label}"), (f"{self.by}_best_epoch", "at epoch")) + others
                + (("epochs", "epochs"), ("steps", "steps"), ("batch_size", "batch"), ("loss", "loss"),
                   ("minutes", "minutes")))

    def markdown(self) -> str:
        def cell(v):
            return "-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)

        columns = self.columns
        lines = ["| " + " | ".join(h for _, h in columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
        lines += ["| " + " | ".join(cell(r.get(k)) for k, _ in columns) + " |" for r in self]
        notes = sorted({f"FID by {r['fid_extractor']} on {r.get('fid_num_samples')} samples "
                        f"{r.get('fid_note') or ''}".rstrip() for r in self if r.get("fid_extractor")})
        notes += sorted({f"{', '.join(m.upper() for m in ('kid',) if r.get(m) is not None) or 'metrics'} and "
                         f"precision/recall by {r['metrics_network']} on {r.get('metrics_num_fake')} samples"
                         for r in self if r.get("metrics_network")})
        return "\n".join(lines + [""] + [f"_{n}_" for n in notes]).rstrip()

    _repr_markdown_ = markdown

    def __str__(self) -> str:
        return self.markdown()


def _result_dirs(run_dirs_or_root) -> list[Path]:
    if isinstance(run_dirs_or_root, (str, Path)):
        root = Path(run_dirs_or_root)
        if (root / "results.json").is_file():
            return [root]
        found = sorted(p.parent for p in root.glob("*/results.json")) or \
            sorted(p.parent for p in root.glob("*/*/results.json"))
        if not found:
            raise FileNotFoundError(f"no results.json in {root} or its run folders: train some variants first")
        return found
    return [Path(p) for p in run_dirs_or_root]


def comparison_table(run_dirs_or_root, comparison: str | None = None, by: str | None = None) -> Table:
    """Collect ``results.json`` of run folders (a list, one run folder, or a folder of runs, e.g.
    ``model_data/dog_dcgan_variants``) into a :class:`Table` ranked by the metric ``by`` (default:
    the runs' ``rank_by``, else ``fid``): its last value, lower first for FID, KID and SWD, higher
    first for precision, recall, density and coverage; runs without it last. ``comparison`` keeps
    only that comparison's runs."""
    from .metrics import LOWER_IS_BETTER

    rows = []
    for run_dir in _result_dirs(run_dirs_or_root):
        r = load_results(run_dir)
        if not r:
            raise FileNotFoundError(f"{run_dir} has no results.json: was it trained with train_variant?")
        if comparison is not None and r.get("comparison") != comparison:
            continue
        rows.append({**r, "variant": r.get("variant", run_dir.name), "run_dir": str(run_dir),
                     "minutes": round(r["train_seconds"] / 60, 2) if r.get("train_seconds") is not None else None})
    by = by or next((r["rank_by"] for r in rows if r.get("rank_by")), "fid")
    sign = 1.0 if LOWER_IS_BETTER.get(by, True) else -1.0
    for row in rows:
        history = row.get(f"{by}_history") or []
        if history:
            best = (min if sign > 0 else max)(history, key=lambda h: h[1])
            row[f"{by}_best"], row[f"{by}_best_epoch"] = best[1], best[0]

    def key(row):
        v = row.get(by)
        missing = v is None or not math.isfinite(v)
        return (missing, 0.0 if missing else sign * v, row["variant"])

    rows.sort(key=key)
    for i, row in enumerate(rows, 1):
        row["rank"] = i
    return Table(rows, by)


def plot_metric_curves(table, metric: str | None = None, path=None, title: str | None = None):
    """One ``metric``-over-epochs line per row of a :class:`Table` (or per run folder; default
    metric: the table's ranking one); saved to ``path`` if given. Returns a matplotlib ``Figure``
    (display it; no pyplot state is touched)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    from .metrics import LOWER_IS_BETTER

    rows = table if isinstance(table, Table) else comparison_table(table)
    metric = metric or getattr(rows, "by", "fid")
    label = metric.upper() if metric in ("fid", "kid", "swd") else metric
    fig = Figure(figsize=(8, 4.5))
    ax = fig.subplots()
    for row in rows:
        history = row.get(f"{metric}_history") or []
        if history:
            ax.plot([h[0] for h in history], [h[1] for h in history], marker="o", label=row["variant"])
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(label)
    # plain numbers: values that differ in the 5th digit (KID after a few steps) would otherwise read as
    # an offset, "1e-5+2.027e-1"
    ax.ticklabel_format(axis="y", style="plain", useOffset=False)
    better = "lower" if LOWER_IS_BETTER.get(metric, True) else "higher"
    notes = {row.get("fid_note") for row in rows if row.get("fid_note") and metric == "fid"}
    title = title or f"{label} over epochs ({better} is better)"
    ax.set_title(title + ("\n" + "; ".join(sorted(notes)) if notes else ""))
    if ax.lines:
        ax.legend()
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig


def plot_fid_curves(table, path=None, title: str = "FID over epochs (lower is better)"):
    """:func:`plot_metric_curves` of FID."""
    return plot_metric_curves(table, "fid", path, title)
