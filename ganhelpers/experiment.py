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
restores the newest checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

log = logging.getLogger(__name__)

DEFAULT_ROOT = Path(os.environ.get("GANHELPERS_MODEL_DATA", "model_data"))
SUBDIRS = ("logs", "checkpoints", "tmp", "gifs", "samples")


def atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` so that a crash leaves either the old file or the new one.

    The bytes go to a temporary file in the same folder, are flushed to disk, then renamed over
    ``path`` (``os.replace`` is atomic on POSIX and Windows).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
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


def open_run(experiment: str, run: str = "default", config: dict | None = None,
             root: str | os.PathLike | None = None, fresh: bool = False) -> Run:
    """Create (or reopen, to resume) ``<root>/<experiment>/<run>/`` and write ``config.yaml``.

    Reopening a run whose saved config differs from ``config`` logs the differing keys and
    keeps training from the checkpoint with the new config; pass ``fresh=True`` to delete the
    old run's checkpoints, frames and logs and start again at step 0.
    """
    for label, value in (("experiment", experiment), ("run", run)):
        if not value or any(c in value for c in "/\\") or value in (".", ".."):
            raise ValueError(f"{label} name {value!r} must be a non-empty folder name without slashes")
    root = Path(root) if root is not None else DEFAULT_ROOT
    r = Run(dir=root / experiment / run, experiment=experiment, name=run)
    if fresh and r.dir.exists():
        import shutil

        log.warning("fresh=True: deleting the previous run in %s", r.dir)
        shutil.rmtree(r.dir)
    for sub in SUBDIRS:
        (r.dir / sub).mkdir(parents=True, exist_ok=True)
    if config is not None:
        if r.config_path.exists():
            old = load_config(r.config_path)
            changed = sorted(_diff_keys(old, config))
            if changed:
                log.warning("run %s: config differs from the saved one in %s; saving the new one",
                            r.dir, ", ".join(changed))
        save_config(r.config_path, config)
    return r


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
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no config.yaml at {path}; is {path.parent} a run folder?")
    with open(path) as f:
        return yaml.safe_load(f) or {}


def load_results(run: Run | str | os.PathLike) -> dict:
    path = run.results_path if isinstance(run, Run) else Path(run) / "results.json"
    if not path.exists():
        return {}
    with open(path) as f:
        return json.load(f)


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
