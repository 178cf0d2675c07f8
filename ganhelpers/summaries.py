"""TensorBoard for a run: one event folder per run, grouped tags, one chart of the losses, HParams.

Everything a run writes for TensorBoard (scalars, images, histograms, the custom-scalars layout and
the HParams session) goes through one writer into the run's ``logs/`` folder, so
``tensorboard --logdir model_data`` lists each run once, as ``<experiment>/<run>/logs``::

    scalars      losses/*, accuracy/*, wasserstein/*, schedule/*, metrics/*, learning_rate/*,
                 Headline/* and results/* (the run's final figures, at its final step)
    images       samples/fixed_noise, samples/level_RxR
    histograms   critic/* ...
    layout       the Custom Scalars tab's "losses" chart: D's and G's losses in one chart
    hparams      the config's values (trial ``<experiment>/<run>``), so runs compare in the HParams tab

The layout and the HParams session are written once per run (at step 0; a resumed run with a changed
config replaces its session, since TensorBoard reads only the first one of a tag).

Every callback that writes to TensorBoard goes through :func:`writer` (one ``tf.summary`` writer per
run folder, shared in the process) and writes inside ``tf.summary.record_if(True)``: Keras'
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

_WRITERS: dict[str, tf.summary.SummaryWriter] = {}


def writer(run) -> tf.summary.SummaryWriter:
    """The process' one writer for the run's ``logs/`` (created on first use)."""
    key = str(Path(run.logs).resolve())
    if key not in _WRITERS:
        _WRITERS[key] = tf.summary.create_file_writer(str(Path(run.logs)))
    return _WRITERS[key]


def close(run) -> None:
    """Flush and close the run's writer (the next write opens a new event file)."""
    w = _WRITERS.pop(str(Path(run.logs).resolve()), None)
    if w is not None:
        w.close()


def flush(run) -> None:
    w = _WRITERS.get(str(Path(run.logs).resolve()))
    if w is not None:
        w.flush()


def scalars(run, values: dict, step: int) -> None:
    """Write ``{tag: value}`` at ``step`` to the run's writer (non-numbers are skipped)."""
    with writer(run).as_default(), tf.summary.record_if(True):
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
    with writer(run).as_default(), tf.summary.record_if(True):
        tf.summary.image(tag, grid[None], step=int(step))


def histograms(run, values: dict, step: int) -> None:
    with writer(run).as_default(), tf.summary.record_if(True):
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


HPARAMS_TAG = "_hparams_/session_start_info"
LAYOUT_TAG = "custom_scalars__config__"

#: results.json figures shown first in the HParams tab, as ``Headline/<name>`` (see :func:`result_scalars`).
HEADLINE = {"fid": "fid", "kid": "kid", "sgan_test_accuracy": "test_accuracy",
            "baseline_test_accuracy": "baseline_test_accuracy"}


def write_hparams(run, config: dict, extra: dict | None = None) -> bool:
    """The run's hyperparameters as an HParams session in ``logs/`` (trial ``<experiment>/<run>``),
    once per run: an identical session already there is kept; a different one (a resume with a
    changed learning rate) is replaced, since TensorBoard reads only the first session of a run.
    Returns whether it wrote.

    The HParams tab orders nothing itself from here: TensorBoard lists the hyperparameters whose
    values differ between the runs it loaded first (then by name), and the metrics (every scalar tag
    of the run) by name, where the ``Headline/*`` figures come first (a capital sorts before the
    lower-case groups); its table shows the first five of each. ``extra``: values that are not in
    the config but describe the trial (the run loop's ``replicas`` and ``strategy``)."""
    from tensorboard.plugins.hparams import api as hp
    from tensorboard.plugins.hparams import metadata as hp_metadata

    flush(run)  # a session written by this process is on disk before it is looked for
    values, trial = {**flat_hparams(config), **(extra or {})}, f"{run.experiment}/{run.name}"
    pb = hp.hparams_pb(values, trial_id=trial)
    wanted = hp_metadata.parse_session_start_info_plugin_data(pb.value[0].metadata.plugin_data.content)
    found = [hp_metadata.parse_session_start_info_plugin_data(v.metadata.plugin_data.content)
             for v in _tagged(run, HPARAMS_TAG)]
    if found and all(f.hparams == wanted.hparams and f.group_name == wanted.group_name for f in found):
        return False
    if found:
        close(run)
        _rewrite(run, lambda event: not any(v.tag == HPARAMS_TAG for v in event.summary.value))
    with writer(run).as_default(), tf.summary.record_if(True):
        tf.summary.experimental.write_raw_pb(pb.SerializeToString(), step=0)
    return True


def loss_tags(model) -> list[str]:
    """The tags of the run's "losses" chart: every value the model reports under ``losses/`` (D's and
    G's losses, WGAN's critic loss and gradient penalty, SGAN's supervised and unsupervised terms,
    PGGAN's drift) and, for a model with a Wasserstein estimate, ``wasserstein/estimate`` (one point
    per generator iteration)."""
    groups = getattr(model, "metric_groups", None)
    names = tuple(getattr(model, "metric_names", ()))
    tags = [t for t in (tag_for(n, groups) for n in names) if t.startswith("losses/")]
    if "wasserstein" in names:
        tags.append("wasserstein/estimate")
    return tags


