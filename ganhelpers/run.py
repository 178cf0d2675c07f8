"""THE run loop: every paper, notebook, CLI command and test trains through :func:`train`.

::

    result = train(config, run_name="default")     # config["model"] says which paper

1. open ``model_data/<experiment>/<run>/`` (the same name resumes; ``config.yaml`` records the
   config and its ``model``), 2. seed, 3. load the data from the config (``download=True``
   fetches a real dataset the first time, on Colab), 4. build the model from the config's
   ``model`` (:data:`MODELS`), 5. assemble the standard callbacks plus the model's own, 6. restore
   the newest checkpoint (explicitly, here), 7. fit until the budget (the config's, or ``steps``),
   8. merge the run's figures into ``results.json`` and TensorBoard (``Headline/*``, ``results/*``).

A paper module contributes one :class:`ModelKind`: how to build its model, load its data, make
its ``tf.data`` pipeline, the training budget in steps, its own callbacks and its final figures.
A new paper is a model class, a preset and a ``ModelKind``; nothing else here changes.
"""

from __future__ import annotations

import dataclasses
import errno
import importlib
import logging
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import keras
import tensorflow as tf

from . import callbacks as cb
from . import distribute, summaries
from .configs import ConfigError, validate_config
from .experiment import (
    DEFAULT_ROOT,
    DamagedRunFile,
    Run,
    apply_learning_rates,
    check_run_folder,
    has_history,
    load_config,
    open_run,
    seed_everything,
)

log = logging.getLogger(__name__)


@dataclasses.dataclass
class ModelKind:
    """What the run loop needs to know of one paper (see the module docstring).

    ``load_data(config, data_dir, download) -> dict`` with at least ``images`` (uint8 NHWC);
    ``dataset(config, data) -> tf.data.Dataset`` (repeated); ``steps_per_pass(config, data)``
    (steps of one pass over the data: one Keras epoch); ``total_steps(config, data)`` (the
    config's budget in steps); ``callbacks(run, config, model, data)`` (the model's own);
    ``finish(run, config, model, data)`` (figures for results.json); ``fit(context)`` replaces
    the single ``fit`` (PGGAN's phases); ``restore(model, run)`` replaces the checkpoint restore.
    """

    name: str
    presets: dict
    build: Callable[[dict], Any]
    load_data: Callable
    dataset: Callable
    steps_per_pass: Callable
    total_steps: Callable
    callbacks: Callable = lambda run, config, model, data: []
    finish: Callable = lambda run, config, model, data: {}
    fit: Callable | None = None
    restore: Callable | None = None
    experiment: Callable = lambda config: config["experiment"]
    description: str = ""
    default_preset: str = "smoke"
    variants: tuple = ()  # named variants of one model (the dog experiment's), chosen with variant=
    make_config: Callable | None = None  # (preset, variant, **overrides) -> config, where variants exist
    # (config) -> True when the kind's own monitor computes the config's ``metrics`` section in its
    # FID pass (the dog experiment, when both sections ask for the same features and schedule)
    metrics_in_own_pass: Callable | None = None

    def config(self, preset: str | None = None, variant: str | None = None, **overrides) -> dict:
        """A deep copy of a preset with ``model`` recorded (see :func:`ganhelpers.configs.preset_config`)."""
        from .configs import preset_config

        preset = preset or self.default_preset
        if self.make_config is not None:
            config = self.make_config(preset, variant, **overrides)
        elif variant is not None:
            raise ValueError(f"model {self.name} has no variants; --variant is for: dogs")
        else:
            config = preset_config(self.presets, preset, self.name, **overrides)
        config["model"] = self.name
        return config


# name -> module defining KIND (or KINDS for a module with several).
_REGISTRY = {"dcgan": "dcgan", "wgan": "wgan", "wgan-gp": "wgan", "sgan": "sgan", "pggan": "pggan",
             "dogs": "dogs"}


