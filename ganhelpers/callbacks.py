"""Keras callbacks for GAN training: label noise, checkpoints that resume, fixed-noise snapshots,
the GIF writer, and the loss history and plot. TensorBoard is :mod:`ganhelpers.summaries`; the
papers' own callbacks live beside their models (``wgan.WeightClip``, ``pggan.FadeIn`` ...); the
standard set every run gets is :func:`ganhelpers.run.standard_callbacks`.

All are plain ``keras.callbacks.Callback`` subclasses; none of them touches ``train_step``: they
read and assign the model's ``tf.Variable`` s and write files.
"""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from . import images
from .experiment import Run, atomic_write

log = logging.getLogger(__name__)


def _as_dir(run_or_dir, sub: str) -> Path:
    return getattr(run_or_dir, sub) if isinstance(run_or_dir, Run) else Path(run_or_dir)


class LabelNoise(keras.callbacks.Callback):
    """Soft and noisy labels for D (Salimans et al. 2016 "one-sided label smoothing" and the bird
    experiment's label noise).

    Real targets are drawn uniformly from ``real_range``, fake targets from ``fake_range`` and the
    generator's targets from ``generator_range``; each D target is flipped (t -> 1 - t) with
    probability ``flip_prob * flip_decay ** epoch``. The values live in the model's tf.Variables
    (``real_target_range``, ``fake_target_range``, ``generator_target_range``, ``flip_prob``).
    """

    def __init__(self, real_range=(0.8, 1.0), fake_range=(0.0, 0.2), generator_range=(0.8, 1.0),
                 flip_prob: float = 0.0, flip_decay: float = 1.0):
        super().__init__()
        for name, (lo, hi) in (("real_range", real_range), ("fake_range", fake_range),
                               ("generator_range", generator_range)):
            if not 0.0 <= lo <= hi <= 1.0:
                raise ValueError(f"LabelNoise {name} must satisfy 0 <= low <= high <= 1, got {(lo, hi)}")
        if not 0.0 <= flip_prob <= 1.0 or not 0.0 <= flip_decay <= 1.0:
            raise ValueError(f"flip_prob and flip_decay must lie in [0, 1], got {flip_prob}, {flip_decay}")
        self.real_range, self.fake_range = tuple(real_range), tuple(fake_range)
        self.generator_range = tuple(generator_range)
        self.flip_prob, self.flip_decay = flip_prob, flip_decay

    def flip_prob_at(self, epoch: int) -> float:
        return self.flip_prob * self.flip_decay ** epoch

    def apply(self, model, epoch: int = 0) -> None:
        model.real_target_range.assign(self.real_range)
        model.fake_target_range.assign(self.fake_range)
        model.generator_target_range.assign(self.generator_range)
        model.flip_prob.assign(self.flip_prob_at(epoch))

    def on_train_begin(self, logs=None):
        self.apply(self.model, int(self.model.epoch.numpy()))

    def on_epoch_begin(self, epoch, logs=None):
        self.model.flip_prob.assign(self.flip_prob_at(epoch))


def _finite_logs(logs) -> tuple[bool, str]:
    for name, value in (logs or {}).items():
        try:
            v = float(value)
        except (TypeError, ValueError):
            continue
        if not math.isfinite(v):
            return False, f"{name}={v}"
    return True, ""


