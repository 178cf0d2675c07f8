"""A run folder is data: nothing planted in it reaches outside it, nothing of a run is lost or mixed,
and damaged files give a clear error or a logged repair, never a traceback from inside a library.

Each test is one case of the fault probe (planted links, crafted indexes, deleted checkpoints, a
changed learning rate, kill -9, Ctrl-C, a full disk, damaged files, options at their edges).
"""

import csv
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from ganhelpers import callbacks, data, experiment, summaries
from ganhelpers.cli import main
from ganhelpers.configs import ConfigError
from ganhelpers.dcgan import dcgan_config
from ganhelpers.run import HistoryWithoutCheckpoint, TrainingInterrupted, train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def digits32():
    return data.digits(32)["images"][:256]  # 4 steps an epoch at batch 64


def _config(**training):
    config = dcgan_config("smoke")
    config["training"].update({"log_every": 2, **training})
    return config


def _train(model_data, digits32, run="r", config=None, **kwargs):
    return train(config or _config(), run, root=model_data, data={"images": digits32}, verbose=0, **kwargs)


def _run_dir(model_data, run="r"):
    return model_data / "dcgan_smoke" / run


def _csv_steps(run_dir, name="losses.csv", column="step"):
    with open(run_dir / "samples" / name, newline="", encoding="utf-8", errors="replace") as f:
        rows = list(csv.DictReader(f))
    steps = []
    for row in rows:
        try:
            steps.append(int(row[column]))
        except ValueError:  # a damaged cell: the readers skip such rows too
            continue
    return steps


def _tag_steps(run_dir, tag):
    return [s for s, _ in summaries.read_scalars(run_dir / "logs").get(tag, [])]


class _At(keras.callbacks.Callback):
    """Runs ``action`` once the model reaches ``step`` (a stand-in for what happens to a process)."""

    def __init__(self, step, action):
        super().__init__()
        self.step, self.action = step, action

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.step.numpy()) == self.step:
            self.action()


class Disconnected(Exception):
    pass


def _raise(error):
    def action():
        raise error
    return action


# -- 1. planted links ---------------------------------------------------------------------------

@pytest.mark.parametrize("planted", [".lock", "samples/losses.csv", "checkpoints"])
def test_a_planted_link_stops_training_before_anything_outside_is_touched(model_data, digits32, tmp_path, planted):
    _train(model_data, digits32, config=_config(epochs=1))
    run_dir = _run_dir(model_data)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me\n")
    target = victim / "precious.txt" if planted != "checkpoints" else victim
    path = run_dir / planted
    shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    path.symlink_to(target)
    with pytest.raises(experiment.UnsafeRunFolder, match="symbolic link") as err:
        _train(model_data, digits32, config=_config(epochs=3))
    assert planted in str(err.value) and str(target) in str(err.value)
    assert (victim / "precious.txt").read_text() == "keep me\n" and sorted(os.listdir(victim)) == ["precious.txt"]


def test_commands_refuse_a_run_folder_with_a_link_in_it(model_data, digits32, tmp_path, capsys):
    _train(model_data, digits32)
    run_dir = _run_dir(model_data)
    outside = tmp_path / "outside.yaml"
    outside.write_text((run_dir / "config.yaml").read_text())
    (run_dir / "config.yaml").unlink()
    (run_dir / "config.yaml").symlink_to(outside)
    for argv in (["sample", str(run_dir), "-n", "2"], ["gif", str(run_dir)]):
        with pytest.raises(SystemExit) as err:
            main(argv)
        assert "symbolic link" in str(err.value) and "config.yaml" in str(err.value)


def test_csv_appends_never_follow_a_link(tmp_path):
    victim = tmp_path / "victim.csv"
    victim.write_text("step,x\n1,2\n")
    link = tmp_path / "losses.csv"
    link.symlink_to(victim)
    with pytest.raises(OSError):
        callbacks.append_csv_rows(link, [{"step": 2, "x": 3.0}])
    assert victim.read_text() == "step,x\n1,2\n"