def model_kind(name_or_config) -> ModelKind:
    """The :class:`ModelKind` of a model name or a config's ``model`` (``dcgan`` for a config
    that records none: the runs made before models were recorded)."""
    name = name_or_config.get("model", "dcgan") if isinstance(name_or_config, dict) else name_or_config
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(_REGISTRY)}")
    module = importlib.import_module(f".{_REGISTRY[name]}", __package__)
    kinds = getattr(module, "KINDS", None) or {module.KIND.name: module.KIND}
    return kinds[name]


def model_names() -> list[str]:
    return list(_REGISTRY)


def training_option(config: dict, key: str, default=None):
    return config.get("training", {}).get(key, default)


def standard_callbacks(run: Run, config: dict, tensorboard: bool = True) -> list[keras.callbacks.Callback]:
    """The callbacks every run has, set from ``config["training"]``: the checkpoint, fixed-noise
    snapshots, loss history + plot, TensorBoard, the GIF at the end."""
    t = config.get("training", {})
    log_every = t.get("log_every", 10)
    cbs = [cb.FixedNoiseSnapshots(run, every_n_steps=t.get("snapshot_every", 50)),
           cb.LossHistory(run, every_n_steps=log_every)]
    if tensorboard:
        cbs.append(summaries.TensorBoard(run, log_every=log_every, config=config))
    # after the loggers, so a checkpoint at step N is saved once step N is in losses.csv and
    # TensorBoard; restore=False: the run loop restores, once, before fit
    cbs.append(cb.Checkpoint(run, every_n_steps=t.get("checkpoint_every_steps"),
                             every_n_epochs=t.get("checkpoint_every_epochs", 1), keep=t.get("keep_checkpoints", 3),
                             restore=False))
    cbs.append(cb.GifWriter(run, fps=t.get("gif_fps", 5.0)))
    return cbs


def metrics_callbacks(run: Run, config: dict, data: dict) -> list:
    """A :class:`ganhelpers.metrics.MetricsMonitor` when the config has a ``metrics`` section with
    ``names`` (fid, kid, precision, recall, density, coverage, swd, msssim, or "pr"): every
    ``every_n_epochs`` epochs on ``num_samples`` samples against the run's data (its first
    ``real_samples`` if set), on the features of ``features`` (``digits``, ``inception`` with
    ``weights``, ``none``; ``digits`` at the data's size and channels unless the section's ``digits``
    says ``{"image_size": ..., "channels": ...}``, its network cached in ``data["networks_dir"]``,
    default :func:`ganhelpers.data.networks_dir`); the real features are cached beside the experiment's runs."""
    m = config.get("metrics") or {}
    if not m.get("names"):
        return []
    from .metrics import MetricsMonitor

    real, extractor, cache = metrics_real_side(run, config, data)
    return [MetricsMonitor(run, real, metrics=m["names"], every_n_epochs=m.get("every_n_epochs", 1),
                           num_samples=m.get("num_samples", 1000), extractor=extractor, cache_path=cache,
                           batch_size=m.get("batch_size", 200))]


def metrics_real_side(run: Run, config: dict, data: dict, extractor=None):
    """(real images, feature extractor, real-features cache path) of a config's ``metrics`` section
    (see :func:`metrics_callbacks`); ``extractor`` replaces the section's network."""
    from .metrics import features_cache_path
    from .metrics.features import feature_extractor

    m, d = config.get("metrics") or {}, config["data"]
    if extractor is None:
        name = m.get("features", "digits")
        options = {}
        if name == "digits":
            options = {"image_size": d["image_size"], "channels": d.get("channels", 3), **(m.get("digits") or {}),
                       "cache_dir": data.get("networks_dir")}
        extractor = feature_extractor(name, weights=m.get("weights"), **options)
    real = data["images"][: m["real_samples"]] if m.get("real_samples") else data["images"]
    cache = features_cache_path(run.dir.parent, f"{d['name']}-{d.get('crop', 'none')}-{len(real)}", d["image_size"],
                                extractor)
    return real, extractor, cache