class Checkpoint(keras.callbacks.Callback):
    """Saves everything a run needs to resume (``model.checkpoint_items()``) with
    ``tf.train.CheckpointManager``: every ``every_n_steps`` steps, every ``every_n_epochs`` epochs
    and at the end of training, keeping the newest ``keep``.

    Restores the newest readable checkpoint before training (``GAN.fit`` calls
    ``restore_before_fit`` so the epoch loop continues at the restored epoch). TensorFlow writes a
    checkpoint to temporary files and updates the index atomically, so a kill at any moment leaves
    the previous checkpoint intact; an unreadable newest checkpoint is skipped with a warning.

    A non-finite loss stops training with a ``FloatingPointError`` *before* anything is saved, so
    the checkpoints on disk always hold finite weights.
    """

    def __init__(self, run_or_dir, every_n_steps: int | None = None, every_n_epochs: int | None = 1,
                 keep: int = 3):
        super().__init__()
        self.directory = _as_dir(run_or_dir, "checkpoints")
        self.every_n_steps, self.every_n_epochs, self.keep = every_n_steps, every_n_epochs, keep
        self._model = None
        self.manager = None
        self.restored_path: str | None = None

    def _setup(self, model) -> None:
        if self._model is model:
            return
        model.build_optimizers()
        self.checkpoint = tf.train.Checkpoint(**model.checkpoint_items())
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(self.directory), max_to_keep=self.keep)
        self._model = model

    def restore_before_fit(self, model) -> str | None:
        """Restore the newest readable checkpoint into ``model``; returns its path (or None)."""
        self._setup(model)
        self.restored_path = restore_latest(self.checkpoint, self.manager)
        if self.restored_path:
            log.info("resumed from %s at step %d, epoch %d", self.restored_path,
                     int(model.step.numpy()), int(model.epoch.numpy()))
        self._last_saved_step = int(model.step.numpy())
        return self.restored_path

    def on_train_begin(self, logs=None):
        if self._model is not self.model:
            self.restore_before_fit(self.model)

    def save(self) -> str:
        path = self.manager.save(checkpoint_number=int(self._model.step.numpy()))
        self._last_saved_step = int(self._model.step.numpy())
        return path

    def on_train_batch_end(self, batch, logs=None):
        ok, what = _finite_logs(logs)
        if not ok:
            step = int(self.model.step.numpy())
            self.model.stop_training = True
            latest = self.manager.latest_checkpoint
            kept = (f"the newest good checkpoint is {latest}" if latest
                    else f"no checkpoint was saved yet in {self.directory}")
            raise FloatingPointError(
                f"non-finite loss ({what}) at step {step}: training stopped and nothing was saved; {kept}. "
                "Lower the learning rate or check the data, then run again to resume from the checkpoint.")
        step = int(self.model.step.numpy())
        if self.every_n_steps and step % self.every_n_steps == 0 and step != self._last_saved_step:
            self.save()

    def on_epoch_end(self, epoch, logs=None):
        self.model.epoch.assign(epoch + 1)
        if self.every_n_epochs and (epoch + 1) % self.every_n_epochs == 0:
            self.save()

    def on_train_end(self, logs=None):
        if int(self.model.step.numpy()) != self._last_saved_step or self.manager.latest_checkpoint is None:
            self.save()


def restore_latest(checkpoint: tf.train.Checkpoint, manager: tf.train.CheckpointManager) -> str | None:
    """Restore the newest checkpoint that reads back; skip (and warn about) unreadable ones."""
    for path in reversed(manager.checkpoints):
        try:
            checkpoint.restore(path).assert_existing_objects_matched()
            return path
        except Exception as err:  # noqa: BLE001 - TF raises OpError, ValueError, IndexError... on bad files
            log.warning("checkpoint %s is unreadable (%s); trying an older one", path,
                        str(err).splitlines()[0] if str(err) else type(err).__name__)
    return None


class FixedNoiseSnapshots(keras.callbacks.Callback):
    """Every ``every_n_steps`` steps: the model's snapshot images (``model.snapshot_images()``: G
    on the fixed noise) -> one PNG grid in ``tmp/`` (``step_00000050.png``; the GIF's frames) and
    the same grid as the TensorBoard image ``samples/fixed_noise``.

    Using one fixed noise batch for every frame makes the frames comparable (TF DCGAN tutorial).
    A snapshot is also taken before the first step of a fresh run.
    """

    def __init__(self, run, every_n_steps: int = 50, num_images: int | None = None, ncols: int | None = None):
        super().__init__()
        self.run = run
        self.every_n_steps, self.num_images, self.ncols = every_n_steps, num_images, ncols

    def on_train_begin(self, logs=None):
        if int(self.model.step.numpy()) == 0 and not self.frames():
            self.snapshot()

    def frames(self) -> list[Path]:
        return sorted(self.run.tmp.glob("step_*.png"))

    def snapshot(self) -> Path:
        from . import summaries

        step = int(self.model.step.numpy())
        imgs = self.model.snapshot_images()
        if self.num_images:
            imgs = imgs[: self.num_images]
        grid = images.make_grid(imgs, self.ncols)
        path = images.save_png(self.run.tmp / f"step_{step:08d}.png", grid)
        summaries.image(self.run, "samples/fixed_noise", grid, step)
        return path

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.step.numpy()) % self.every_n_steps == 0:
            self.snapshot()


