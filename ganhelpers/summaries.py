"""TensorBoard for a run: one event writer per kind of data, grouped tags, HParams, nothing dropped.

A run's ``logs/`` folder holds::

    logs/train/        scalars: losses/*, accuracy/*, wasserstein/*, schedule/*, metrics/*,
                       learning_rate/*, results/* (the run's final figures)
    logs/images/       images: samples/fixed_noise, samples/level_RxR
    logs/histograms/   histograms: critic/* ...
    logs/              the HParams session (the config's values), so runs compare in the HParams tab

Every callback that writes to TensorBoard goes through :func:`writer` (one ``tf.summary`` writer per
run folder and kind, shared in the process) and writes inside ``tf.summary.record_if(True)``: Keras'
own TensorBoard callback leaves a "record every N steps" condition switched on during ``fit``,
which silently dropped values written by other callbacks. That callback is not used here.

Tags are grouped (``losses/d_loss_real`` and ``losses/g_loss`` share a chart): :func:`tag_for`
maps a model's metric name to its group.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import keras
import tensorflow as tf

log = logging.getLogger(__name__)

KINDS = ("train", "images", "histograms")
_WRITERS: dict[tuple[str, str], tf.summary.SummaryWriter] = {}


def writer(run, kind: str = "train") -> tf.summary.SummaryWriter:
    """The process' one writer for ``run.logs / kind`` (created on first use)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    key = (str(Path(run.logs).resolve()), kind)
    if key not in _WRITERS:
        _WRITERS[key] = tf.summary.create_file_writer(str(Path(run.logs) / kind))
    return _WRITERS[key]


def close(run) -> None:
    """Flush and close the run's writers (the next write opens a new event file)."""
    root = str(Path(run.logs).resolve())
    for key in [k for k in _WRITERS if k[0] == root]:
        _WRITERS.pop(key).close()


def flush(run) -> None:
    root = str(Path(run.logs).resolve())
    for key, w in _WRITERS.items():
        if key[0] == root:
            w.flush()


def scalars(run, values: dict, step: int) -> None:
    """Write ``{tag: value}`` at ``step`` to the run's train writer (non-numbers are skipped)."""
    with writer(run, "train").as_default(), tf.summary.record_if(True):
        for tag, value in values.items():
            try:
                v = float(value)
            except (TypeError, ValueError):
                continue
            tf.summary.scalar(tag, v, step=int(step))


def image(run, tag: str, grid, step: int) -> None:
    """One uint8 grid (H, W) or (H, W, C) as an image summary."""
    import numpy as np

    grid = np.asarray(grid)
    if grid.ndim == 2:
        grid = grid[..., None]
    with writer(run, "images").as_default(), tf.summary.record_if(True):
        tf.summary.image(tag, grid[None], step=int(step))


def histograms(run, values: dict, step: int) -> None:
    with writer(run, "histograms").as_default(), tf.summary.record_if(True):
        for tag, value in values.items():
            tf.summary.histogram(tag, value, step=int(step))


# -- tag groups ---------------------------------------------------------------------------------

def tag_for(name: str, groups: dict | None = None) -> str:
    """The grouped TensorBoard tag of a metric a model reports: ``groups`` (a model's
    ``metric_groups``) first, then by name: ``*loss*``, ``gradient_penalty`` and ``drift`` ->
    ``losses/``; ``*acc*`` -> ``accuracy/``; anything else -> ``values/``."""
    if groups and name in groups:
        return groups[name]
    if "loss" in name or name in ("gradient_penalty", "drift"):
        return f"losses/{name}"
    if "acc" in name:
        return f"accuracy/{name}"
    return f"values/{name}"


def learning_rates(model) -> dict:
    """``{"learning_rate/<network>": value}`` for each optimizer of the model."""
    out = {}
    for name, opt in getattr(model, "named_optimizers", lambda: {})().items():
        lr = getattr(getattr(opt, "inner_optimizer", opt), "learning_rate", None)
        if lr is not None:
            out[f"learning_rate/{name}"] = float(keras.ops.convert_to_numpy(lr))
    return out


# -- HParams ------------------------------------------------------------------------------------

def flat_hparams(config: dict, prefix: str = "") -> dict:
    """A config as HParams values: nested keys joined by ``.``; numbers, strings and booleans kept,
    anything else (None, lists) as its string."""
    out = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_hparams(value, name + "."))
        elif isinstance(value, bool | str) or (isinstance(value, int | float) and math.isfinite(value)):
            out[name] = value
        else:
            out[name] = str(value)
    return out


