"""Run folders under model_data/, config.yaml, results.json and seeding.

A run lives in ``<root>/<experiment>/<run>/``::

    config.yaml    the full config (data, generator, discriminator, training)
    results.json   figures the run reports (accuracy, FID, ...)
    logs/          TensorBoard event files
    checkpoints/   tf.train.CheckpointManager files (resume)
    tmp/           fixed-noise grids, one PNG per snapshot (the GIF's frames)
    gifs/          GIFs assembled from tmp/
    samples/       loss plot, final grids, single sampled images

Opening the same run again resumes it: the folders are reused and the checkpoint callback
restores the newest checkpoint. :func:`open_run` refuses a config whose networks or data no longer
fit the checkpoints (:class:`ConfigMismatch`), holds a lock on the run folder so a second process
cannot train the same run (:class:`RunLocked`), and removes the leftovers of a killed process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

log = logging.getLogger(__name__)

DEFAULT_ROOT = Path(os.environ.get("GANHELPERS_MODEL_DATA", "model_data"))
SUBDIRS = ("logs", "checkpoints", "tmp", "gifs", "samples")
LOCK_NAME = ".lock"


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (``/proc/self/status``)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` so that a crash leaves either the old file or the new one.

    The bytes go to a temporary file in the same folder (``.<name>.*.part``), are flushed to disk,
    then renamed over ``path`` (``os.replace`` is atomic on POSIX and Windows). The file gets the
    permissions the umask allows (0666 & ~umask), like any other new file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600: give the file the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


@dataclasses.dataclass(frozen=True)
class Run:
    """Paths of one run folder. Create it with :func:`open_run`."""

    dir: Path
    experiment: str
    name: str

    @property
    def logs(self) -> Path:
        return self.dir / "logs"

    @property
    def checkpoints(self) -> Path:
        return self.dir / "checkpoints"

    @property
    def tmp(self) -> Path:
        return self.dir / "tmp"

    @property
    def gifs(self) -> Path:
        return self.dir / "gifs"

    @property
    def samples(self) -> Path:
        return self.dir / "samples"

    @property
    def config_path(self) -> Path:
        return self.dir / "config.yaml"

    @property
    def results_path(self) -> Path:
        return self.dir / "results.json"

    def config(self) -> dict:
        return load_config(self.config_path)

    def results(self) -> dict:
        return load_results(self)

    def update_results(self, values: dict) -> dict:
        return update_results(self, values)

    @property
    def lock_path(self) -> Path:
        return self.dir / LOCK_NAME

    def acquire(self, wait: float = 0.0) -> bool:
        """Take the run's lock (see :func:`open_run`; ``wait``: seconds to wait for another process
        to give it back); False if this process already held it."""
        return _acquire(self.lock_path, wait)

    def release(self) -> None:
        """Give the run's lock back (it is also released when the process ends, however it ends)."""
        _release(self.lock_path)

    @contextlib.contextmanager
    def lock(self, wait: float = 0.0):
        """``with run.lock():`` hold the run's lock for the block (``wait``: as :meth:`acquire`); a
        no-op if this process holds it."""
        taken = self.acquire(wait)
        try:
            yield self
        finally:
            if taken:
                self.release()


class RunLocked(RuntimeError):
    """Another process is training this run."""


class UnsafeRunFolder(RuntimeError):
    """A run folder holds something that could make ganhelpers read or write outside it (a link)."""


class DamagedRunFile(ValueError):
    """A file of a run (config.yaml, results.json ...) cannot be read; the message says which and what to do."""