class GifWriter(keras.callbacks.Callback):
    """At the end of training, assembles every ``tmp/step_*.png`` frame into ``gifs/<name>.gif``."""

    def __init__(self, run, name: str | None = None, fps: float = 5.0):
        super().__init__()
        self.run, self.fps = run, fps
        self.name = name or run.experiment

    def on_train_end(self, logs=None):
        write_gif(self.run, self.name, self.fps)


def write_gif(run, name: str | None = None, fps: float = 5.0) -> Path:
    """(Re)build the run's GIF from its ``tmp/`` frames; returns the GIF's path."""
    frames = sorted(run.tmp.glob("step_*.png"))
    if not frames:
        raise FileNotFoundError(f"no frames (step_*.png) in {run.tmp}: train with FixedNoiseSnapshots first")
    out = run.gifs / f"{name or run.experiment}.gif"
    images.assemble_gif(frames, out, fps=fps)
    log.info("wrote %s (%d frames)", out, len(frames))
    return out


class LossHistory(keras.callbacks.Callback):
    """Appends every value the model reports (losses, accuracies, the Wasserstein estimate ...) to
    ``samples/losses.csv`` every ``every_n_steps`` steps and redraws
    ``samples/losses.png`` at each epoch end. The CSV is appended to across resumes, so the plot
    shows the whole run. Logged values are Keras's running means over the current epoch."""

    def __init__(self, run, every_n_steps: int = 10, keys: tuple[str, ...] | None = None):
        super().__init__()
        self.run, self.every_n_steps, self.keys = run, every_n_steps, keys
        self.csv_path = run.samples / "losses.csv"
        self.png_path = run.samples / "losses.png"
        self._rows: list[dict] = []

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.step.numpy())
        if logs and step % self.every_n_steps == 0:
            logs = self.model.loggable(logs) if hasattr(self.model, "loggable") else logs
            order = list(getattr(self.model, "metric_names", ())) + sorted(logs)
            keys = self.keys or tuple(dict.fromkeys(k for k in order if k in logs))
            self._rows.append({"step": step, **{k: float(logs[k]) for k in keys if k in logs}})

    def _flush(self):
        if not self._rows:
            return
        fields = list(self._rows[0])
        new = not self.csv_path.exists()
        with open(self.csv_path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerows(self._rows)
        self._rows = []

    def on_epoch_end(self, epoch, logs=None):
        self._flush()
        if self.csv_path.exists():
            plot_losses(self.csv_path, self.png_path)

    def on_train_end(self, logs=None):
        self._flush()


def read_loss_csv(path) -> dict[str, np.ndarray]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    return {k: np.array([float(r[k]) for r in rows if r.get(k) not in (None, "")]) for k in rows[0]}


def loss_figure(csv_path, title: str | None = None):
    """A matplotlib ``Figure`` of a loss CSV: the losses of both networks on one chart, any other
    values (accuracies, estimates) on a second one. Drawn on a ``Figure`` object, never through
    pyplot, so the caller's backend (a notebook's inline figures) is left alone."""
    from matplotlib.figure import Figure

    data = read_loss_csv(csv_path)
    steps = data.get("step", np.array([]))
    losses = [k for k in data if k != "step" and "loss" in k]
    others = [k for k in data if k != "step" and k not in losses]
    fig = Figure(figsize=(9, 4 if not others else 6.5))
    axes = fig.subplots(2 if others else 1, 1, sharex=True, squeeze=False)[:, 0]
    for ax, keys, label in ((axes[0], losses, "loss"), (axes[-1], others, "value")):
        for key in keys:
            ax.plot(steps[: len(data[key])], data[key], label=key)
        ax.set_ylabel(f"{label} (running mean over the epoch)")
        if keys:
            ax.legend(loc="best", fontsize="small")
    axes[-1].set_xlabel("step")
    axes[0].set_title(title or Path(csv_path).parent.parent.name)
    fig.tight_layout()
    return fig


def plot_losses(csv_path, png_path, title: str | None = None) -> Path:
    """:func:`loss_figure` written atomically as a PNG."""
    import io

    buf = io.BytesIO()
    loss_figure(csv_path, title).savefig(buf, format="png", dpi=100)
    return atomic_write(png_path, buf.getvalue())


__all__ = ["LabelNoise", "Checkpoint", "FixedNoiseSnapshots", "GifWriter", "LossHistory", "write_gif",
           "loss_figure", "plot_losses", "restore_latest"]
