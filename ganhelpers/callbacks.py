"""Keras callbacks for GAN training: label noise, checkpoints that resume, fixed-noise snapshots,
the GIF writer, and the loss history and plot. TensorBoard is :mod:`ganhelpers.summaries`; the
papers' own callbacks live beside their models (``wgan.WeightClip``, ``pggan.FadeIn`` ...); the
standard set every run gets is :func:`ganhelpers.run.standard_callbacks`.

All are plain ``keras.callbacks.Callback`` subclasses; none of them touches ``train_step``: they
read and assign the model's ``tf.Variable`` s and write files.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import re
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from . import images
from .experiment import DamagedRunFile, Run, atomic_write, set_aside

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
    the previous checkpoint intact; an unreadable newest checkpoint is skipped with a warning, and
    when checkpoints exist but none is readable, :class:`UnreadableCheckpoints` is raised before
    training starts (see :func:`restore_latest`). A missing or stale index is rebuilt from the
    ``ckpt-*.index`` files (:func:`checkpoint_manager`).

    A non-finite loss stops training with a ``FloatingPointError`` *before* anything is saved, so
    the checkpoints on disk always hold finite weights.
    """

    def __init__(self, run_or_dir, every_n_steps: int | None = None, every_n_epochs: int | None = 1,
                 keep: int = 3, restore: bool = True):
        super().__init__()
        self.directory = _as_dir(run_or_dir, "checkpoints")
        self.run = run_or_dir if isinstance(run_or_dir, Run) else None
        self.every_n_steps, self.every_n_epochs, self.keep = every_n_steps, every_n_epochs, keep
        # restore=False: the caller restored already (the run loop does, once, before fit); restoring
        # again here would bring back the checkpoint's learning rates over the config's
        self.restore = restore
        self._model = None
        self.manager = None
        self.restored_path: str | None = None

    def _setup(self, model) -> None:
        if self._model is model:
            return
        model.build_optimizers()
        self.checkpoint = tf.train.Checkpoint(**model.checkpoint_items())
        self.manager = checkpoint_manager(self.checkpoint, self.directory, self.keep)
        self._model = model

    def restore_before_fit(self, model) -> str | None:
        """Restore the newest readable checkpoint into ``model`` (with ``restore=False``: only get
        ready to save); returns its path (or None)."""
        self._setup(model)
        self.restored_path = restore_latest(self.checkpoint, self.manager) if self.restore else None
        if self.restored_path:
            log.info("resumed from %s at step %d, epoch %d", self.restored_path,
                     int(model.step.numpy()), int(model.epoch.numpy()))
        self._last_saved_step = int(model.step.numpy())
        return self.restored_path

    def on_train_begin(self, logs=None):
        if self._model is not self.model:
            self.restore_before_fit(self.model)

    def save(self) -> str:
        if self.run is not None:  # what TensorBoard shows reaches the disk before the checkpoint does
            from . import summaries

            summaries.flush(self.run)
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


class UnreadableCheckpoints(RuntimeError):
    """Checkpoints exist, but none of them restores into the model."""


_CKPT_INDEX = re.compile(r"ckpt-(\d+)\.index")