def check_run_folder(run_dir: str | os.PathLike) -> None:
    """Refuse a run folder holding a symbolic link anywhere below it (``.lock``, ``samples/losses.csv``,
    ``checkpoints`` ...): run folders are shared (Drive, a colleague's results), and a planted link
    would make training truncate, overwrite or delete a file outside the run. The run folder itself
    (and the model_data above it) may be a link: that is where the user chose to keep it. Raises
    :class:`UnsafeRunFolder` naming the links and where they point; nothing is followed or changed."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return
    links = []
    for top, dirs, files in os.walk(run_dir, followlinks=False):
        for name in dirs + files:
            path = Path(top) / name
            if path.is_symlink():
                links.append(path)
    if links:
        shown = "; ".join(f"{p.relative_to(run_dir)} -> {os.readlink(p)}" for p in links[:8])
        raise UnsafeRunFolder(
            f"run folder {run_dir} holds {len(links)} symbolic link(s) ({shown}): ganhelpers never reads or writes "
            "a run's files through a link, since a planted one could overwrite or delete files elsewhere. Remove "
            "the link(s) (a real file or folder in their place is fine) and run again.")


def set_aside(path: str | os.PathLike, why: str) -> Path:
    """Rename a damaged file of a run to ``<name>.damaged-<n>`` beside it (moved, never deleted) and warn."""
    path = Path(path)
    n = 1
    while (aside := path.with_name(f"{path.name}.damaged-{n}")).exists():
        n += 1
    os.replace(path, aside)
    log.warning("%s %s: moved it aside to %s and went on without it", path, why, aside.name)
    return aside


class ConfigMismatch(ValueError):
    """A saved run's config differs from the new one in keys its checkpoints depend on."""


# Open lock files of this process by path: a process may reopen its own run (a notebook re-running
# a cell); flock would refuse a second descriptor of the same process.
_LOCKS: dict[str, int] = {}


def _check_wait(wait) -> float:
    """``wait`` as seconds, or a ValueError naming it (a finite number >= 0)."""
    if isinstance(wait, bool) or not isinstance(wait, (int, float)) or not 0 <= wait < float("inf"):
        raise ValueError(f"wait must be a finite number of seconds >= 0, got {wait!r}")
    return float(wait)


def _acquire(lock_path: Path, wait: float = 0.0) -> bool:
    """flock ``lock_path`` (created if needed) for this process. Raises :class:`RunLocked` if another
    process holds it, at once or after trying for ``wait`` seconds; a filesystem without locks (some
    network mounts) only warns."""
    wait = _check_wait(wait)
    key = os.path.realpath(lock_path)
    if key in _LOCKS:
        return False
    import fcntl  # POSIX only (Windows is not a target)

    lock_path.parent.mkdir(parents=True, exist_ok=True)
    try:  # never through a link: a planted .lock -> /elsewhere would be truncated below
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666 & ~_umask())
    except OSError:
        if lock_path.is_symlink():
            raise UnsafeRunFolder(f"{lock_path} is a symbolic link (-> {os.readlink(lock_path)}): remove it and run "
                                  "again; ganhelpers never writes a run's files through a link") from None
        raise
    deadline = time.monotonic() + wait
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise
                try:
                    time.sleep(0.1)
                except BaseException:  # Ctrl-C while waiting: no descriptor left open
                    os.close(fd)
                    raise
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
        os.close(fd)
        raise RunLocked(f"run {lock_path.parent} is in use by another process ({holder or 'unknown pid'}): wait for "
                        "it to finish or stop it, or train under another run name") from None
    except OSError as err:
        log.warning("cannot lock %s (%s): the filesystem may not support locks; make sure no other process "
                    "trains this run", lock_path, err)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {os.uname().nodename}\n".encode(), 0)
    _LOCKS[key] = fd
    return True


def _release(lock_path: Path) -> None:
    fd = _LOCKS.pop(os.path.realpath(lock_path), None)
    if fd is not None:
        os.close(fd)  # closing the descriptor drops the flock


def clean_leftovers(run: Run) -> list[Path]:
    """Remove what a killed process left: ``.*.part`` files of :func:`atomic_write` anywhere in the
    run folder and ``ckpt-*_temp*`` folders of an interrupted TensorFlow save. Call it only while
    holding the run's lock (another process's files in progress look the same)."""
    removed = []
    for part in run.dir.rglob(".*.part"):
        if part.is_file():
            part.unlink(missing_ok=True)
            removed.append(part)
    if run.checkpoints.is_dir():
        for temp in run.checkpoints.glob("ckpt-*_temp*"):
            if temp.is_dir():
                shutil.rmtree(temp, ignore_errors=True)
            else:
                temp.unlink(missing_ok=True)
            removed.append(temp)
    if removed:
        log.warning("removed %d leftover(s) of an interrupted run in %s: %s", len(removed), run.dir,
                    ", ".join(str(p.relative_to(run.dir)) for p in removed[:10]))
    return removed


