"""Notebook 01 runs top to bottom in its smoke preset and leaves a complete run folder."""

import nbformat
import pytest

from ganhelpers import images
from notebooks import run_notebook

pytestmark = pytest.mark.notebook


def test_dcgan_birds_notebook_smoke(tmp_path):
    out = run_notebook("01_dcgan_birds.ipynb", tmp_path)
    run = tmp_path / "model_data" / "dcgan_smoke" / "default"
    frames = sorted(run.glob("tmp/step_*.png"))
    assert len(frames) == 1 + 28 // 5  # step 0, then every 5 of the 28 steps of one epoch
    assert images.gif_frame_count(run / "gifs" / "dcgan_smoke.gif") == len(frames)
    for name in ("losses.png", "losses.csv", "final_grid.png"):
        assert (run / "samples" / name).exists()
    assert list((run / "checkpoints").glob("ckpt-28.index"))
    assert list((run / "logs").rglob("events.out.tfevents.*"))
    text = "".join(o.get("text", "") for c in nbformat.read(out, 4).cells for o in c.get("outputs", []))
    assert "trained to step 28 epoch 1" in text
