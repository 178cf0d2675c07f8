"""A trained run is never lost or mixed: changed configs, the run lock, checkpoint indexes,
unreadable checkpoints, learning rates on resume, leftovers of a kill, file modes, a torn CSV."""

import logging
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf
import yaml

from ganhelpers import callbacks, experiment
from ganhelpers.experiment import ConfigMismatch, RunLocked, open_run

try:
    from ganhelpers.dcgan import build_dcgan, dcgan_config
except ImportError:  # before the run-loop refactor
    from ganhelpers.configs import dcgan_config
    from ganhelpers.models import build_dcgan


def _config(**changes):
    config = dcgan_config("smoke")
    for section, values in changes.items():
        config[section].update(values)
    return config


def _saved_run(model_data, steps=(4, 8)):
    """A run folder with checkpoints at ``steps`` of a smoke DCGAN; returns (run, config, model)."""
    config = _config()
    run = open_run("safety", "r", config, root=model_data)
    model = build_dcgan(config)
    model.build_optimizers()
    ckpt = tf.train.Checkpoint(**model.checkpoint_items())
    manager = tf.train.CheckpointManager(ckpt, str(run.checkpoints), max_to_keep=None)
    for step in steps:
        model.step.assign(step)
        manager.save(checkpoint_number=step)
    run.release()
    return run, config, model


# -- config changes -----------------------------------------------------------------------------

@pytest.mark.parametrize("section, change, key", [("generator", {"latent_dim": 64}, "generator.latent_dim"),
                                                  ("data", {"image_size": 64}, "data.image_size")])
def test_a_config_that_changes_the_networks_stops_before_touching_anything(model_data, section, change, key):
    run, config, _ = _saved_run(model_data)
    before = {p.name: p.stat().st_mtime_ns for p in run.checkpoints.iterdir()}
    saved = run.config_path.read_text()
    with pytest.raises(ConfigMismatch) as err:
        open_run("safety", "r", _config(**{section: change}), root=model_data)
    message = str(err.value)
    assert key in message and "new run name" in message and "fresh=True" in message and "--fresh" in message
    assert run.config_path.read_text() == saved
    assert {p.name: p.stat().st_mtime_ns for p in run.checkpoints.iterdir()} == before
    # The two ways forward: a new run name, or an explicit fresh start.
    open_run("safety", "other", _config(**{section: change}), root=model_data).release()
    fresh = open_run("safety", "r", _config(**{section: change}), root=model_data, fresh=True)
    assert not list(fresh.checkpoints.iterdir()) and fresh.config()[section] == {**config[section], **change}
    fresh.release()


def test_budget_and_learning_rate_changes_are_logged_and_saved(model_data, caplog):
    _saved_run(model_data)
    with caplog.at_level(logging.WARNING):
        run = open_run("safety", "r", _config(training={"epochs": 9, "d_lr": 1e-3}), root=model_data)
    assert "training.d_lr: 0.0002 -> 0.001" in caplog.text and "training.epochs: 1 -> 9" in caplog.text
    assert run.config()["training"]["d_lr"] == 1e-3
    run.release()
    assert experiment.is_safe_on_resume("training.label_noise.flip_prob")
    assert experiment.is_safe_on_resume("sgan.evaluate_average")
    assert not experiment.is_safe_on_resume("sgan.average_decay")
    assert not experiment.is_safe_on_resume("discriminator.base_filters")
    assert not experiment.is_safe_on_resume("training.loss")