# -- 2. a crafted checkpoint index --------------------------------------------------------------

def test_a_crafted_checkpoint_index_is_refused_and_deletes_nothing(model_data, digits32, tmp_path):
    _train(model_data, digits32, config=_config(epochs=1, keep_checkpoints=1))
    run_dir = _run_dir(model_data)
    other = model_data / "dcgan_smoke" / "other" / "checkpoints"
    other.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for folder, name in ((other, "ckpt-48"), (elsewhere, "ckpt-1")):
        for suffix in (".index", ".data-00000-of-00001"):
            (folder / f"{name}{suffix}").write_bytes(b"someone else's checkpoint")
    (run_dir / "checkpoints" / "checkpoint").write_text(
        'model_checkpoint_path: "ckpt-4"\n'
        f'all_model_checkpoint_paths: "{elsewhere}/ckpt-1"\n'
        'all_model_checkpoint_paths: "../../other/checkpoints/ckpt-48"\n'
        'all_model_checkpoint_paths: "ckpt-4"\n')
    with pytest.raises(callbacks.UnsafeCheckpointIndex) as err:
        _train(model_data, digits32, config=_config(epochs=3, keep_checkpoints=1))
    assert "ckpt-48" in str(err.value) and "Delete the index" in str(err.value)
    assert len(list(other.iterdir())) == 2 and len(list(elsewhere.iterdir())) == 2
    # the way forward the message names: delete the index; it is rebuilt from the run's own files
    (run_dir / "checkpoints" / "checkpoint").unlink()
    _, _, results = _train(model_data, digits32, config=_config(epochs=3, keep_checkpoints=1))
    assert results["step"] == 12 and results["resumed_from"].endswith("ckpt-4")
    assert len(list(other.iterdir())) == 2 and len(list(elsewhere.iterdir())) == 2


# -- 5. history without checkpoints ---------------------------------------------------------------

def test_a_run_with_history_but_no_checkpoint_stops_instead_of_mixing(model_data, digits32):
    _train(model_data, digits32, config=_config(epochs=2, log_every=2))
    run_dir = _run_dir(model_data)
    for f in (run_dir / "checkpoints").iterdir():
        f.unlink()
    rows = (run_dir / "samples" / "losses.csv").read_text()
    with pytest.raises(HistoryWithoutCheckpoint) as err:
        _train(model_data, digits32, config=_config(epochs=2, log_every=2))
    assert "--fresh" in str(err.value) and "restore the checkpoints" in str(err.value)
    assert (run_dir / "samples" / "losses.csv").read_text() == rows
    with pytest.raises(SystemExit, match="no checkpoint"):
        main(["train", "dcgan", "--root", str(model_data), "--run", "r", "--set", "training.log_every=2"])
    _, _, results = _train(model_data, digits32, config=_config(epochs=2, log_every=2), fresh=True)
    assert results["step"] == 8 and _csv_steps(run_dir) == [2, 4, 6, 8]
    assert _tag_steps(run_dir, "losses/g_loss") == [2, 4, 6, 8]


def test_a_first_start_that_failed_does_not_block_the_next(model_data, digits32):
    bad = _config()
    bad["data"]["image_size"] = 7
    with pytest.raises(ValueError):
        _train(model_data, digits32, config=bad)
    _, _, results = _train(model_data, digits32)  # no "was trained with another config": nothing was
    assert results["step"] == 4


# -- 6. a changed learning rate on resume ---------------------------------------------------------

