"""Run folders, config.yaml round trips, results.json merges, atomic writes."""

import os

import pytest

from ganhelpers import experiment
from ganhelpers.dcgan import dcgan_config


def test_open_run_makes_the_layout_and_round_trips_the_config(model_data):
    config = dcgan_config("demo")
    run = experiment.open_run("dcgan_digits", "r1", config, root=model_data)
    assert run.dir == model_data / "dcgan_digits" / "r1"
    for sub in ("logs", "checkpoints", "tmp", "gifs", "samples"):
        assert (run.dir / sub).is_dir()
    assert run.config() == config
    # Reopening the same run keeps its folders (resume) and saves a changed config.
    (run.tmp / "keep.png").write_bytes(b"x")
    config["training"]["epochs"] = 3
    again = experiment.open_run("dcgan_digits", "r1", config, root=model_data)
    assert (again.tmp / "keep.png").exists() and again.config()["training"]["epochs"] == 3
    fresh = experiment.open_run("dcgan_digits", "r1", config, root=model_data, fresh=True)
    assert not (fresh.tmp / "keep.png").exists()


def test_results_merge(model_data):
    run = experiment.open_run("e", "r", root=model_data)
    run.update_results({"a": 1, "t": (1, 2)})
    assert run.update_results({"b": 2.5}) == {"a": 1, "b": 2.5, "t": [1, 2]}
    assert experiment.load_results(run.dir) == {"a": 1, "b": 2.5, "t": [1, 2]}


@pytest.mark.parametrize("name", ["", "a/b", ".."])
def test_bad_run_names(model_data, name):
    with pytest.raises(ValueError, match="folder name"):
        experiment.open_run("e", name, root=model_data)


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "f.txt"
    experiment.atomic_write(path, "old")

    def boom(*a):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        experiment.atomic_write(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]  # no temp file left behind