def test_the_config_learning_rate_wins_over_the_restored_one(model_data, caplog):
    run, _, _ = _saved_run(model_data)  # saved with d_lr = g_lr = 2e-4
    config = _config(training={"d_lr": 1e-3})
    model = build_dcgan(config)
    model.build_optimizers()
    ckpt = tf.train.Checkpoint(**model.checkpoint_items())
    assert callbacks.restore_latest(ckpt, callbacks.checkpoint_manager(ckpt, run.checkpoints)).endswith("ckpt-8")
    d_opt, g_opt = (opt for opt, _ in model.optimizer_pairs())
    assert float(d_opt.learning_rate.numpy()) == pytest.approx(2e-4)  # what the restore brought back
    with caplog.at_level(logging.WARNING):
        changed = experiment.apply_learning_rates(model, config)
    assert float(d_opt.learning_rate.numpy()) == pytest.approx(1e-3)
    assert float(g_opt.learning_rate.numpy()) == pytest.approx(2e-4)
    assert list(changed) == ["optimizer 0"] and "0.0002 -> 0.001" in caplog.text
    assert experiment.learning_rates({"variant": "gp", "gp": {"learning_rate": 1e-4}, "training": {}}) == \
        {0: 1e-4, 1: 1e-4}
    assert experiment.learning_rates({"training": {"learning_rate": 1e-3}}) == {0: 1e-3, 1: 1e-3}


# -- the run lock -------------------------------------------------------------------------------

def test_a_second_process_on_the_same_run_fails_at_once(model_data):
    run = open_run("safety", "locked", _config(), root=model_data)
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(experiment.Path(experiment.__file__).parents[1])!r})
        from ganhelpers.experiment import RunLocked, open_run
        try:
            open_run("safety", "locked", root={str(model_data)!r}).release()
        except RunLocked as err:
            print("LOCKED", err)
            sys.exit(3)
        print("OPENED")
    """)

    def other():
        return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)

    out = other()
    assert out.returncode == 3, out.stderr
    assert "is in use by another process (pid " in out.stdout and f"pid {os.getpid()}" in out.stdout
    assert open_run("safety", "locked", root=model_data) == run  # the same process may reopen its run
    run.release()
    assert other().stdout.strip() == "OPENED"
    with run.lock():  # the context manager holds it for the block only
        assert other().returncode == 3
    assert other().stdout.strip() == "OPENED"


def test_a_run_lock_can_wait_for_a_process_that_holds_the_run_briefly(model_data):
    open_run("safety", "brief", _config(), root=model_data).release()
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(experiment.Path(experiment.__file__).parents[1])!r})
        from ganhelpers.experiment import open_run
        run = open_run("safety", "brief", root={str(model_data)!r})
        print("HELD", flush=True)
        sys.stdin.readline()  # the test has seen RunLocked: now hold on a little, then give it back
        time.sleep(1.0)
        run.release()
        print("RELEASED", flush=True)
        time.sleep(30)  # still alive: the lock went back by release(), not by the process ending
    """)
    holder = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "HELD"
        with pytest.raises(RunLocked, match="in use by another process"):
            open_run("safety", "brief", root=model_data)  # wait=0: at once
        holder.stdin.write("go\n")
        holder.stdin.flush()
        start = time.monotonic()
        run = open_run("safety", "brief", root=model_data, lock=False)
        assert run.acquire(wait=60)
        assert time.monotonic() - start >= 0.5  # it waited for the release (1 s after "go")
        assert holder.stdout.readline().strip() == "RELEASED" and holder.poll() is None
        run.release()
        with run.lock(wait=5):
            pass
    finally:
        holder.kill()
        holder.wait()
    for bad in (-1, "5", float("nan"), float("inf"), True):
        with pytest.raises(ValueError, match="wait must be a finite number of seconds"):
            run.acquire(wait=bad)
        with pytest.raises(ValueError, match="wait must be a finite number of seconds"):
            with run.lock(wait=bad):
                pass


# -- checkpoints --------------------------------------------------------------------------------