def test_a_learning_rate_changed_on_resume_is_the_one_that_trains(model_data, digits32):
    _train(model_data, digits32, config=_config(epochs=1, d_lr=2e-4, g_lr=2e-4, log_every=2))
    model, run, _ = _train(model_data, digits32, config=_config(epochs=2, d_lr=1e-3, g_lr=5e-4, log_every=2))
    assert float(model.d_optimizer.learning_rate.numpy()) == pytest.approx(1e-3)
    assert float(model.g_optimizer.learning_rate.numpy()) == pytest.approx(5e-4)
    lrs = dict(summaries.read_scalars(run.logs)["learning_rate/discriminator"])
    assert lrs[2] == pytest.approx(2e-4) and lrs[6] == pytest.approx(1e-3) and lrs[8] == pytest.approx(1e-3)
    saved = tf.train.load_checkpoint(str(run.checkpoints))
    names = [n for n, _ in tf.train.list_variables(str(run.checkpoints)) if "learning_rate" in n]
    assert names and any(saved.get_tensor(n) == pytest.approx(1e-3) for n in names)


def test_a_huge_learning_rate_on_resume_stops_on_the_nan_it_causes(model_data, digits32):
    _train(model_data, digits32, config=_config(epochs=1))
    with pytest.raises(FloatingPointError, match="non-finite loss"):
        _train(model_data, digits32, config=_config(epochs=3, d_lr=1e30, g_lr=1e30))


# -- 7, 8. kill -9 mid-epoch, then resume: every logged step once -----------------------------------

KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    import keras
    from ganhelpers import data
    from ganhelpers.dcgan import dcgan_config
    from ganhelpers.run import train

    class Kill(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if int(self.model.step.numpy()) == 11:
                os.kill(os.getpid(), signal.SIGKILL)

    config = dcgan_config("smoke")
    config["training"].update(epochs=5, log_every=3, checkpoint_every_steps=4, checkpoint_every_epochs=None,
                              snapshot_every=2)
    train(config, "r", root=sys.argv[1], data={"images": data.digits(32)["images"][:256]}, verbose=0,
          callbacks=[Kill()])
""")


def test_kill_9_mid_epoch_then_resume_logs_every_step_once(model_data, digits32):
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-c", KILLED_RUN, str(model_data)], env=env, capture_output=True,
                          timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    run_dir = _run_dir(model_data)
    # nothing the checkpoint holds is missing from the CSV: rows were written at once
    assert _csv_steps(run_dir) == [3, 6, 9]
    config = _config(epochs=5, log_every=3, checkpoint_every_steps=4, checkpoint_every_epochs=None, snapshot_every=2)
    _, run, results = _train(model_data, digits32, config=config)
    assert results["resumed_from"].endswith("ckpt-8") and results["step"] == 20
    expected = [3, 6, 9, 12, 15, 18]
    assert _csv_steps(run_dir) == expected  # step 9 was logged after ckpt-8, dropped, logged again
    for tag in ("losses/d_loss_real", "losses/g_loss", "accuracy/d_acc_real", "learning_rate/generator"):
        assert _tag_steps(run_dir, tag) == expected, tag
    frames = sorted(int(p.stem[5:]) for p in (run_dir / "tmp").glob("step_*.png"))
    assert frames == list(range(0, 21, 2))


def test_wgan_resume_repeats_no_generator_iteration_and_logs_no_bogus_estimate(model_data, digits32):
    from ganhelpers import wgan

    config = wgan.wgan_config("smoke")
    config["training"].update(checkpoint_every_steps=5, checkpoint_every_epochs=None)
    spec = {"images": data.digits(32)["images"][:256]}
    with pytest.raises(Disconnected):
        train(config, "r", root=model_data, data=spec, verbose=0, callbacks=[_At(13, _raise(Disconnected()))])
    model, run, _ = train(config, "r", root=model_data, data=spec, verbose=0)
    g = int(model.generator_iteration.numpy())
    table = wgan.read_wasserstein_csv(run.samples / "wasserstein.csv")
    raw = _csv_steps(run.dir, "wasserstein.csv", "generator_iteration")
    assert raw == list(range(1, g + 1))  # no repeats after the resume
    assert np.all(table["wasserstein"] != 0.0)
    steps = _tag_steps(run.dir, "wasserstein/estimate")
    assert len(steps) == g and len(set(steps)) == g
    assert [int(v) for _, v in summaries.read_scalars(run.logs)["schedule/generator_iteration"]] == raw


# -- 9. Ctrl-C ----------------------------------------------------------------------------------------

def test_ctrl_c_saves_a_checkpoint_at_the_current_step(model_data, digits32):
    with pytest.raises(TrainingInterrupted) as err:
        _train(model_data, digits32, config=_config(epochs=3), callbacks=[_At(7, _raise(KeyboardInterrupt()))])
    assert isinstance(err.value, KeyboardInterrupt) and err.value.step == 7
    assert "ckpt-7" in str(err.value) and "resume" in str(err.value)
    run_dir = _run_dir(model_data)
    assert (run_dir / "checkpoints" / "ckpt-7.index").exists()
    assert json.loads((run_dir / "results.json").read_text())["step"] == 7
    _, _, results = _train(model_data, digits32, config=_config(epochs=3))
    assert results["resumed_from"].endswith("ckpt-7") and results["step"] == 12


def test_ctrl_c_on_the_command_line_exits_130_with_how_to_resume(model_data):
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    # SIGINT as a terminal delivers it: a test runner started in the background (CI) ignores SIGINT,
    # and children inherit that, so the child gets the default handler back first
    proc = subprocess.Popen([sys.executable, "-m", "ganhelpers", "train", "dcgan", "--root", str(model_data),
                             "--steps", "100000", "--quiet"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=model_data,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        csv_path = _run_dir(model_data, "default") / "samples" / "losses.csv"
        deadline = time.monotonic() + 300
        while not (csv_path.exists() and len(csv_path.read_text().splitlines()) > 2) and time.monotonic() < deadline:
            time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = err.decode()
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "interrupted at step" in err and "--run default" in err
    step = json.loads((csv_path.parent.parent / "results.json").read_text())["step"]
    assert step >= 20 and (csv_path.parent.parent / "checkpoints" / f"ckpt-{step}.index").exists()


# -- 7. a full disk ---------------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A 12 MB tmpfs (root only, as on CI and the developers' machines): writes fail with ENOSPC."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("a full disk is simulated with a small tmpfs, which needs root and mount")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_full_disk_stops_with_a_clear_error_and_loses_nothing(small_disk, digits32):
    from ganhelpers.run import DiskFull

    ballast = small_disk / "ballast"

    def fill():
        with open(ballast, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * (1 << 16))
                    f.flush()
            except OSError:
                pass

    config = _config(epochs=5, log_every=2, checkpoint_every_steps=4, checkpoint_every_epochs=None)
    with pytest.raises(DiskFull) as err:
        _train(small_disk, digits32, config=config, callbacks=[_At(9, fill)])
    assert "free some space" in str(err.value) and "ckpt-8" in str(err.value)
    ballast.unlink()
    _, run, results = _train(small_disk, digits32, config=config)
    assert results["step"] == 20 and results["resumed_from"].endswith("ckpt-8")
    assert _csv_steps(run.dir) == list(range(2, 21, 2))
    assert _tag_steps(run.dir, "losses/g_loss") == list(range(2, 21, 2))


# -- 10, 13. values checked where they are set ---------------------------------------------------

@pytest.mark.parametrize("assignment, message", [
    ("generator.latent_dim=0", "generator.latent_dim must be a positive whole number (or null), got 0"),
    ("data.batch_size=abc", "data.batch_size must be a positive whole number, got 'abc'"),
    ("data.batch_size=-4", "data.batch_size must be a positive whole number, got -4"),
    ("data.batch_size=0", "data.batch_size must be a positive whole number, got 0"),
    ("training.keep_checkpoints=0", "training.keep_checkpoints must be a positive whole number, got 0"),
    ("training.snapshot_every=0", "training.snapshot_every must be a positive whole number, got 0"),
    ("training.d_lr=-1", "training.d_lr must be a finite number > 0 (or null), got -1"),
    ("training.gif_fps=0", "training.gif_fps must be a finite number > 0, got 0"),
])
def test_config_values_are_checked_before_anything_is_written(model_data, assignment, message):
    with pytest.raises(SystemExit) as err:
        main(["train", "dcgan", "--root", str(model_data), "--set", assignment])
    assert message in str(err.value)
    assert not any(model_data.iterdir())
    section, rest = assignment.split(".", 1)
    key, value = rest.split("=")
    config = dcgan_config("smoke")
    config[section][key] = {"abc": "abc"}.get(value, value if not value.lstrip("-").isdigit() else int(value))
    with pytest.raises(ConfigError):
        train(config, "r", root=model_data, data={"images": np.zeros((64, 32, 32, 1), np.uint8)})


@pytest.mark.parametrize("argv, option", [
    (["sample", "RUN", "-n", "0"], "-n"), (["sample", "RUN", "-n", "-3"], "-n"), (["sample", "RUN", "-n", "x"], "-n"),
    (["gif", "RUN", "--fps", "0"], "--fps"), (["gif", "RUN", "--fps", "nan"], "--fps"),
    (["gif", "RUN", "--max-frames", "1"], "--max-frames"), (["train", "dcgan", "--steps", "-1"], "--steps"),
    (["fid", "A", "B", "-n", "0"], "-n"), (["eval", "A", "B", "--k", "0"], "--k"),
])
def test_command_line_options_at_their_edges_name_the_option(argv, option, capsys):
    with pytest.raises(SystemExit) as err:
        main(argv)
    assert err.value.code == 2
    assert f"argument {option}" in capsys.readouterr().err


def test_a_resume_of_pggan_warns_of_no_change(model_data, caplog):
    from ganhelpers.pggan import pggan_config

    config = pggan_config("smoke")
    experiment.open_run("p", "r", config, root=model_data).release()
    with caplog.at_level(logging.INFO):
        experiment.open_run("p", "r", pggan_config("smoke"), root=model_data).release()
    assert "changed config" not in caplog.text and "object at 0x" not in caplog.text
    changed = pggan_config("smoke")
    sizes = changed["training"]["batch_sizes"]
    changed["training"]["batch_sizes"] = {**sizes, 4: sizes[4] + 1}
    unsafe, safe = experiment.config_changes(config, changed)
    assert safe == ["training.batch_sizes.4"] and not unsafe


# -- 11. damaged files of a run ------------------------------------------------------------------------

def test_damaged_loss_csv_bytes_and_header_are_repaired_or_set_aside(model_data, digits32, caplog):
    _train(model_data, digits32, config=_config(epochs=1, log_every=2))
    csv_path = _run_dir(model_data) / "samples" / "losses.csv"
    lines = csv_path.read_bytes().splitlines(keepends=True)
    csv_path.write_bytes(lines[0] + lines[1].replace(b",", b"\xff,", 1) + b"".join(lines[2:]))
    _train(model_data, digits32, config=_config(epochs=2, log_every=2))
    assert _csv_steps(_run_dir(model_data)) == [4, 6, 8]  # the damaged row is skipped, the rest kept
    assert (csv_path.parent / "losses.png").exists()
    csv_path.write_text("garbage\n" + "".join(line.decode("utf-8", "replace") for line in lines[1:]))
    with caplog.at_level(logging.WARNING):
        _train(model_data, digits32, config=_config(epochs=3, log_every=2))
    assert (csv_path.parent / "losses.csv.damaged-1").read_text().startswith("garbage")
    assert _csv_steps(_run_dir(model_data)) == [10, 12] and "moved it aside" in caplog.text


def test_a_damaged_results_json_is_set_aside(model_data, digits32):
    _train(model_data, digits32, config=_config(epochs=1))
    path = _run_dir(model_data) / "results.json"
    path.write_text("{not json")
    _, _, results = _train(model_data, digits32, config=_config(epochs=2))
    assert results["step"] == 8 and json.loads(path.read_text())["step"] == 8
    assert (path.parent / "results.json.damaged-1").read_text() == "{not json"


def test_an_unreadable_frame_is_skipped_by_train_and_gif(model_data, digits32, caplog, capsys):
    _train(model_data, digits32, config=_config(epochs=1, snapshot_every=1))
    run_dir = _run_dir(model_data)
    frames = sorted((run_dir / "tmp").glob("step_*.png"))
    frames[1].write_bytes(b"not a png")
    _train(model_data, digits32, config=_config(epochs=2, snapshot_every=1))
    gif = run_dir / "gifs" / "dcgan_smoke-r.gif"
    from ganhelpers import images

    assert images.gif_frame_count(gif) == len(list((run_dir / "tmp").glob("step_*.png"))) - 1
    with caplog.at_level(logging.WARNING):
        assert main(["gif", str(run_dir)]) == 0
    said = caplog.text + capsys.readouterr().err  # the command prints the library's warnings on stderr
    assert "unreadable frame" in said and frames[1].name in said


def test_an_empty_config_yaml_is_a_clear_error(model_data, digits32):
    _train(model_data, digits32)
    run_dir = _run_dir(model_data)
    (run_dir / "config.yaml").write_text("")
    with pytest.raises(SystemExit, match="holds no config"):
        main(["sample", str(run_dir), "-n", "2"])
    (run_dir / "config.yaml").write_text("model: dcgan\n")
    with pytest.raises(SystemExit, match="does not describe a dcgan model"):
        main(["sample", str(run_dir), "-n", "2"])


def test_an_event_file_cut_short_is_read_up_to_the_cut(model_data, digits32, caplog):
    _, run, _ = _train(model_data, digits32, config=_config(epochs=3, log_every=1))
    event = max((run.logs).glob("events.out.tfevents.*"), key=lambda p: p.stat().st_size)
    full = summaries.read_scalars(run.logs)["losses/g_loss"]
    whole = event.read_bytes()
    event.write_bytes(whole[: len(whole) * 2 // 3])  # a full disk: the file ends mid-record
    cut = summaries.read_scalars(run.logs)["losses/g_loss"]
    assert 0 < len(cut) < len(full) and cut == full[: len(cut)]
    damaged = bytearray(whole)
    damaged[len(whole) // 2] ^= 0xFF  # a damaged byte: the record's checksum fails
    event.write_bytes(bytes(damaged))
    with caplog.at_level(logging.WARNING):
        before = summaries.read_scalars(run.logs)["losses/g_loss"]
    assert 0 < len(before) < len(full) and before == full[: len(before)]
    assert "cut short or damaged" in caplog.text and event.name in caplog.text


# -- 3, 12. eval reads images as the loaders do ----------------------------------------------------------

def test_eval_skips_bombs_and_unreadable_files_and_names_a_bad_npz(tmp_path, capsys, caplog):
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in ("real", "fake"):
        folder = tmp_path / name
        folder.mkdir()
        for i in range(24):
            Image.fromarray(rng.integers(0, 255, (32, 32), dtype=np.uint8)).save(folder / f"{i}.png")
    Image.new("L", (12000, 9000)).save(tmp_path / "fake" / "bomb.png")  # 108 megapixels, a few KB
    assert (tmp_path / "fake" / "bomb.png").stat().st_size < 200_000
    (tmp_path / "fake" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with caplog.at_level(logging.WARNING):
        assert main(["eval", str(tmp_path / "real"), str(tmp_path / "fake"), "--features", "none",
                     "--metrics", "kid", "swd"]) == 0
    shown = capsys.readouterr()
    said = caplog.text + shown.err  # the command prints the library's warnings on stderr
    assert "bomb.png" in said and "broken.png" in said and "skipped 2" in said
    assert "KID:" in shown.out
    (tmp_path / "random.npz").write_bytes(rng.integers(0, 255, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(SystemExit, match="is not a valid .npz"):
        main(["eval", str(tmp_path / "random.npz"), str(tmp_path / "fake"), "--features", "none", "--metrics", "kid"])


# -- 4. a graph that expands when run ---------------------------------------------------------------------

def test_a_small_graph_declaring_a_huge_constant_is_refused_before_it_runs(tmp_path):
    from ganhelpers.metrics import inception

    graph = tf.compat.v1.GraphDef()
    node = graph.node.add(name="pool_3", op="Const")
    node.attr["dtype"].type = tf.float32.as_datatype_enum
    tensor = node.attr["value"].tensor
    tensor.dtype = tf.float32.as_datatype_enum
    for size in (50_000, 50_000):
        tensor.tensor_shape.dim.add(size=size)
    tensor.float_val.append(1.0)  # one value broadcast to 10 GB
    graph.node.add(name="ExpandDims", op="Placeholder").attr["dtype"].type = tf.float32.as_datatype_enum
    path = tmp_path / "classify_image_graph_def.pb"
    path.write_bytes(graph.SerializeToString())
    assert path.stat().st_size < 300
    with pytest.raises(inception.UnsafeGraph, match="declares 10,000,000,000 bytes of constants"):
        inception.Inception2015Graph(path)


# -- 10, 13. archives ----------------------------------------------------------------------------------

def _tar(path, members):
    import io
    import tarfile

    with tarfile.open(path, "w:gz") as tar:
        for name, payload in members:
            info = tarfile.TarInfo(name)
            if payload is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    return path


def test_an_archive_carrying_its_own_completion_marker_is_refused(tmp_path):
    archive = _tar(tmp_path / "set.tgz", [(".extracted-set.tgz", b"{}"), ("images/a.png", b"x")])
    with pytest.raises(data.ArchiveError, match="completion markers"):
        data.extract(archive, tmp_path / "out")
    assert not data.is_extracted("set.tgz", tmp_path / "out")


def test_an_archive_with_a_file_that_is_also_a_folder_is_refused_before_writing(tmp_path):
    archive = _tar(tmp_path / "set.tgz", [("a", b"file"), ("a/b", b"inside a file")])
    with pytest.raises(data.ArchiveError, match="'a' as a file and also 'a/b'"):
        data.extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# -- 14. downloads that fail, and the CLI's reach -----------------------------------------------------------

def test_a_failed_download_is_one_message_with_the_ways_forward(tmp_path):
    with pytest.raises(data.DownloadError) as err:
        data.fetch("http://127.0.0.1:9/mnist.npz", tmp_path, "mnist.npz", md5="0" * 32)
    message = str(err.value)
    assert "mnist.npz" in message and "http://127.0.0.1:9/mnist.npz" in message
    assert "--data-dir" in message and "--preset cpu" in message and "--weights none" in message
    assert not (tmp_path / "mnist.npz").exists()


def test_the_command_line_trains_on_an_image_folder_with_keys_the_preset_lacks(model_data, tmp_path, capsys):
    from PIL import Image

    folder = tmp_path / "pictures"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(70):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(folder / f"{i}.jpg")
    assert main(["train", "dcgan", "--root", str(model_data), "--run", "folder", "--set", "data.name=folder",
                 "--set", f"data.path={folder}", "--set", "data.channels=3", "--set", "training.log_every=1",
                 "--set", "training.gif_fps=2", "--quiet"]) == 0
    run_dir = model_data / "dcgan_smoke" / "folder"
    config = experiment.load_config(run_dir / "config.yaml")
    assert config["data"]["path"] == str(folder) and config["training"]["log_every"] == 1
    assert _csv_steps(run_dir) == [1]  # 70 images, batch 64: one step an epoch, logged at every step


def test_bad_paths_are_one_line_errors_not_tracebacks(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    for argv, says in ((["eval", str(empty), str(empty), "--features", "none"], "no image files"),
                       (["train", "dcgan", "--root", str(a_file)], "Not a directory"),
                       (["sample", str(empty)], "is not a run folder"),
                       (["gif", str(tmp_path / "missing")], "is not a run folder")):
        with pytest.raises(SystemExit) as err:
            main(argv)
        assert says in str(err.value), argv
    assert a_file.read_text() == "not a folder" and not any(empty.iterdir())