def write_hparams(run, config: dict) -> None:
    """The run's hyperparameters as an HParams session in ``logs/`` (its metrics are the scalar
    tags of ``logs/train``: the HParams tab lists FID, accuracies and losses per run)."""
    from tensorboard.plugins.hparams import api as hp

    w = tf.summary.create_file_writer(str(Path(run.logs)))
    with w.as_default(), tf.summary.record_if(True):
        hp.hparams(flat_hparams(config), trial_id=f"{run.experiment}/{run.name}")
    w.close()


# -- the callback -------------------------------------------------------------------------------

class TensorBoard(keras.callbacks.Callback):
    """Every ``log_every`` steps: the model's reported values under grouped tags and each
    optimizer's learning rate, at step = the model's checkpointed ``step`` (so a resumed run
    continues its curves); at each epoch end the epoch's means as ``epoch/<tag>`` (at the step the
    epoch ended); at the start the
    HParams session (``config``). The step scalars follow the same schedule as
    :class:`~ganhelpers.callbacks.LossHistory`, so ``losses.csv`` and TensorBoard hold the same
    points."""

    def __init__(self, run, log_every: int = 10, config: dict | None = None):
        super().__init__()
        self.run, self.log_every, self.config = run, int(log_every), config

    def on_train_begin(self, logs=None):
        if self.config is not None:
            write_hparams(self.run, self.config)

    def _values(self, logs) -> dict:
        model = self.model
        logs = model.loggable(logs) if hasattr(model, "loggable") else (logs or {})
        groups = getattr(model, "metric_groups", None)
        return {tag_for(k, groups): v for k, v in logs.items()}

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.step.numpy())
        if logs and step % self.log_every == 0:
            scalars(self.run, {**self._values(logs), **learning_rates(self.model)}, step)

    def on_epoch_end(self, epoch, logs=None):
        names = set(getattr(self.model, "metric_names", ()))
        values = {k: v for k, v in (logs or {}).items() if k in names}
        # at the model's step, like every other tag of the run (one x-axis; a resume rewinds by step)
        scalars(self.run, {f"epoch/{t}": v for t, v in self._values(values).items()}, int(self.model.step.numpy()))
        flush(self.run)

    def on_train_end(self, logs=None):
        flush(self.run)


def read_scalars(log_dir) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in the event files under ``log_dir`` (recursively) as ``{tag: [(step, value)]}``
    in file order: what TensorBoard will show (the tests count points with it)."""
    out: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(Path(log_dir).rglob("events.out.tfevents.*")):
        for event in _events(path):
            for value in event.summary.value:
                if value.HasField("tensor") and value.metadata.plugin_data.plugin_name == "scalars":
                    out.setdefault(value.tag, []).append((int(event.step), float(tf.make_ndarray(value.tensor))))
                elif value.HasField("simple_value"):
                    out.setdefault(value.tag, []).append((int(event.step), float(value.simple_value)))
    return out


def _events(path: Path):
    """The events of one event file, in order. A file cut short (a full disk, a kill mid-write) or
    damaged yields what it holds up to the damage, with a warning naming it."""
    from tensorboard.compat.proto.event_pb2 import Event

    try:
        for record in tf.data.TFRecordDataset(str(path)):
            yield Event.FromString(record.numpy())
    except (tf.errors.DataLossError, tf.errors.OutOfRangeError) as err:
        log.warning("event file %s is cut short or damaged (%s): read up to the damage", path,
                    str(err).splitlines()[0][:120])
    except Exception as err:  # noqa: BLE001 - a protobuf DecodeError from a damaged record
        log.warning("event file %s holds a damaged record (%s: %s): read up to it", path, type(err).__name__, err)


def rewind(run, step: int) -> int:
    """Drop every summary written at a step beyond ``step`` from the run's event files (what a killed
    run wrote after its newest checkpoint; the resumed run writes those steps again), so every tag
    keeps one point per step. The run's writers are closed first; a file is rewritten only if it
    holds such events, into a temporary file renamed over it. Returns the number of events dropped."""
    from .experiment import _umask

    close(run)
    dropped = 0
    for path in sorted(Path(run.logs).rglob("events.out.tfevents.*")):
        if path.is_symlink() or not path.is_file():
            continue
        records, late = [], 0
        for event in _events(path):
            if event.HasField("summary") and event.step > step:
                late += 1
            else:
                records.append(event.SerializeToString())
        if not late:
            continue
        tmp = path.with_name(f".{path.name}.part")
        with tf.io.TFRecordWriter(str(tmp)) as out:
            for record in records:
                out.write(record)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
        dropped += late
    if dropped:
        log.warning("%s: dropped %d TensorBoard value(s) written after the checkpoint at step %d (they are "
                    "trained and logged again)", run.logs, dropped, step)
    return dropped