# Keys a resumed run may change (matched on the key's last name, or any section name on its path):
# the training budget, how often things are saved or logged, optimizer scalars and the schedule of
# the adversarial game. Everything else (generator.*, discriminator.*, critic.*, model, variant,
# data.name/image_size/channels/crop/path, training.loss, training.precision, ...) changes the
# networks, their checkpointed state or the data, and is refused.
SAFE_ON_RESUME = frozenset({
    "epochs", "steps", "generator_iterations", "snapshot_every", "checkpoint_every_steps",
    "checkpoint_every_epochs", "keep_checkpoints", "histogram_every", "log_every", "loss_every",
    "d_lr", "g_lr", "lr", "learning_rate", "beta_1", "beta_2", "rho", "epsilon", "batch_size",
    "labelled_batch_size", "batch_sizes", "label_noise", "n_critic", "schedule", "clip_value", "gp_weight", "gp_lambda",
    "drift", "seed", "fid", "run_eagerly", "jit_compile", "steps_per_execution", "description",
    # evaluation and logging only; conv: the phase layers hold the same weights as Keras' own
    "metrics", "rank_by", "gif_fps", "snapshot_every_images", "steps_per_epoch", "conv",
    # SGAN: which of D's weights report and how often (both sets are checkpointed whichever is chosen)
    "evaluate_average", "evaluate_each_epoch",
})


# Keys whose mere presence changes the checkpointed state (PGGAN's running average of G: more
# optimizer variables): absent counts as null, so adding one to an old run's config is refused too.
STATE_KEYS = frozenset({"ema_decay"})


def is_safe_on_resume(key: str) -> bool:
    """Whether the dotted config ``key`` may differ when a run resumes (see :data:`SAFE_ON_RESUME`)."""
    return any(part in SAFE_ON_RESUME for part in key.split("."))


def config_changes(old: dict, new: dict) -> tuple[list[str], list[str]]:
    """(unsafe, safe) dotted keys that differ between a saved config and a new one. Keys present in
    only one of them count as safe (a newer version's default, an old run's retired key): if they
    did change the networks, the checkpoint restore still refuses to load. :data:`STATE_KEYS` are
    the exception: absent is null, and any other difference is unsafe."""
    unsafe, safe = [], []
    old, new = _plain(old), _plain(new)  # YAML turns int keys and tuples into str keys and lists
    for key in sorted(_diff_keys(old, new)):
        before, after = _lookup(old, key), _lookup(new, key)
        if key.split(".")[-1] in STATE_KEYS:
            same = (None if before is _MISSING else before) == (None if after is _MISSING else after)
            (safe if same else unsafe).append(key)
            continue
        present = before is not _MISSING and after is not _MISSING
        (unsafe if present and not is_safe_on_resume(key) else safe).append(key)
    return unsafe, safe


_MISSING = object()


def _shown(config: Any, key: str) -> str:
    value = _lookup(_plain(config), key)
    return "(absent)" if value is _MISSING else repr(value)


def has_progress(run: Run) -> bool:
    """Whether the run has trained: a checkpoint (``ckpt-*.index``) in its checkpoints folder."""
    return run.checkpoints.is_dir() and any(run.checkpoints.glob("ckpt-*.index"))


def has_history(run: Run) -> list[str]:
    """What the run recorded of earlier training (loss rows, frames, event files, a step in
    results.json), as names for a message; empty for a new run."""
    found = []
    csv_path = run.samples / "losses.csv"
    if csv_path.is_file() and csv_path.stat().st_size > 0:
        found.append("samples/losses.csv")
    if run.tmp.is_dir() and any(run.tmp.glob("step_*.png")):
        found.append("tmp/ frames")
    if run.logs.is_dir() and any(run.logs.rglob("events.out.tfevents.*")):
        found.append("logs/ event files")
    step = load_results(run).get("step")
    if isinstance(step, int) and step > 0:
        found.append(f"results.json (step {step})")
    return found