def checkpoint_manager(checkpoint: tf.train.Checkpoint, directory, keep: int | None = None
                       ) -> tf.train.CheckpointManager:
    """``tf.train.CheckpointManager(checkpoint, directory, max_to_keep=keep)`` whose list is rebuilt,
    with a warning, from the ``ckpt-<step>.index`` files when the index file ``checkpoint`` is
    missing, unreadable or older than the newest of them (TensorFlow would otherwise start again
    at step 0 and overwrite them). Used by training and by ``sample`` alike."""
    directory = Path(directory)
    check_checkpoint_index(directory)
    found = sorted((int(m.group(1)), m.group(0)[: -len(".index")]) for f in
                   (directory.iterdir() if directory.is_dir() else ()) if (m := _CKPT_INDEX.fullmatch(f.name)))
    try:
        manager = tf.train.CheckpointManager(checkpoint, str(directory), max_to_keep=keep)
        listed = list(manager.checkpoints)
    except Exception as err:  # noqa: BLE001 - a damaged index is a text-proto parse error
        log.warning("checkpoint index %s is unreadable (%s)", directory / "checkpoint", err)
        manager, listed = None, []
    if not found:
        return manager or tf.train.CheckpointManager(checkpoint, str(directory), max_to_keep=keep)
    listed_numbers = [int(m.group(1)) for p in listed if (m := re.search(r"ckpt-(\d+)$", p))]
    if manager is not None and listed_numbers and max(listed_numbers) >= found[-1][0]:
        return manager
    names = sorted({name for _, name in found} | {Path(p).name for p in listed},
                   key=lambda n: int(n.split("-")[1]))
    log.warning("checkpoint index %s is missing or out of date: rebuilt it from the files (%s)",
                directory / "checkpoint", ", ".join(names))
    try:
        # The manager lists only checkpoints newer than last_preserved_timestamp: give the files' times.
        times = [(directory / f"{n}.index").stat().st_mtime if (directory / f"{n}.index").exists() else 0.0
                 for n in names]
        tf.compat.v1.train.update_checkpoint_state(str(directory), names[-1], all_model_checkpoint_paths=names,
                                                   all_model_checkpoint_timestamps=times,
                                                   last_preserved_timestamp=min(times) - 1.0)
    except (OSError, tf.errors.OpError) as err:
        log.warning("cannot write the rebuilt index in %s (%s): restore by hand with "
                    "tf.train.Checkpoint(...).restore(%r)", directory, err, str(directory / names[-1]))
    return tf.train.CheckpointManager(checkpoint, str(directory), max_to_keep=keep)


class UnsafeCheckpointIndex(RuntimeError):
    """A checkpoint index naming files outside its own folder (a crafted or foreign ``checkpoint`` file)."""


def check_checkpoint_index(directory) -> None:
    """Refuse a ``checkpoint`` index that lists a path outside ``directory`` (``/elsewhere/ckpt-1``,
    ``../../other_run/checkpoints/ckpt-48``) or anything but ``ckpt-<n>``: TensorFlow's manager would
    restore from those files and, past ``max_to_keep``, delete them. Raises
    :class:`UnsafeCheckpointIndex` naming the entries; the way forward is to delete the index (it is
    rebuilt from the folder's own ``ckpt-*.index`` files)."""
    index = Path(directory) / "checkpoint"
    if not index.is_file() or index.is_symlink():
        return
    try:
        text = index.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return
    bad = []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() not in ("model_checkpoint_path", "all_model_checkpoint_paths"):
            continue
        entry = value.strip().strip('"')
        own = re.fullmatch(r"ckpt-\d+", Path(entry).name) and (
            Path(entry).name == entry or os.path.realpath(Path(entry).parent) == os.path.realpath(directory))
        if not own:  # an absolute path is accepted only into this very folder (older TensorFlow wrote those)
            bad.append(entry)
    if bad:
        shown = ", ".join(repr(b) for b in dict.fromkeys(bad))
        raise UnsafeCheckpointIndex(
            f"checkpoint index {index} lists {shown}: only this folder's own ckpt-<step> files are used, since "
            "TensorFlow would read those paths and delete them as old checkpoints. Delete the index file "
            f"({index}); it is rebuilt from the ckpt-*.index files beside it at the next start.")