def layout(model, name: str):
    """The Custom Scalars layout of a run of model ``name``: category ``losses``, one chart
    ``losses (<name>)`` with :func:`loss_tags` (each an exact-match regex). Runs of one model share
    the chart (TensorBoard merges equal charts of every run's layout)."""
    import re

    from tensorboard.plugins.custom_scalar import layout_pb2

    chart = layout_pb2.Chart(title=f"losses ({name})", multiline=layout_pb2.MultilineChartContent(
        tag=[f"^{re.escape(t)}$" for t in loss_tags(model)]))
    return layout_pb2.Layout(category=[layout_pb2.Category(title="losses", chart=[chart])])


def write_layout(run, model, name: str) -> bool:
    """The run's Custom Scalars layout (:func:`layout`) at step 0, once per run; returns whether it wrote."""
    from tensorboard.plugins.custom_scalar import summary as cs_summary

    flush(run)
    if not loss_tags(model) or any(True for _ in _tagged(run, LAYOUT_TAG)):
        return False
    with writer(run).as_default(), tf.summary.record_if(True):
        tf.summary.experimental.write_raw_pb(cs_summary.pb(layout(model, name)).SerializeToString(), step=0)
    return True


def read_layout(log_dir):
    """Every Custom Scalars layout in the event files of ``log_dir`` (a list of ``layout_pb2.Layout``)."""
    from tensorboard.plugins.custom_scalar import layout_pb2

    out = []
    for path in sorted(Path(log_dir).rglob("events.out.tfevents.*")):
        for event in _events(path):
            for value in event.summary.value:
                if value.tag == LAYOUT_TAG:
                    out.append(layout_pb2.Layout.FromString(tf.make_ndarray(value.tensor).item()))
    return out


def result_scalars(results: dict) -> dict:
    """The numeric figures of a ``results.json`` as scalar tags: :data:`HEADLINE` ones as
    ``Headline/<name>`` (first in the HParams tab), the rest as ``results/<name>``; step and epoch
    are the x-axis, not figures."""
    out = {}
    for key, value in results.items():
        if isinstance(value, int | float) and not isinstance(value, bool) and key not in ("step", "epoch"):
            out[f"Headline/{HEADLINE[key]}" if key in HEADLINE else f"results/{key}"] = value
    return out


def _tagged(run, tag: str):
    """The summary values named ``tag`` in the run's event files, in file order."""
    for path in sorted(Path(run.logs).rglob("events.out.tfevents.*")):
        for event in _events(path):
            for value in event.summary.value:
                if value.tag == tag:
                    yield value


# -- the callback -------------------------------------------------------------------------------

class TensorBoard(keras.callbacks.Callback):
    """Every ``log_every`` steps: the model's reported values under grouped tags and each
    optimizer's learning rate, at step = the model's checkpointed ``step`` (so a resumed run
    continues its curves). At the start, once per run: the HParams session (``config``) and the
    Custom Scalars layout of the losses (model ``config["model"]``). The step scalars follow the same
    schedule as :class:`~ganhelpers.callbacks.LossHistory`, so ``losses.csv`` and TensorBoard hold
    the same points. (No ``epoch/*`` copies: an epoch's mean is the running mean logged at its last
    step.)"""

    def __init__(self, run, log_every: int = 10, config: dict | None = None):
        super().__init__()
        self.run, self.log_every, self.config = run, int(log_every), config

    def on_train_begin(self, logs=None):
        if self.config is not None:
            from .distribute import strategy_name

            strategy = self.model.distribute_strategy
            write_hparams(self.run, self.config, {"replicas": int(strategy.num_replicas_in_sync),
                                                  "strategy": strategy_name(strategy)})
            write_layout(self.run, self.model, self.config.get("model", type(self.model).__name__.lower()))

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


def _rewrite(run, keep) -> int:
    """Rewrite each event file of the run that holds events ``keep(event)`` rejects without them (into
    a temporary file renamed over it; links and non-files are left alone). Returns the number dropped.
    The run's writer must be closed first."""
    from .experiment import _umask

    dropped = 0
    for path in sorted(Path(run.logs).rglob("events.out.tfevents.*")):
        if path.is_symlink() or not path.is_file():
            continue
        records, late = [], 0
        for event in _events(path):
            if keep(event):
                records.append(event.SerializeToString())
            else:
                late += 1
        if not late:
            continue
        tmp = path.with_name(f".{path.name}.part")
        with tf.io.TFRecordWriter(str(tmp)) as out:
            for record in records:
                out.write(record)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
        dropped += late
    return dropped


def rewind(run, step: int) -> int:
    """Drop every summary written at a step beyond ``step`` from the run's event files (what a killed
    run wrote after its newest checkpoint; the resumed run writes those steps again), so every tag
    keeps one point per step. The run's writer is closed first; a file is rewritten only if it
    holds such events, into a temporary file renamed over it. Returns the number of events dropped."""
    close(run)
    dropped = _rewrite(run, lambda event: not (event.HasField("summary") and event.step > step))
    if dropped:
        log.warning("%s: dropped %d TensorBoard value(s) written after the checkpoint at step %d (they are "
                    "trained and logged again)", run.logs, dropped, step)
    return dropped