def measure_at_the_end(monitors, epochs_done: int) -> None:
    """Evaluate each metrics monitor once more after the last epoch when its schedule skipped it, so
    every run's final figures are of its final model (runs of different lengths compare)."""
    for monitor in monitors:
        done = {h[0] for values in monitor.history.values() for h in values}
        if epochs_done > 0 and epochs_done not in done:
            monitor.every_n_epochs = 1
            monitor.on_epoch_end(epochs_done - 1)
            monitor.on_train_end()


class StopAtStep(keras.callbacks.Callback):
    """Stops ``fit`` once the model's ``step`` reaches ``total``."""

    def __init__(self, total: int):
        super().__init__()
        self.total = int(total)

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.step.numpy()) >= self.total:
            self.model.stop_training = True


@dataclasses.dataclass
class Context:
    """One training session: what a :attr:`ModelKind.fit` gets."""

    kind: ModelKind
    config: dict
    run: Run
    model: Any
    data: dict
    callbacks: Callable[[], list]  # a fresh list of the standard + model's + caller's callbacks
    total_steps: int
    verbose: Any


def fit_steps(ctx: Context, dataset=None, steps_per_pass: int | None = None, callbacks=None):
    """One ``fit`` from the model's step to ``ctx.total_steps``: epochs of at most one pass over
    the data (a repeated dataset keeps step counts exact across resumes). Returns the History, or
    None when the budget is already met."""
    model = ctx.model
    done = int(model.step.numpy())
    remaining = ctx.total_steps - done
    if remaining <= 0:
        log.info("run %s is at step %d of %d: nothing to train", ctx.run.dir, done, ctx.total_steps)
        return None
    dataset = dataset if dataset is not None else ctx.kind.dataset(ctx.config, ctx.data)
    per_epoch = max(1, min(steps_per_pass or ctx.kind.steps_per_pass(ctx.config, ctx.data), remaining))
    first = int(model.epoch.numpy())
    cbs = (callbacks if callbacks is not None else ctx.callbacks()) + [StopAtStep(ctx.total_steps)]
    return model.fit(dataset, epochs=first + math.ceil(remaining / per_epoch), initial_epoch=first,
                     steps_per_epoch=per_epoch, callbacks=cbs, verbose=ctx.verbose, shuffle=False)


class HistoryWithoutCheckpoint(RuntimeError):
    """A run that recorded training (losses, frames, logs) but has no checkpoint to continue from."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (or a notebook's interrupt) during training, after the checkpoint at ``step`` was saved."""

    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step


class DiskFull(OSError):
    """The disk filled up during training; the newest checkpoint is intact."""


def rewind_history(run: Run, step: int) -> None:
    """Bring the run's logs back to its checkpoint at ``step`` before training resumes: the rows of
    ``losses.csv``, the TensorBoard values and the ``tmp/`` frames a killed run wrote after it are
    dropped (that stretch is trained and logged again), so nothing appears twice."""
    cb.rewind_csv(run.samples / "losses.csv", step)
    summaries.rewind(run, step)
    late = [f for f in run.tmp.glob("step_*.png") if f.stem[5:].isdigit() and int(f.stem[5:]) > step]
    for frame in late:
        frame.unlink()
    if late:
        log.warning("%s: removed %d frame(s) of steps after the checkpoint at step %d (drawn again)", run.tmp,
                    len(late), step)


def _save_now(run: Run, config: dict, model) -> str | None:
    """Save a checkpoint of ``model`` at its step (after Ctrl-C); returns its path, or the newest
    one when it is already of this step, or None when saving failed (with a warning)."""
    saver = cb.Checkpoint(run, keep=training_option(config, "keep_checkpoints", 3), restore=False)
    try:
        saver.restore_before_fit(model)  # restore=False: only sets up the manager
        latest = saver.manager.latest_checkpoint
        if latest and latest.endswith(f"ckpt-{int(model.step.numpy())}"):
            return latest
        return saver.save()
    except Exception as err:  # noqa: BLE001 - the interrupt is what the user asked for; say what failed
        log.warning("could not save a checkpoint after the interrupt (%s: %s); the newest earlier one is kept",
                    type(err).__name__, err)
        return None