def restore_latest(checkpoint: tf.train.Checkpoint, manager: tf.train.CheckpointManager) -> str | None:
    """Restore the newest checkpoint that reads back, skipping (and warning about) unreadable ones;
    returns its path, or None when there is no checkpoint at all. When checkpoints exist but none
    restores, raises :class:`UnreadableCheckpoints` (a run never silently starts again at step 0);
    the model may then hold some of their values, so it must not be trained."""
    problems = []
    for path in reversed(manager.checkpoints):
        try:
            checkpoint.restore(path).assert_existing_objects_matched()
            return path
        except Exception as err:  # noqa: BLE001 - TF raises OpError, ValueError, IndexError... on bad files
            why = str(err).splitlines()[0] if str(err) else type(err).__name__
            problems.append(f"{Path(path).name}: {why}")
            log.warning("checkpoint %s is unreadable (%s); trying an older one", path, why)
    if problems:
        raise UnreadableCheckpoints(
            f"none of the {len(problems)} checkpoint(s) in {manager.directory} restores into this model "
            f"({'; '.join(problems)[:600]}). They are damaged or belong to another model or config. To start "
            "this run again from step 0 use fresh=True (CLI: --fresh), which deletes them; to keep them, "
            "train under a new run name.")
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
    """At the end of training, assembles the ``tmp/step_*.png`` frames into the run's GIF
    (:func:`gif_path`; at most ``images.MAX_GIF_FRAMES`` frames, evenly thinned)."""

    def __init__(self, run, name: str | None = None, fps: float = 5.0):
        super().__init__()
        self.run, self.fps, self.name = run, fps, name

    def on_train_end(self, logs=None):
        write_gif(self.run, self.name, self.fps)


def gif_path(run, name: str | None = None) -> Path:
    """``gifs/<experiment>-<run>.gif``: named after the run, so GIFs copied side by side differ."""
    return run.gifs / f"{name or f'{run.experiment}-{run.name}'}.gif"


def write_gif(run, name: str | None = None, fps: float = 5.0, max_frames: int | None = images.MAX_GIF_FRAMES
              ) -> Path:
    """(Re)build the run's GIF from its ``tmp/`` frames; returns the GIF's path."""
    frames = sorted(run.tmp.glob("step_*.png"))
    if not frames:
        raise FileNotFoundError(f"no frames (step_*.png) in {run.tmp}: train with FixedNoiseSnapshots first")
    out = gif_path(run, name)
    images.assemble_gif(frames, out, fps=fps, max_frames=max_frames)
    log.info("wrote %s (%d of %d frames)", out, min(len(frames), max_frames or len(frames)), len(frames))
    return out


