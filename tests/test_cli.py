"""The command line: demo (with resume), sample and gif; and the demo's learning check."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ganhelpers import evaluate, images
from ganhelpers.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_demo_sample_and_gif_commands(tmp_path, capsys, monkeypatch):
    from ganhelpers import dcgan

    smoke = dcgan.dcgan_config("smoke")
    monkeypatch.setitem(dcgan.DCGAN_PRESETS, "demo", smoke)  # a tiny network: this tests the plumbing
    assert main(["demo", "--run", "cli", "--steps", "12", "--root", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    run = tmp_path / "dcgan_smoke" / "cli"
    assert f"run folder: {run}" in out and f"tensorboard --logdir {run / 'logs'}" in out
    check = json.loads((run / "results.json").read_text())["learning_check"]  # the line printed, at step 12
    assert check["step"] == 12 and check["summary"] + "\n" in out and check["summary"].startswith("learning check: ")
    assert main(["sample", str(run), "-n", "5", "-o", str(tmp_path / "singles")]) == 0
    singles = sorted((tmp_path / "singles").glob("sample_*.png"))
    assert len(singles) == 5 and images.read_png(singles[0]).shape == (32, 32)
    (run / "gifs" / "dcgan_smoke-cli.gif").unlink()
    assert main(["gif", str(run), "--fps", "2"]) == 0
    assert images.gif_frame_count(run / "gifs" / "dcgan_smoke-cli.gif") == len(list(run.glob("tmp/step_*.png"))) == 3
    with pytest.raises(SystemExit, match="not a run folder"):
        main(["gif", str(tmp_path)])
    with pytest.raises(SystemExit, match="no readable checkpoint"):
        (tmp_path / "e" / "r" / "checkpoints").mkdir(parents=True)
        (tmp_path / "e" / "r" / "config.yaml").write_text((run / "config.yaml").read_text())
        main(["sample", str(tmp_path / "e" / "r")])


def _demo(tmp_path, *extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "ganhelpers", "demo", "--run", "kill", "--root",
                             str(tmp_path), "--quiet", *extra], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_demo_survives_kill_9_and_learns_digits(tmp_path):
    """The done-criterion of the foundation: kill -9 the real demo mid-run, re-run it, it resumes from
    the last checkpoint without a corrupt file, finishes its budget, and its samples are digits."""
    ckpts = tmp_path / "dcgan_digits" / "kill" / "checkpoints"
    proc = _demo(tmp_path)
    deadline = time.time() + 900
    while time.time() < deadline and not list(ckpts.glob("ckpt-100.index")):
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = sorted(int(p.stem.split("-")[1]) for p in ckpts.glob("ckpt-*.index"))
    assert done_before and done_before[-1] >= 100

    proc = _demo(tmp_path)
    log, _ = proc.communicate(timeout=1800)
    assert proc.returncode == 0, log
    assert f"resumed from {ckpts / 'ckpt-'}{done_before[-1]} at step {done_before[-1]}" in log
    results = json.loads((tmp_path / "dcgan_digits" / "kill" / "results.json").read_text())
    report = results["learning_check"]
    # Figures measured on this machine are in the README; these bounds say "recognisable digits".
    assert report["confident_fraction"] >= 0.5, report
    assert report["classes_covered"] >= 8, report
    assert report["classifier_holdout_accuracy"] >= 0.95


def test_digit_report_on_real_and_noise_images():
    """The learning check's yardstick (the cached classifier the demo's check uses): real digits score
    high, noise does not."""
    from ganhelpers import data

    clf, acc = evaluate.cached_digit_classifier(None, 32, 1)
    assert acc >= 0.95
    real = data.digits(32)["images"][:300].astype("float32") / 127.5 - 1
    rep = evaluate.digit_report(clf, real)
    assert rep["confident_fraction"] >= 0.9 and rep["classes_covered"] == 10
    noise = np.random.default_rng(0).uniform(-1, 1, (300, 32, 32, 1)).astype("float32")
    assert evaluate.digit_report(clf, noise)["confident_fraction"] < 0.3