def _lookup(config: Any, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(config, dict) or part not in config:
            return _MISSING
        config = config[part]
    return config


def open_run(experiment: str, run: str = "default", config: dict | None = None,
             root: str | os.PathLike | None = None, fresh: bool = False, lock: bool = True) -> Run:
    """Create (or reopen, to resume) ``<root>/<experiment>/<run>/`` and write ``config.yaml``.

    Reopening a run whose saved config differs from ``config``:

    * in keys that change the networks, their state or the data (``generator.*``,
      ``discriminator.*``, ``critic.*``, ``model``, ``variant``, ``data.image_size``,
      ``data.channels``, ``data.name``, ``training.loss``, ...): raises :class:`ConfigMismatch`
      before anything is touched, naming the keys; use a new run name, or ``fresh=True`` (CLI
      ``--fresh``) to delete the old run's checkpoints, frames and logs and start again at step 0;
    * only in keys of :data:`SAFE_ON_RESUME` (budget, save/log frequencies, learning rates and other
      optimizer scalars, label noise, critic schedule, batch size, seed, FID settings): logs them and
      saves the new config. The new learning rates win over the restored optimizers' once
      :func:`apply_learning_rates` runs after the restore.

    With ``lock`` (default) the process holds the run's lock from here on (:meth:`Run.acquire`;
    released by :meth:`Run.release` or when the process ends): a second process opening the same
    run fails at once with :class:`RunLocked` (``Run.lock(wait=...)`` waits for a run other processes
    hold only briefly, as :func:`ganhelpers.sgan.run_seeds`' summary). The leftovers of a killed
    process are then removed (:func:`clean_leftovers`).
    """
    for label, value in (("experiment", experiment), ("run", run)):
        if not value or any(c in value for c in "/\\") or value in (".", ".."):
            raise ValueError(f"{label} name {value!r} must be a non-empty folder name without slashes")
    root = Path(root) if root is not None else DEFAULT_ROOT
    r = Run(dir=root / experiment / run, experiment=experiment, name=run)
    check_run_folder(r.dir)
    safe: list[str] = []
    old: dict = {}
    if config is not None and not fresh and r.config_path.exists():
        try:
            old = load_config(r.config_path)
        except DamagedRunFile as err:
            if has_progress(r):
                raise
            log.warning("%s; the run has no checkpoint yet, so the new config replaces it", err)
        if old and not has_progress(r):
            # a start that failed before its first checkpoint (a bad image_size, a typo): nothing was
            # trained with the old config, so the new one simply replaces it
            if _plain(old) != _plain(config):
                log.info("run %s has no checkpoint yet: its config.yaml is replaced by the new config", r.dir)
            old = {}
        unsafe, safe = config_changes(old, config) if old else ([], [])
        if unsafe:
            shown = "; ".join(f"{k}: {_shown(old, k)} -> {_shown(config, k)}" for k in unsafe[:12])
            raise ConfigMismatch(
                f"run {r.dir} was trained with another config, and its checkpoints do not fit the new one: {shown}. "
                f"Either train under a new run name, or start this run again from step 0 with fresh=True "
                f"(CLI: --fresh), which deletes its checkpoints, frames and logs.")
    taken = r.acquire() if lock else False
    try:
        if fresh and r.dir.exists():
            log.warning("fresh=True: deleting the previous run in %s", r.dir)
            for child in r.dir.iterdir():
                if child.name == LOCK_NAME:
                    continue
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        for sub in SUBDIRS:
            (r.dir / sub).mkdir(parents=True, exist_ok=True)
        if lock:
            clean_leftovers(r)
        if config is not None:
            if safe:
                log.warning("run %s resumes with a changed config: %s", r.dir,
                            "; ".join(f"{k}: {_shown(old, k)} -> {_shown(config, k)}" for k in safe))
            save_config(r.config_path, config)
    except BaseException:
        if taken:
            r.release()
        raise
    return r


def learning_rates(config: dict) -> dict[int, float]:
    """The config's learning rate per optimizer, by position in ``model.optimizer_pairs()`` (0: D or
    the critic, 1: G): ``training.d_lr``/``g_lr`` (DCGAN, SGAN, dogs), ``<variant>.learning_rate``
    (WGAN ``clip``/``gp``), ``training.learning_rate`` (PGGAN, both networks)."""
    t = config.get("training") or {}
    if "d_lr" in t or "g_lr" in t:
        return {i: float(t[k]) for i, k in enumerate(("d_lr", "g_lr")) if t.get(k) is not None}
    variant = {"wgan": "clip", "wgan-gp": "gp"}.get(config.get("model"), config.get("variant"))
    section = config.get(variant) if isinstance(variant, str) else None
    if isinstance(section, dict) and section.get("learning_rate") is not None:
        return {0: float(section["learning_rate"]), 1: float(section["learning_rate"])}
    if t.get("learning_rate") is not None:
        return {0: float(t["learning_rate"]), 1: float(t["learning_rate"])}
    return {}


def apply_learning_rates(model, config: dict) -> dict[str, tuple[float, float]]:
    """Set the optimizers' learning rates to the config's (:func:`learning_rates`); call it after a
    checkpoint restore, which brings back the old run's values. Logs and returns the changes as
    ``{"optimizer 0": (restored, new)}``; a learning-rate schedule is left alone with a warning."""
    pairs = list(model.optimizer_pairs())
    changed = {}
    for index, value in learning_rates(config).items():
        if index >= len(pairs):
            continue
        optimizer = pairs[index][0]
        inner = getattr(optimizer, "inner_optimizer", optimizer)  # LossScaleOptimizer
        current = getattr(inner, "_learning_rate", None)
        if current is None or not hasattr(current, "assign"):
            log.warning("optimizer %d has a learning-rate schedule; the config's %g is not applied", index, value)
            continue
        old = float(current.numpy())
        if abs(old - value) > 1e-6 * abs(value):  # beyond float32 round-off
            current.assign(value)
            changed[f"optimizer {index}"] = (old, value)
    if changed:
        log.warning("learning rates from the config replace the restored ones: %s",
                    ", ".join(f"{k}: {a:g} -> {b:g}" for k, (a, b) in changed.items()))
    return changed


def _diff_keys(a: Any, b: Any, prefix: str = "") -> set[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: set[str] = set()
        for k in set(a) | set(b):
            out |= _diff_keys(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return set() if _plain(a) == _plain(b) else {prefix.rstrip(".")}


def _plain(value: Any) -> Any:
    """Config values as YAML-safe plain data (tuples become lists, numpy scalars Python numbers)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def save_config(path: str | os.PathLike, config: dict) -> Path:
    return atomic_write(path, yaml.safe_dump(_plain(config), sort_keys=False))


def load_config(path: str | os.PathLike) -> dict:
    """A run's ``config.yaml`` as a dict. A missing file is ``FileNotFoundError``; an empty, damaged
    or non-mapping one is :class:`DamagedRunFile` naming it (YAML is read with ``safe_load``: no
    objects are built from it)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no config.yaml at {path}; is {path.parent} a run folder?")
    try:
        with open(path, encoding="utf-8") as f:
            config = yaml.safe_load(f)
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        why = str(err).splitlines()[0]
        raise DamagedRunFile(f"{path} is not valid YAML ({why}): restore it from a copy, or train again under a "
                             "new run name (or with --fresh)") from None
    if not isinstance(config, dict) or not config:
        raise DamagedRunFile(f"{path} holds no config (it is empty or not a mapping): restore it from a copy, or "
                             "train again under a new run name (or with --fresh)")
    return config


def load_results(run: Run | str | os.PathLike) -> dict:
    """A run's ``results.json`` (empty when there is none). A damaged one (not JSON, not an object)
    is moved aside (:func:`set_aside`) with a warning, so training and the commands go on."""
    path = run.results_path if isinstance(run, Run) else Path(run) / "results.json"
    if not path.exists():
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            results = json.load(f)
        if not isinstance(results, dict):
            raise ValueError("not a JSON object")
        return results
    except (ValueError, UnicodeDecodeError) as err:  # JSONDecodeError is a ValueError
        try:
            set_aside(path, f"is damaged ({str(err).splitlines()[0][:120]})")
        except OSError as move_err:
            raise DamagedRunFile(f"{path} is damaged ({err}) and cannot be moved aside ({move_err}): move or delete "
                                 "it by hand") from None
        return {}


def update_results(run: Run | str | os.PathLike, values: dict) -> dict:
    """Merge ``values`` into the run's ``results.json`` (written atomically); returns the merge."""
    path = run.results_path if isinstance(run, Run) else Path(run) / "results.json"
    results = load_results(run)
    results.update(_plain(values))
    atomic_write(path, json.dumps(results, indent=2, sort_keys=True) + "\n")
    return results


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow/Keras (``keras.utils.set_random_seed``)."""
    import keras

    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)