def latent_walk(model, path, frames: int = 60, seed: int = 0, num_images: int = 16, fps: float = 15.0) -> Path:
    """A GIF of G along closed loops in the latent space: ``num_images`` great circles through
    two random noise vectors each (spherical interpolation keeps the noise's norm, so every frame
    is a typical sample), ``frames`` steps round. Uses the model's weights as they are (restore a
    checkpoint first: ``ganhelpers.run.restore_model``)."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(d) for d in model.latent_shape)
    a = rng.standard_normal((num_images, *shape)).astype("float32")
    b = rng.standard_normal((num_images, *shape)).astype("float32")
    grids = []
    for t in np.linspace(0.0, 2.0 * np.pi, frames, endpoint=False):
        z = (np.cos(t) * a + np.sin(t) * b).astype("float32")  # a, b ~ N(0, I): z ~ N(0, I) for every t
        grids.append(images.make_grid(model.generate(noise=z)))
    return images.assemble_gif(grids, path, fps=fps, max_frames=None)


class LossHistory(keras.callbacks.Callback):
    """Appends every value the model reports (losses, accuracies, the Wasserstein estimate ...) to
    ``samples/losses.csv`` every ``every_n_steps`` steps and redraws
    ``samples/losses.png`` at an epoch end once ``plot_every_seconds`` have passed since the last
    drawing (the first epoch end draws), and at the end of training. The CSV is appended to across
    resumes, so the plot shows the whole run. Logged values are Keras's running means over the
    current epoch.

    Why the redraw is timed: a drawing took 213 ms on a 2-core CPU, and the workshop's WGAN has 638
    epochs of 28 steps (the digits are small), so drawing at every epoch end cost it 2.3 of its 11.4
    minutes."""

    def __init__(self, run, every_n_steps: int = 10, keys: tuple[str, ...] | None = None,
                 plot_every_seconds: float = 10.0):
        super().__init__()
        self.run, self.every_n_steps, self.keys = run, every_n_steps, keys
        self.plot_every_seconds = plot_every_seconds
        self.csv_path = run.samples / "losses.csv"
        self.png_path = run.samples / "losses.png"
        self._rows: list[dict] = []
        self._drawn_at: float | None = None

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.step.numpy())
        if logs and step % self.every_n_steps == 0:
            shown = self.model.loggable(logs) if hasattr(self.model, "loggable") else logs
            order = list(getattr(self.model, "metric_names", ())) + sorted(logs)
            keys = self.keys or tuple(dict.fromkeys(k for k in order if k in logs))
            # every key in every row (empty where the model has nothing to show yet), so the columns
            # are known from the first row on; written at once, so a kill, Ctrl-C or a full disk
            # loses no row that the checkpoint and TensorBoard hold
            self._rows.append({"step": step, **{k: float(shown[k]) if k in shown else "" for k in keys}})
            self._flush()

    def _flush(self):
        append_csv_rows(self.csv_path, self._rows)
        self._rows = []

    def _draw(self):
        self._drawn_at = time.monotonic()
        if self.csv_path.exists():
            try:
                plot_losses(self.csv_path, self.png_path)
            except (DamagedRunFile, ValueError) as err:  # a hand-edited CSV must not stop training
                log.warning("cannot draw %s (%s); training goes on", self.png_path, err)

    def on_epoch_end(self, epoch, logs=None):
        self._flush()
        if self._drawn_at is None or time.monotonic() - self._drawn_at >= self.plot_every_seconds:
            self._draw()

    def on_train_end(self, logs=None):
        self._flush()
        self._draw()


def append_csv_rows(path: Path, rows: list[dict], fields: list[str] | None = None) -> None:
    """Append ``rows`` to a CSV in one write, with a header if the file is new. A torn last line (a
    kill during an earlier write) is cut off first, so it cannot join the next row. One set of
    columns per file: the existing header, else ``fields``, else every key the rows have (a value
    reported only later, as WGAN's generator_loss, stays an empty cell until then)."""
    if not rows:
        return
    expected = fields or list(dict.fromkeys(k for row in rows for k in row))
    if path.exists() and os.path.getsize(path) > 0:
        try:
            _csv_header(path, expected[0])
        except DamagedRunFile as err:  # moved aside, never deleted; a new file starts with the new rows
            set_aside(path, str(err).split(": ", 1)[-1])
    new = not path.exists() or _drop_torn_tail(path) == 0
    fields = (None if new else _csv_header(path, expected[0])) or expected
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    if new:
        w.writeheader()
    w.writerows(rows)
    # O_NOFOLLOW: never append through a link planted in the run folder
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
    with os.fdopen(fd, "a", newline="", encoding="utf-8") as f:
        f.write(buf.getvalue())
        f.flush()


def _csv_header(path: Path, first: str | None = None) -> list[str]:
    """The header of a CSV the loggers write; :class:`DamagedRunFile` when it is not one (not UTF-8,
    empty or repeated column names, or a first column other than ``first``)."""
    with open(path, "rb") as f:
        line = f.readline()
    try:  # the first line alone: a damaged byte in a row is that row's problem (the readers skip it)
        header = next(csv.reader([line.decode("utf-8")]), [])
    except UnicodeDecodeError as err:
        raise DamagedRunFile(f"{path}: has a header that is not UTF-8 text (byte {err.start})") from None
    if not header or any(not name.strip() for name in header) or len(set(header)) != len(header) \
            or (first is not None and header[0] != first):
        raise DamagedRunFile(f"{path}: has a damaged header {header[:6]!r}")
    return header


def _drop_torn_tail(path: Path) -> int:
    """Truncate ``path`` after its last newline (dropping a torn last line, with a warning); returns
    the size left."""
    with os.fdopen(os.open(path, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0)), "rb+") as f:
        size = f.seek(0, 2)
        if size == 0:
            return 0
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return size
        start = max(0, size - (1 << 16))
        f.seek(start)
        tail = f.read()
        cut = start + tail.rfind(b"\n") + 1 if b"\n" in tail else 0
        f.truncate(cut)
    log.warning("%s ended in a torn line (%r), dropped: the process was killed while writing it", path,
                tail[-80:].decode("utf-8", "replace"))
    return cut


