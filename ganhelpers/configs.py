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
