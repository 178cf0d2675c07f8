"""Configs are plain data (dicts that round-trip through config.yaml); every paper module keeps
its presets beside its model and builds its configs with :func:`preset_config`."""

from __future__ import annotations

import copy


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


# -- checking a config before anything is built ------------------------------------------------------

# Rules by a key's last name, wherever it stands (data.batch_size, generator.latent_dim ...): what a
# value must be. None is allowed where the rule says so (latent_dim None: the model derives it).
_POSITIVE_INT = {"batch_size": False, "labelled_batch_size": False, "latent_dim": True, "snapshot_every": False,
                 "log_every": False, "keep_checkpoints": False, "image_size": False, "num_samples": False,
                 "every_n_epochs": False, "checkpoint_every_steps": True, "checkpoint_every_epochs": True,
                 "steps": True}
_NON_NEGATIVE_INT = {"epochs": False, "generator_iterations": True, "histogram_every": True, "seed": False}
_POSITIVE_NUMBER = {"gif_fps": False, "d_lr": True, "g_lr": True, "lr": True, "learning_rate": True}


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key, the value and what it must be."""


def _is_int(value) -> bool:
    import numbers

    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def validate_config(config: dict, path: str = "") -> dict:
    """Check the values a run depends on before anything is built or written: batch sizes, the
    latent size, save/log frequencies, budgets and learning rates (see the rules above), in every
    section. Raises :class:`ConfigError` naming the dotted key (``data.batch_size must be a
    positive whole number, got 'abc'``); returns ``config``."""
    import math
    import numbers

    for key, value in config.items():
        name = f"{path}{key}"
        if isinstance(value, dict):
            validate_config(value, name + ".")
            continue
        for rules, ok, what in ((_POSITIVE_INT, lambda v: _is_int(v) and v > 0, "a positive whole number"),
                                (_NON_NEGATIVE_INT, lambda v: _is_int(v) and v >= 0, "a whole number >= 0"),
                                (_POSITIVE_NUMBER, lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool)
                                 and math.isfinite(v) and v > 0, "a finite number > 0")):
            if key in rules and not (value is None and rules[key]) and not ok(value):
                allowed = " (or null)" if rules[key] else ""
                raise ConfigError(f"{name} must be {what}{allowed}, got {value!r}")
    return config


def option_number(kind, low: float, strict: bool, option: str):
    """An argparse type: ``kind`` (int or float) above ``low`` (``strict``) or at least ``low``; a
    wrong value is an error that names the option and the value."""
    import argparse

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{option} takes a {'whole ' if kind is int else ''}number, "
                                             f"got {text!r}") from None
        if value != value or value in (float("inf"), float("-inf")) or (value <= low if strict else value < low):
            bound = f"> {low:g}" if strict else f">= {low:g}"
            raise argparse.ArgumentTypeError(f"{option} must be {bound}, got {text}")
        return value
    parse.__name__ = option  # argparse names the type in its messages
    return parse