@dataclasses.dataclass
class RunResult:
    """What :func:`train` returns: the model, the run, Keras' History (None when nothing was trained)
    and the merged ``results.json``; ``start_step`` (the step the call resumed from),
    ``total_steps`` (the budget in force: ``steps`` or the config's) and ``config_steps`` (the
    config's whole budget) say how far the run got and what was left to do."""

    model: Any
    run: Run
    history: Any
    results: dict
    start_step: int = 0
    total_steps: int | None = None
    config_steps: int | None = None

    def __iter__(self):  # model, run, results = train(...)
        return iter((self.model, self.run, self.results))

    @property
    def nothing_to_train(self) -> bool:
        """True when the run already stood at its budget: this call trained no step."""
        return self.total_steps is not None and self.start_step >= self.total_steps


def duration(seconds: float) -> str:
    """``seconds`` for a reader: "45 s", "3.2 min", "2.5 h", "2.4 days"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def budget_report(result: RunResult, preset: str | None = None) -> str:
    """The lines a notebook prints after :func:`train`: that there was nothing to train (when the
    run already stood at its budget), the rate measured over the run's training so far (the wall
    clock of ``fit``: tracing and callbacks included) and the time the config's whole budget takes at
    that rate. ``preset`` names the config in the last line."""
    r, lines = result.results, []
    step, seconds = int(r["step"]), float(r.get("train_seconds") or 0.0)
    if result.nothing_to_train:
        lines.append(f"nothing to train: step {step} of {result.total_steps} already done (RUN_NAME={r['run']!r}); "
                     "change RUN_NAME or STEPS to train more")
    if step <= 0 or seconds <= 0:
        lines.append("no training measured yet: no rate to estimate from")
        return "\n".join(lines)
    images = r.get("images_seen")
    per_image = f", {images / seconds:,.0f} images/s" if images else ""
    lines.append(f"measured: {step:,} steps{f' ({images:,} images)' if images else ''} in {duration(seconds)}: "
                 f"{step / seconds:.2f} steps/s{per_image} on this runtime (the wall clock of training: tracing "
                 "and callbacks included)")
    whole = result.config_steps
    if whole:
        name = f"preset {preset!r}" if preset else "this config"
        left = max(0, whole - step)
        lines.append(f"the whole budget of {name}: {whole:,} steps, about {duration(whole * seconds / step)} at this "
                     f"rate ({f'{duration(left * seconds / step)} left' if left else 'all done'})")
    return "\n".join(lines)


def restore(model, run: Run, config: dict | None = None, kind: ModelKind | None = None) -> str | None:
    """Restore the newest readable checkpoint of ``run`` into ``model``; returns its path or None."""
    kind = kind or model_kind(config or run.config())
    if kind.restore is not None:
        return kind.restore(model, run)
    return cb.Checkpoint(run).restore_before_fit(model)


def train(config: dict, run_name: str = "default", *, root=None, steps: int | None = None, data=None,
          data_dir=None, download: bool = True, fresh: bool = False, verbose="auto", callbacks=(),
          tensorboard: bool = True, run: Run | None = None, strategy=None) -> RunResult:
    """Train ``config`` (its ``model`` names the paper) into ``<root>/<experiment>/<run_name>/``.

    Re-running the same run resumes it (from the newest checkpoint, also after a disconnect in a
    fresh kernel). ``steps`` sets the total budget in train steps (default: the config's); ``data``
    skips loading (a dict as the kind's ``load_data`` returns); ``download`` lets a real dataset
    download the first time; ``fresh`` deletes the run and starts again; ``callbacks`` are added
    after the standard and the model's own. ``strategy`` (a ``tf.distribute.Strategy``, e.g.
    ``distribute.make_strategy(devices=2)``) trains on several devices: the model, its optimizers, RNG and
    metrics are built in its scope and ``fit`` splits each global batch (the config's batch size)
    over its replicas; ``results.json`` records ``replicas`` and ``strategy``. Returns
    :class:`RunResult` (model, run, history, results) and always merges ``results.json``.
    """
    kind = model_kind(config)
    config = validate_config(dict(config, model=kind.name))
    if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool) or steps < 0):
        raise ConfigError(f"steps must be a whole number >= 0, got {steps!r}")
    strategy = strategy or tf.distribute.get_strategy()
    worker = _Worker(strategy, kind, config, run_name, root, fresh, run)
    try:
        return _train(kind, config, worker.run, worker, steps=steps, data=data, data_dir=data_dir,
                      download=download, verbose=verbose, callbacks=callbacks, tensorboard=tensorboard,
                      strategy=strategy)
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError) as err:
        if not worker.several:
            raise
        detail = next((line.strip() for line in str(err).splitlines()
                       if line.strip() and "Graph execution error" not in line), "")
        raise WorkerLost(
            f"{worker.name} lost its peers ({type(err).__name__}: {detail[:200]}): a worker "
            f"stopped or cannot be reached. Start the same command on every worker again: they all resume "
            f"from the chief's newest checkpoint in {worker.shared.checkpoints}.") from None
    finally:
        worker.close()


class WorkerLost(RuntimeError):
    """A multi-worker run lost a worker (killed, disconnected): every worker stops; started again, all
    resume from the chief's newest checkpoint."""


class _Worker:
    """Which folder this process writes under ``tf.distribute``: the run folder on one machine and on
    the chief; under several workers, the other workers train the same steps into a scratch copy of the
    run (outside it, deleted at the end: TensorFlow's collectives need every worker to save, log and
    checkpoint alike) that starts from a copy of the chief's checkpoints, so they write nothing in the
    run folder. The run folder must be one every worker can read (one machine, a shared file system)."""

    def __init__(self, strategy, kind, config, run_name, root, fresh, run):
        self.several = distribute.multi_worker(strategy)
        self.chief = distribute.is_chief(strategy)
        self.name = distribute.worker_name(strategy)
        self.scratch: Path | None = None
        if self.chief:
            self.run = self.shared = run or open_run(kind.experiment(config), run_name, config, root=root, fresh=fresh)
            check_run_folder(self.run.dir)
        else:
            experiment = kind.experiment(config)
            self.shared = run or Run(dir=Path(root if root is not None else DEFAULT_ROOT) / experiment / run_name,
                                     experiment=experiment, name=run_name)
            self.scratch = Path(tempfile.mkdtemp(prefix=f"ganhelpers-{self.name.replace(' ', '')}-"))
            self.run = open_run(experiment, run_name, config, root=self.scratch)
        if self.several:
            _barrier(strategy)  # the chief has opened (or, with fresh, emptied) the run folder
        if not self.chief:
            copied = 0
            if self.shared.checkpoints.is_dir():
                for f in self.shared.checkpoints.iterdir():
                    if f.is_file() and not f.is_symlink() and (f.name == "checkpoint" or f.name.startswith("ckpt-")):
                        shutil.copyfile(f, self.run.checkpoints / f.name)
                        copied += 1
            log.info("%s: trains into the scratch folder %s from %d file(s) of the chief's checkpoints in %s",
                     self.name, self.run.dir, copied, self.shared.checkpoints)

    def close(self) -> None:
        if self.scratch is not None:
            self.run.release()
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None


def _barrier(strategy) -> None:
    """Every worker waits here for the others (one all-reduce of a constant)."""
    def one():
        return tf.constant(1.0)

    def all_reduce():
        return strategy.reduce("SUM", strategy.run(one), axis=None)

    tf.function(all_reduce, autograph=False)()


def _train(kind, config, run, worker, *, steps, data, data_dir, download, verbose, callbacks, tensorboard,
           strategy) -> RunResult:
    seed_everything(config.get("seed", 0))
    if data is None:
        data = kind.load_data(config, data_dir, download)
    replicas = int(strategy.num_replicas_in_sync)
    batch = config.get("data", {}).get("batch_size")
    if replicas > 1 and isinstance(batch, int) and batch % replicas:
        raise ConfigError(f"data.batch_size {batch} does not split into {replicas} equal replica shares: "
                          f"choose a multiple of {replicas} (--set data.batch_size=...)")
    with strategy.scope():
        model = kind.build(config)

    monitors = []

    def make_callbacks():
        # the model's own first: what they steer (alpha, label noise) or add to the logs (test
        # accuracy, metrics) is in place before the checkpoint saves and the loggers write
        folded = kind.metrics_in_own_pass is not None and kind.metrics_in_own_pass(config)
        monitors[:] = [] if folded else metrics_callbacks(run, config, data)
        return (list(kind.callbacks(run, config, model, data)) + monitors
                + standard_callbacks(run, config, tensorboard) + list(callbacks))

    with strategy.scope():
        restored = restore(model, run, kind=kind)  # resume: weights, optimizers, step, epoch, RNG
    if restored:
        apply_learning_rates(model, config)  # a learning rate changed in the config wins over the restored one
        rewind_history(run, int(model.step.numpy()))
    elif history := has_history(run):
        raise HistoryWithoutCheckpoint(
            f"run {run.dir} has recorded training ({', '.join(history)}) but no checkpoint in {run.checkpoints}: "
            "starting again at step 0 would mix a new run into the old one's history. Either restore the "
            "checkpoints (ckpt-*.index, ckpt-*.data-*) into that folder, or start the run again with fresh=True "
            "(CLI: --fresh), which deletes its history; or train under a new run name.")
    config_steps = int(kind.total_steps(config, data))
    total = int(steps) if steps is not None else config_steps
    start_step = int(model.step.numpy())
    ctx = Context(kind, config, run, model, data, make_callbacks, total, verbose)
    start = time.perf_counter()
    try:
        with strategy.scope():
            history = (kind.fit or fit_steps)(ctx)
    except KeyboardInterrupt:
        step = int(model.step.numpy())
        saved = _save_now(run, config, model)
        summaries.close(run)
        run.update_results({"step": step, "epoch": int(model.epoch.numpy()), "train_seconds":
                            float(run.results().get("train_seconds", 0.0)) + time.perf_counter() - start})
        raise TrainingInterrupted(
            f"interrupted at step {step}: {'saved checkpoint ' + saved if saved else 'no checkpoint saved'}. "
            f"Run the same again to resume (python -m ganhelpers train {kind.name} --run {run.name} "
            f"--root {run.dir.parent.parent}).", step) from None
    except (OSError, tf.errors.OpError) as err:
        # ours raise OSError(ENOSPC); TensorFlow's checkpoint and event writers an OpError saying so
        full = getattr(err, "errno", None) in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) or (
            isinstance(err, tf.errors.OpError) and "no space left" in str(err).lower())
        if not full:
            raise
        try:
            summaries.close(run)
        except Exception:  # noqa: BLE001 - the writers cannot flush to a full disk either
            pass
        latest = sorted(run.checkpoints.glob("ckpt-*.index"), key=lambda p: int(p.stem.split("-")[1]))
        where = getattr(err, "filename", None) or "a file of the run"
        raise DiskFull(errno.ENOSPC, f"no space left to write {where} ({os.strerror(errno.ENOSPC)}) at step "
                       f"{int(model.step.numpy())}: free some space and run the same again; it resumes from the "
                       f"newest checkpoint ({latest[-1].stem if latest else 'none yet'}) with its logs rewound "
                       "to it") from None
    seconds = time.perf_counter() - start
    measure_at_the_end(monitors, int(model.epoch.numpy()))
    previous = run.results()
    final = {}
    if history is not None and getattr(history, "history", None):
        final = {k: float(v[-1]) for k, v in history.history.items() if v}
    step = int(model.step.numpy())
    results = {
        "model": kind.name, "run": run.name, "experiment": run.experiment, "step": step,
        "epoch": int(model.epoch.numpy()),
        "images_seen": int(model.images_seen.numpy()) if hasattr(model, "images_seen") else
        (step * batch if batch else None),
        "train_seconds": float(previous.get("train_seconds", 0.0)) + seconds,
        "final_losses": final or previous.get("final_losses", {}),
        "resumed_from": restored,
        "replicas": replicas, "strategy": distribute.strategy_name(strategy),
    }
    results.update(kind.finish(run, config, model, data))
    results = run.update_results(results)
    if tensorboard:  # the final figures at the final step: Headline/* (FID, KID, test accuracy), results/*
        summaries.scalars(run, summaries.result_scalars(results), step)
    summaries.close(run)  # snapshots and the papers' logs write through it with tensorboard=False too
    # another worker's results are those of its scratch copy (deleted); its RunResult names the run folder
    return RunResult(model, worker.shared, history, results, start_step, total, config_steps)


# -- run folders --------------------------------------------------------------------------------

def is_run_folder(path) -> bool:
    path = Path(path)
    return (path / "config.yaml").is_file() and (path / "checkpoints").is_dir()


def restore_model(run_dir, config: dict | None = None):
    """The model of a run folder (any MODEL) with its newest checkpoint restored; raises
    SystemExit with what to do when the folder is not a run or holds no readable checkpoint."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise SystemExit(f"{run_dir} is not a run folder (no config.yaml): pass model_data/<experiment>/<run>")
    check_run_folder(run_dir)
    config = config or load_config(run_dir / "config.yaml")
    kind = model_kind(config)
    run = Run(dir=run_dir, experiment=run_dir.parent.name, name=run_dir.name)
    try:
        model = kind.build(config)
    except (KeyError, TypeError) as err:
        raise DamagedRunFile(f"{run_dir / 'config.yaml'} does not describe a {kind.name} model (missing or wrong "
                             f"{err}): restore it from a copy, or train the run again") from None
    model.build_optimizers()
    if not list(run.checkpoints.glob("ckpt-*.index")) or restore(model, run, kind=kind) is None:
        raise SystemExit(f"no readable checkpoint in {run.checkpoints}: train the run first "
                         f"(python -m ganhelpers train {kind.name} --run {run.name})")
    return model


# Keys the run loop and the data registry read with a default, so a preset need not list them
# (README "The command line"): --set may add them.
DOCUMENTED_KEYS = {
    "training": ("log_every", "gif_fps", "precision", "conv", "jit_compile", "steps_per_execution",
                 "checkpoint_every_steps", "checkpoint_every_epochs", "keep_checkpoints", "snapshot_every"),
    "data": ("name", "path", "crop", "data_dir"),
}


def set_value(config: dict, assignment: str) -> dict:
    """Apply ``section.key=VALUE`` (VALUE parsed as a YAML scalar) to ``config`` in place; an
    unknown section or key is a ValueError listing the known ones."""
    import yaml

    if "=" not in assignment:
        raise ValueError(f"--set takes section.key=VALUE, got {assignment!r}")
    path, raw = assignment.split("=", 1)
    keys = path.strip().split(".")
    node = config
    for i, key in enumerate(keys[:-1]):
        if not isinstance(node.get(key), dict):
            known = sorted(k for k, v in node.items() if isinstance(v, dict))
            raise ValueError(f"--set {path}: no section {'.'.join(keys[:i + 1])!r}; sections: {known}")
        node = node[key]
    documented = DOCUMENTED_KEYS.get(".".join(keys[:-1]), ())
    if keys[-1] not in node and keys[-1] not in documented:
        known = sorted(set(node) | set(documented))
        raise ValueError(f"--set {path}: no key {keys[-1]!r} in {'.'.join(keys[:-1]) or 'the config'}; "
                         f"keys: {known}")
    value = yaml.safe_load(raw)
    if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string: a number is meant
        try:
            value = float(value)
        except ValueError:
            pass
    node[keys[-1]] = value
    return config
