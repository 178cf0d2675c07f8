"""Train a DCGAN from a config into a run folder: the few calls every DCGAN notebook makes,
in one function for the CLI demo and the tests."""

from __future__ import annotations

import logging
import math

import numpy as np

from . import callbacks as cb
from . import data as data_lib
from .experiment import Run, open_run, seed_everything
from .models import build_dcgan

log = logging.getLogger(__name__)


def dcgan_callbacks(run: Run, config: dict, tensorboard: bool = True) -> list:
    t = config["training"]
    cbs = cb.standard_callbacks(run, snapshot_every=t["snapshot_every"],
                                checkpoint_every_steps=t.get("checkpoint_every_steps"),
                                checkpoint_every_epochs=t.get("checkpoint_every_epochs", 1),
                                keep=t.get("keep_checkpoints", 3), tensorboard=tensorboard)
    if t.get("label_noise"):
        cbs.append(cb.LabelNoise(**t["label_noise"]))
    return cbs


def train_dcgan(config: dict, run: Run | None = None, images: np.ndarray | None = None,
                steps: int | None = None, root=None, run_name: str = "default", verbose: int | str = "auto",
                extra_callbacks=(), tensorboard: bool = True):
    """Seed, load data, build and fit a DCGAN; resumes if the run folder has checkpoints.

    ``steps`` asks for about that many train steps: epochs of ``min(steps, one pass)`` steps, as many
    as reach ``steps`` (the total is rounded up to whole epochs); otherwise the config's
    ``training.epochs`` epochs. Returns ``(model, run, history)``.
    """
    run = run or open_run(config["experiment"], run_name, config, root=root)
    seed_everything(config.get("seed", 0))
    if images is None:
        images = data_lib.load(config["data"])["images"]
    batch = config["data"]["batch_size"]
    per_epoch = len(images) // batch
    model = build_dcgan(config)
    callbacks = dcgan_callbacks(run, config, tensorboard) + list(extra_callbacks)
    if steps is None:
        dataset = data_lib.make_dataset(images, batch, seed=config.get("seed", 0))
        history = model.fit(dataset, epochs=config["training"]["epochs"], callbacks=callbacks, verbose=verbose,
                            shuffle=False)
    else:
        # A repeated dataset with epochs of at most one pass keeps step counts exact across resumes.
        steps_per_epoch = min(steps, per_epoch)
        dataset = data_lib.make_dataset(images, batch, seed=config.get("seed", 0), repeat=True)
        epochs = math.ceil(steps / steps_per_epoch)
        history = model.fit(dataset, epochs=epochs, steps_per_epoch=steps_per_epoch, callbacks=callbacks,
                            verbose=verbose, shuffle=False)
    return model, run, history
