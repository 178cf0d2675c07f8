"""Keras callbacks for GAN training: label noise, checkpoints that resume, fixed-noise snapshots,
the GIF writer, loss history and plot, and a TensorBoard callback whose steps survive a resume.

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
    """Every ``every_n_steps`` steps: G on the model's fixed noise -> one PNG grid in ``tmp/``
    (``step_00000050.png``; the GIF's frames) and the same grid as a TensorBoard image.

    Using one fixed noise batch for every frame makes the frames comparable (TF DCGAN tutorial).
    A snapshot is also taken before the first step of a fresh run.
    """

    def __init__(self, run, every_n_steps: int = 50, num_images: int | None = None, ncols: int | None = None):
        super().__init__()
        self.run = run
        self.every_n_steps, self.num_images, self.ncols = every_n_steps, num_images, ncols
        self.writer = None

    def on_train_begin(self, logs=None):
        self.writer = tf.summary.create_file_writer(str(self.run.logs / "images"))
        if int(self.model.step.numpy()) == 0 and not self.frames():
            self.snapshot()

    def frames(self) -> list[Path]:
        return sorted(self.run.tmp.glob("step_*.png"))

    def snapshot(self) -> Path:
        step = int(self.model.step.numpy())
        noise = self.model.fixed_noise
        if self.num_images:
            noise = noise[: self.num_images]
        grid = images.make_grid(self.model.generator(noise, training=False).numpy(), self.ncols)
        path = images.save_png(self.run.tmp / f"step_{step:08d}.png", grid)
        with self.writer.as_default():
            tf.summary.image("fixed_noise", grid[None], step=step)
        self.writer.flush()
        return path

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.step.numpy()) % self.every_n_steps == 0:
            self.snapshot()

    def on_train_end(self, logs=None):
        if self.writer is not None:
            self.writer.close()


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
    """Appends the losses to ``samples/losses.csv`` every ``every_n_steps`` steps and redraws
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
            order = list(getattr(self.model, "metric_names", ())) + sorted(logs)
            keys = self.keys or tuple(dict.fromkeys(k for k in order if "loss" in k and k in logs))
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


def plot_losses(csv_path, png_path, title: str | None = None) -> Path:
    """Plot every column of a loss CSV against ``step``; written atomically as a PNG."""
    import io

    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    data = read_loss_csv(csv_path)
    fig, ax = plt.subplots(figsize=(8, 4))
    for key, values in data.items():
        if key != "step":
            ax.plot(data["step"][: len(values)], values, label=key)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (running mean over the epoch)")
    ax.set_title(title or Path(csv_path).parent.parent.name)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return atomic_write(png_path, buf.getvalue())


class TensorBoard(keras.callbacks.TensorBoard):
    """``keras.callbacks.TensorBoard`` with two fixes for GAN runs:

    * the batch step continues from the model's restored ``step`` after a resume (the stock
      callback restarts at 0 on every ``fit``);
    * epoch scalars are always written (Keras 3 writes them inside the last batch's
      ``record_if(step % update_freq == 0)`` context, so with an integer ``update_freq`` most
      epochs were silently dropped).
    """

    def __init__(self, run_or_dir, update_freq=10, **kwargs):
        super().__init__(log_dir=str(_as_dir(run_or_dir, "logs")), update_freq=update_freq, **kwargs)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._global_train_batch = int(self.model.step.numpy())

    def on_epoch_end(self, epoch, logs=None):
        with tf.summary.record_if(True):
            super().on_epoch_end(epoch, logs)


def standard_callbacks(run, snapshot_every: int = 50, checkpoint_every_steps: int | None = None,
                       checkpoint_every_epochs: int | None = 1, keep: int = 3, gif_fps: float = 5.0,
                       loss_every: int = 10, tensorboard: bool = True) -> list[keras.callbacks.Callback]:
    """The callbacks every notebook uses: checkpoint (first, so it restores before the others
    start), fixed-noise snapshots, loss history + plot, TensorBoard, GIF at the end."""
    cbs = [Checkpoint(run, every_n_steps=checkpoint_every_steps, every_n_epochs=checkpoint_every_epochs, keep=keep),
           FixedNoiseSnapshots(run, every_n_steps=snapshot_every),
           LossHistory(run, every_n_steps=loss_every)]
    if tensorboard:
        cbs.append(TensorBoard(run, update_freq=loss_every))
    cbs.append(GifWriter(run, fps=gif_fps))
    return cbs


__all__ = ["LabelNoise", "Checkpoint", "FixedNoiseSnapshots", "GifWriter", "LossHistory", "TensorBoard",
           "standard_callbacks", "write_gif", "plot_losses", "restore_latest"]


# The callbacks of the other papers live beside their models (one module per paper); they are
# reachable from here too, imported on first use: ``callbacks.WeightClip``, ``callbacks.FIDMonitor``,
# ``callbacks.FadeIn``.
_ELSEWHERE = {"WeightClip": "wgan", "FIDMonitor": "fid", "FadeIn": "pggan"}


def __getattr__(name):
    if name in _ELSEWHERE:
        import importlib

        return getattr(importlib.import_module(f".{_ELSEWHERE[name]}", __package__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