def test_a_deleted_index_is_rebuilt_from_the_checkpoint_files(model_data, caplog):
    run, config, _ = _saved_run(model_data, steps=(4, 8, 12))
    (run.checkpoints / "checkpoint").unlink()
    model = build_dcgan(config)
    model.build_optimizers()
    with caplog.at_level(logging.WARNING):
        path = callbacks.Checkpoint(run).restore_before_fit(model)
    assert path.endswith("ckpt-12") and int(model.step.numpy()) == 12
    assert "rebuilt it from the files (ckpt-4, ckpt-8, ckpt-12)" in caplog.text
    state = tf.train.get_checkpoint_state(str(run.checkpoints))
    assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == ["ckpt-4", "ckpt-8", "ckpt-12"]


def test_all_checkpoints_unreadable_is_an_error_not_a_restart(model_data):
    run, config, _ = _saved_run(model_data)
    for data_file in run.checkpoints.glob("ckpt-*.data-*"):
        data_file.write_bytes(data_file.read_bytes()[:100])
    model = build_dcgan(config)
    model.build_optimizers()
    with pytest.raises(callbacks.UnreadableCheckpoints, match=r"none of the 2 checkpoint\(s\).*fresh=True"):
        callbacks.Checkpoint(run).restore_before_fit(model)


def test_leftovers_of_a_kill_are_removed_at_the_next_start(model_data):
    run, config, _ = _saved_run(model_data)
    part = run.dir / ".config.yaml.abc123.part"
    part.write_text("half")
    frame_part = run.tmp / ".step_00000010.png.x1.part"
    frame_part.write_bytes(b"\x89PNG")
    temp = run.checkpoints / "ckpt-12_temp"
    temp.mkdir()
    (temp / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"x")
    open_run("safety", "r", config, root=model_data).release()
    assert not part.exists() and not frame_part.exists() and not temp.exists()
    assert (run.checkpoints / "ckpt-8.index").exists()


def test_output_files_get_the_permissions_the_umask_allows(tmp_path):
    old = os.umask(0o022)
    try:
        path = experiment.atomic_write(tmp_path / "results.json", "{}")
        assert path.stat().st_mode & 0o777 == 0o644
        os.umask(0o002)
        assert experiment.atomic_write(tmp_path / "b.txt", "x").stat().st_mode & 0o777 == 0o664
    finally:
        os.umask(old)


# -- losses.csv ---------------------------------------------------------------------------------

class _Run:
    def __init__(self, samples):
        self.samples = samples


def test_a_torn_last_line_is_dropped_before_appending(tmp_path, caplog):
    csv_path = tmp_path / "losses.csv"
    csv_path.write_text("step,d_loss,g_loss\n10,0.5,0.7\n20,0.4")  # killed while writing step 20
    history = callbacks.LossHistory(_Run(tmp_path))
    history._rows = [{"step": 30, "d_loss": 0.3, "g_loss": 0.9}]
    with caplog.at_level(logging.WARNING):
        history._flush()
    assert csv_path.read_text() == "step,d_loss,g_loss\n10,0.5,0.7\n30,0.3,0.9\n"
    assert "torn line" in caplog.text
    data = callbacks.read_loss_csv(csv_path)
    assert data["step"].tolist() == [10, 30] and data["g_loss"].tolist() == [0.7, 0.9]


def test_the_reader_skips_malformed_rows(tmp_path, caplog):
    csv_path = tmp_path / "losses.csv"
    csv_path.write_text("step,d_loss,g_loss\n10,0.5,0.7\n20,0.4120,0.3,0.2\n30,abc,0.1\n40,0.2,\n50,0.1,0.6\n")
    with caplog.at_level(logging.WARNING):
        data = callbacks.read_loss_csv(csv_path)
    assert data["step"].tolist() == [10, 40, 50]
    assert data["d_loss"].tolist() == [0.5, 0.2, 0.1] and np.isnan(data["g_loss"][1])
    assert "skipped 2 malformed row(s)" in caplog.text


def test_config_yaml_round_trip_is_unchanged_by_the_checks(model_data):
    run = open_run("safety", "y", _config(), root=model_data)
    assert yaml.safe_load(run.config_path.read_text())["generator"]["latent_dim"] == 100
    run.release()