def rewind_csv(path: Path, limit: int, column: str = "step") -> int:
    """Drop the rows of a logger's CSV whose ``column`` is beyond ``limit`` (what a killed run logged
    after its newest checkpoint, which the resumed run logs again), and malformed ones; rewritten
    atomically. Returns the number of rows dropped."""
    path = Path(path)
    if not path.is_file():
        return 0
    try:
        header = _csv_header(path, column)
    except DamagedRunFile as err:
        set_aside(path, str(err).split(": ", 1)[-1])
        return 0
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines(keepends=True)
    kept, dropped = [lines[0]], 0
    for line in lines[1:]:
        row = next(csv.reader([line]), [])
        try:
            ok = len(row) == len(header) and float(row[0]) <= limit
        except ValueError:
            ok = False
        if ok:
            kept.append(line if line.endswith("\n") else line + "\n")
        elif row:
            dropped += 1
    if dropped:
        atomic_write(path, "".join(kept))
        log.warning("%s: dropped %d row(s) logged after the checkpoint at %s %d (they are trained and logged "
                    "again)", path, dropped, column, limit)
    return dropped


def read_loss_csv(path) -> dict[str, np.ndarray]:
    """Columns of a loss CSV as float arrays of equal length (empty cells are NaN). Malformed rows
    (a torn line, a wrong number of fields, text where numbers belong) are skipped with one warning."""
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            return {}
        if any(not name.strip() for name in header) or len(set(header)) != len(header) or header[0] != "step":
            raise DamagedRunFile(f"{path} has a damaged header {header[:6]!r}: it is not a loss table "
                                 "(training moves it aside at its next row)")
        rows, bad = [], 0
        for row in reader:
            if not row:
                continue
            try:
                if len(row) != len(header):
                    raise ValueError
                rows.append([float(v) if v != "" else np.nan for v in row])
            except ValueError:
                bad += 1
    if bad:
        log.warning("skipped %d malformed row(s) of %s", bad, path)
    if not rows:
        return {}
    table = np.array(rows, dtype=np.float64)
    return {k: table[:, i] for i, k in enumerate(header)}


def loss_figure(csv_path, title: str | None = None):
    """A matplotlib ``Figure`` of a loss CSV: the losses of both networks on one chart, any other
    values (accuracies, estimates) on a second one. Drawn on a ``Figure`` object, never through
    pyplot, so the caller's backend (a notebook's inline figures) is left alone. A run that has not
    logged yet (fewer steps than ``training.log_every``: no CSV) gets empty axes that say so."""
    from matplotlib.figure import Figure

    data = read_loss_csv(csv_path) if Path(csv_path).exists() else {}
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
    if not len(steps):
        axes[0].text(0.5, 0.5, f"no losses logged yet: {Path(csv_path).name} gets a row every training.log_every "
                     "steps", ha="center", va="center", transform=axes[0].transAxes)
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


__all__ = ["LabelNoise", "Checkpoint", "FixedNoiseSnapshots", "GifWriter", "LossHistory", "write_gif", "gif_path",
           "latent_walk", "loss_figure", "plot_losses", "restore_latest", "checkpoint_manager", "UnreadableCheckpoints",
           "UnsafeCheckpointIndex", "check_checkpoint_index", "rewind_csv"]
