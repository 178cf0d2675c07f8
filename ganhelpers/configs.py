"""The DCGAN experiment's configs as plain data (round-trips through config.yaml).

``dcgan_config("full")`` is the bird experiment; ``"demo"`` and ``"smoke"`` train on the offline
scikit-learn digits. Every value that comes from a paper or from the experiment says so.
"""

from __future__ import annotations

import copy

DCGAN_PRESETS: dict[str, dict] = {
    # The bird experiment (DCGAN on CUB-200-2011): 64x64x3, batch 64, 190 epochs, noise N(0, 1) of
    # shape (1, 1, 100); G a Dense 4x4x512 projection, then 5x5 stride-2 transposed convolutions
    # 256/128/64/3 with BatchNorm (momentum 0.5) and ReLU, tanh out; D 5x5 stride-2 convolutions
    # 64/128/256/512 with LeakyReLU 0.2, BatchNorm on the last three and a dense sigmoid unit;
    # D Adam(2e-4, beta_1 0.5), G Adam(1.5e-4, beta_1 0.5); targets real 1 - U[0, 0.2),
    # fake U[0, 0.2), G 1 - U[0, 0.2); a grid every 50 batches, a checkpoint every 5 epochs.
    "full": {
        "experiment": "dcgan_birds",
        "seed": 0,
        "data": {"name": "cub200", "image_size": 64, "channels": 3, "batch_size": 64, "crop": "bbox"},
        "generator": {"latent_dim": 100, "base_filters": 64, "kernel_size": 5, "projection": "dense",
                      "activation_name": "relu", "bn_momentum": 0.5},
        "discriminator": {"base_filters": 64, "kernel_size": 5, "head": "dense", "bn_momentum": 0.5,
                          "dropout": 0.0},
        "training": {"epochs": 190, "d_lr": 2e-4, "g_lr": 1.5e-4, "beta_1": 0.5, "loss": "bce",
                     "label_noise": {"real_range": [0.8, 1.0], "fake_range": [0.0, 0.2],
                                     "generator_range": [0.8, 1.0], "flip_prob": 0.0, "flip_decay": 1.0},
                     "snapshot_every": 50, "checkpoint_every_steps": None, "checkpoint_every_epochs": 5,
                     "keep_checkpoints": 3},
    },
    # Radford et al. 2015's own layout (the PyTorch reference): 4x4 kernels, conv projection and
    # conv head, Adam(2e-4, beta_1 0.5) for both networks, hard labels.
    "paper": {
        "experiment": "dcgan_birds_paper",
        "seed": 0,
        "data": {"name": "cub200", "image_size": 64, "channels": 3, "batch_size": 128, "crop": "bbox"},
        "generator": {"latent_dim": 100, "base_filters": 64, "kernel_size": 4, "projection": "conv",
                      "activation_name": "relu"},
        "discriminator": {"base_filters": 64, "kernel_size": 4, "head": "conv"},
        "training": {"epochs": 25, "d_lr": 2e-4, "g_lr": 2e-4, "beta_1": 0.5, "loss": "bce",
                     "label_noise": None, "snapshot_every": 100, "checkpoint_every_steps": None,
                     "checkpoint_every_epochs": 1, "keep_checkpoints": 3},
    },
    # The offline demo: the paper's layout at 32x32x1 on the scikit-learn digits, with the bird
    # experiment's label noise. Sized to finish in a few minutes on a 2-core CPU.
    "demo": {
        "experiment": "dcgan_digits",
        "seed": 0,
        "data": {"name": "digits", "image_size": 32, "channels": 1, "batch_size": 64},
        "generator": {"latent_dim": 100, "base_filters": 32, "kernel_size": 4, "projection": "conv",
                      "activation_name": "relu"},
        "discriminator": {"base_filters": 32, "kernel_size": 4, "head": "conv"},
        "training": {"epochs": 40, "d_lr": 2e-4, "g_lr": 2e-4, "beta_1": 0.5, "loss": "bce",
                     "label_noise": {"real_range": [0.8, 1.0], "fake_range": [0.0, 0.2],
                                     "generator_range": [0.8, 1.0], "flip_prob": 0.0, "flip_decay": 1.0},
                     "snapshot_every": 50, "checkpoint_every_steps": 50, "checkpoint_every_epochs": 1,
                     "keep_checkpoints": 3},
    },
}
# A few steps on the digits: the notebook smoke preset and the tests.
DCGAN_PRESETS["smoke"] = copy.deepcopy(DCGAN_PRESETS["demo"])
DCGAN_PRESETS["smoke"]["experiment"] = "dcgan_smoke"
DCGAN_PRESETS["smoke"]["generator"]["base_filters"] = 8
DCGAN_PRESETS["smoke"]["discriminator"]["base_filters"] = 8
DCGAN_PRESETS["smoke"]["training"].update(epochs=1, snapshot_every=5, checkpoint_every_steps=10)


def merge_config(config: dict, changes: dict) -> dict:
    """``config`` with ``changes`` applied in place: a dict updates the section of the same name
    (one level deep), anything else replaces the value."""
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key].update(value)
        else:
            config[key] = value
    return config


def preset_config(presets: dict, preset: str, kind: str, **overrides) -> dict:
    """A deep copy of ``presets[preset]`` with ``overrides`` merged (:func:`merge_config`); an
    unknown preset is a ValueError that lists the known ones. The models' ``*_config`` use it."""
    if preset not in presets:
        raise ValueError(f"unknown {kind} preset {preset!r}; choose one of {sorted(presets)}")
    return merge_config(copy.deepcopy(presets[preset]), overrides)


def dcgan_config(preset: str = "demo", **overrides) -> dict:
    """A deep copy of a DCGAN preset (``full``, ``paper``, ``demo``, ``smoke``); keyword arguments
    replace top-level values or update sections (``dcgan_config("demo", seed=1)``)."""
    return preset_config(DCGAN_PRESETS, preset, "DCGAN", **overrides)
