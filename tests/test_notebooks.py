"""Every notebook runs top to bottom in its smoke preset and shows what it should: a figure in every
figure cell, no errors, no stray stderr, no TensorFlow banner, no progress bars, and its learning figure
as one printed line (``learning check: ...``; smoke trains too little for the number to mean much,
the cpu preset is where it does). Notebook 01 also
resumes after a "disconnect" (a fresh kernel, the same RUN_NAME, a larger budget), and every
exercise that is cheap in smoke runs as written: its parameters changed, then "Run all" again."""

import os
import re
from pathlib import Path

import nbformat
import pytest

from ganhelpers.run import duration
from notebooks import (
    NOTEBOOKS,
    ROOT,
    Kernel,
    all_text,
    check_outputs,
    embedded_gifs,
    exported_html,
    learning_checks,
    results,
    smoke,
    stream_text,
)

pytestmark = pytest.mark.notebook


def test_dcgan_notebook_resumes_after_a_disconnect_and_its_exercise_runs(tmp_path):
    name = "01_dcgan_birds.ipynb"
    run_dir = tmp_path / "model_data" / "dcgan_smoke" / "resume"
    with Kernel(name) as k:  # the first session stops at step 10 (STEPS)
        try:
            cells = k.run_all(**smoke(tmp_path, RUN_NAME="resume", STEPS=10))
        finally:
            k.save(tmp_path / "first.ipynb")
        check_outputs(cells)
    first = results(run_dir)
    assert first["step"] == 10 and first["resumed_from"] is None
    rate = 10 / first["train_seconds"]  # STEPS=10 stops the run, not the preset's whole budget (28 steps)
    assert f"the whole budget of preset 'smoke': 28 steps, about {duration(28 / rate)} at this rate " \
           f"({duration(18 / rate)} left)" in all_text(cells)
    assert (run_dir / "checkpoints" / "ckpt-10.index").exists()

    with Kernel(name) as k:  # a new session, same RUN_NAME, the preset's whole budget (28 steps)
        cells = k.run_all(**smoke(tmp_path, RUN_NAME="resume"))
        shown = check_outputs(cells)
        assert shown["figures"] == 5  # data, targets, losses, final grid, GIF
        second = results(run_dir)
        assert second["step"] == 28
        assert Path(second["resumed_from"]).name == "ckpt-10"  # continued from the saved step, not from 0
        rows = (run_dir / "samples" / "losses.csv").read_text().splitlines()[1:]
        assert [int(row.split(",")[0]) for row in rows] == [10, 20]  # logged every 10 steps, none twice
        text = all_text(cells)
        assert len(re.findall(r"^\d+/\d+ - ", text, re.M)) == 1  # one progress line per epoch
        assert "step 28, " in text
        assert f"measured: 28 steps (1,792 images) in {duration(second['train_seconds'])}: " in text
        assert f"the whole budget of preset 'smoke': 28 steps, about {duration(second['train_seconds'])} at this " \
               "rate (all done)" in text
        assert embedded_gifs(exported_html(k, cells)) == 1  # the GIF shows in the notebook exported to HTML
        # The training cell run again: the budget is met, and the notebook says so.
        train_cell = next(c.source for c in nbformat.read(NOTEBOOKS / name, 4).cells if "budget_report(" in c.source)
        assert "nothing to train: step 28 of 28 already done (RUN_NAME='resume'); change RUN_NAME or STEPS to train " \
               "more\n" in all_text([k.run(train_cell)])
        [check] = learning_checks(cells)  # the digit classifier on 500 samples of G
        assert re.match(r"learning check: \d+% of 500 samples are digits .* covering \d+/10 classes$", check), check
        assert results(run_dir)["learning_check"]["summary"] == check  # recorded as printed, at step 28
        assert results(run_dir)["learning_check"]["step"] == 28
        # the classifier behind it is cached with the datasets (DATA_DIR: on Drive on Colab)
        assert [p.name for p in (tmp_path / "data" / "models").glob("digit_classifier_*.keras")] == \
            ["digit_classifier_32px_1ch_e20_s0.keras"]

        # Exercise 1 as written: no label noise under a new RUN_NAME, then Run all.
        cells = k.run_all(**smoke(tmp_path, RUN_NAME="no_noise", CHANGES={"training": {"label_noise": None}}))
        check_outputs(cells)
        assert results(run_dir.parent / "no_noise")["step"] == 28
        assert "label_noise: null" in (run_dir.parent / "no_noise" / "config.yaml").read_text()

        # Without MODEL_DATA, runs go to <repository>/model_data (the kernel was started in notebooks/).
        setup = next(c.source for c in nbformat.read(NOTEBOOKS / name, 4).cells if "REPOSITORY = " in c.source)
        k.run("MODEL_DATA = None\n" + setup)
        assert all_text([k.run("print(MODEL_DATA)")]).strip() == str(ROOT / "model_data")
    k.save(tmp_path / name)


def test_wgan_notebook_and_its_exercises(tmp_path):
    with Kernel("02_wgan_birds.ipynb") as k:
        cells = k.run_all(**smoke(tmp_path))
        shown = check_outputs(cells)
        assert shown["figures"] == 6  # init weights, schedule, data, curves, samples + histograms, GIFs
        checks = learning_checks(cells)
        assert [line.split(": learning check: ")[0] for line in checks] == ["WGAN (weight clipping)", "WGAN-GP"]
        text = all_text(cells)
        steps = [results(tmp_path / "model_data" / f"wgan_smoke_{v}" / "default")["step"] for v in ("clip", "gp")]
        assert re.findall(r"^the whole budget of preset 'smoke': (\d+) steps, about .+ at this rate \(all done\)$",
                          text, re.M) == [str(n) for n in steps]  # per model, in critic iterations
        # the schedule cell's promise, "the exact number of critic iterations", for each model's own budget
        counts = re.search(r"\b(\d+) generator iterations = ([\d,]+) critic iterations \(batches\) with clipping; "
                           r"(\d+) generator iterations = ([\d,]+) with WGAN-GP$", text, re.M)
        assert counts, text[:3000]
        assert [int(counts[2].replace(",", "")), int(counts[4].replace(",", ""))] == steps
        assert embedded_gifs(exported_html(k, cells)) == 2  # both GIFs show in the notebook exported to HTML
        assert any((tmp_path / "data" / "models").glob("digit_classifier_32px_1ch_*.keras"))  # with the datasets
        for variant, line in zip(("clip", "gp"), checks, strict=True):
            run = tmp_path / "model_data" / f"wgan_smoke_{variant}" / "default"
            assert results(run)["generator_iterations"] == 6
            assert "learning check: " + line.split(": learning check: ")[1] == results(run)["learning_check"]["summary"]
        # Exercise 2 as written, with the clipped critic only (MODELS = ["clip"], as the exercises suggest).
        schedule = {"warmup_generator_iterations": 0, "warmup_n_critic": 5, "every": 0, "n_critic": 5}
        cells = k.run_all(**smoke(tmp_path, RUN_NAME="always5", MODELS=["clip"],
                                  CHANGES={"clip": {"schedule": schedule}}))
        check_outputs(cells)
        assert len(learning_checks(cells)) == 1
        assert not (tmp_path / "model_data" / "wgan_smoke_gp" / "always5").exists()
        assert "every: 0" in (tmp_path / "model_data" / "wgan_smoke_clip" / "always5" / "config.yaml").read_text()
        # STEPS = 1 (a first try): no generator iteration yet, so no Wasserstein curve; the notebook says so
        cells = k.run_all(**smoke(tmp_path, RUN_NAME="one", MODELS=["clip"], STEPS=1))
        check_outputs(cells, no_figure=("wasserstein.csv",))
        assert "no Wasserstein estimates yet: one is logged per generator iteration, and these runs stopped before " \
               "their first (STEPS)\n" in all_text(cells)
        assert results(tmp_path / "model_data" / "wgan_smoke_clip" / "one")["final_wasserstein_estimate"] is None


def test_sgan_notebook_and_its_exercises(tmp_path):
    exp = tmp_path / "model_data" / "sgan_smoke"
    with Kernel("03_sgan_mnist.ipynb") as k:
        cells = k.run_all(**smoke(tmp_path))
        shown = check_outputs(cells)
        assert shown["figures"] == 5  # labelled images, accuracy curve, confusion matrix, samples, sweep
        r = results(exp / "default")
        [check] = learning_checks(cells)
        assert check.startswith(f"learning check: SGAN test accuracy {r['sgan_test_accuracy']:.1%} vs baseline "
                                f"{r['baseline_test_accuracy']:.1%} ({r['num_labels']} labels"), check
        assert len(r["test_accuracy_per_epoch"]) == 3 and 0 <= r["baseline_test_accuracy"] <= 1
        text = all_text(cells)
        assert re.search(r"^the whole budget of preset 'smoke': \d+ steps, about .+ at this rate \(all done\)$",
                         text, re.M)
        # The sweep at the main run's labels is the main run: the figures the learning check printed.
        assert f"| {r['num_labels']} | 3 | {r['sgan_test_accuracy']:.1%} | {r['baseline_test_accuracy']:.1%} " \
               "| default (the main run above) |" in text
        assert re.search(r"^\| 20 \| 1 \| [\d.]+% \| [\d.]+% \| default_sweep_2 \|$", text, re.M)
        names = {p.name for p in exp.iterdir()}
        assert names >= {"default", "default_sweep_2"} and "default_sweep_5" not in names
        # Exercises 1-3 as written, without the sweep (each changes one parameter and the run name).
        for changes in ({"LABELS_PER_CLASS": 1, "RUN_NAME": "labels1"},
                        {"FORMULATION": "two_head", "RUN_NAME": "two_head"},
                        {"GENERATOR_LOSS": "standard", "RUN_NAME": "standard"}):
            check_outputs(k.run_all(**smoke(tmp_path, RUN_SWEEP=False, **changes)), no_figure=("accuracy_vs_labels",))
            assert results(exp / changes["RUN_NAME"])["step"] > 0
        assert results(exp / "labels1")["num_labels"] == 10
        assert results(exp / "two_head")["formulation"] == "two_head"
        assert results(exp / "standard")["generator_loss"] == "standard"


def test_pggan_notebook_and_its_exercise(tmp_path):
    exp = tmp_path / "model_data" / "pggan_smoke"
    with Kernel("04_pggan_fade_in.ipynb") as k:
        cells = k.run_all(**smoke(tmp_path))
        shown = check_outputs(cells)
        assert shown["figures"] == 5  # fade-in diagram, data levels, alpha + losses, level grids, GIF
        r = results(exp / "default")
        assert (r["phase"] + 1, r["resolution"], r["alpha"]) == (r["phases"], 16, 1.0)
        [check] = learning_checks(cells)  # the final resolution was reached: the check runs (at 16x16)
        assert re.match(r"learning check: \d+% of 500 samples are digits", check), check
        assert r["learning_check"]["summary"] == check and r["learning_check"]["step"] == r["step"]
        assert any((tmp_path / "data" / "models").glob("digit_classifier_16px_1ch_*.keras"))  # with the datasets
        assert r["level_grids"] == ["level_0004x0004.png", "level_0008x0008.png", "level_0016x0016.png"]
        text = all_text([c for c in cells if "budget_report(" in c.source])  # the training cell's output
        # one progress line per phase (an epoch each), headed by the phase and its resolutions
        assert re.findall(r"^Epoch \d+ · (.+)\n\d+/\d+ - ", text, re.M) == [
            "phase 1/5: stabilise 4×4", "phase 2/5: fade-in 4×4→8×8", "phase 3/5: stabilise 8×8",
            "phase 4/5: fade-in 8×8→16×16", "phase 5/5: stabilise 16×16"]
        assert re.search(r"^the whole budget of preset 'smoke': \d+ steps, about .+ at this rate \(all done\)$",
                         text, re.M)
        assert embedded_gifs(exported_html(k, cells)) == 1  # the GIF shows in the notebook exported to HTML
        # Exercise 2 as written: minibatch stddev off.
        check_outputs(k.run_all(**smoke(tmp_path, RUN_NAME="no_mbstd", CHANGES={"network": {"group_size": 1}})))
        assert results(exp / "no_mbstd")["resolution"] == 16
        # STEPS = 1 (a first try): nothing logged and no level finished yet; the notebook says so
        cells = k.run_all(**smoke(tmp_path, RUN_NAME="one", STEPS=1))
        check_outputs(cells, no_figure=("read_growth_log", "level_*.png"))
        text = all_text(cells)
        assert "nothing logged yet: the schedule and the losses are logged every 2 steps, and this run stopped at " \
               "step 1 (STEPS)\n" in text
        assert "no level finished yet: this run stopped at step 1 (STEPS), in its first phase\n" in text


def _tiles_std(png: bytes) -> float:
    """Pixel standard deviation of a grid's images (its white padding left out), in uint8 levels."""
    import io

    import numpy as np
    from PIL import Image

    grid = np.asarray(Image.open(io.BytesIO(png)).convert("L"), np.float64)
    keep = lambda n: (np.arange(n) - 2) % 66 < 64  # noqa: E731 - 64-px tiles, 2-px padding
    return float(grid[np.ix_(keep(grid.shape[0]), keep(grid.shape[1]))].std())


def test_dogs_notebook(tmp_path):
    """Smoke on a fresh machine: an empty data folder, so the digit classifier behind the metric is
    trained (once, saying so, cached in DATA_DIR/models); the text names the metric the table ranks by;
    every variant's grid shows structure, not flat grey."""
    import base64

    exp = tmp_path / "model_data" / "dog_dcgan_variants"
    models = tmp_path / "data" / "models"
    assert not models.exists()
    with Kernel("05_dog_dcgan_variants.ipynb") as k:
        cells = k.run_all(**smoke(tmp_path))
        shown = check_outputs(cells)
        # the stand-in images, the ranking metric's curves, grids (+ their stretched copies) + GIFs
        assert shown["figures"] == 3
        assert embedded_gifs(exported_html(k, cells)) == 2  # each variant's GIF shows in the HTML export
    text = all_text(cells)
    # the one wait longer than ~10 s that is not a training epoch says what it is, where it is cached
    training = [line for line in text.splitlines() if line.startswith("training the digit classifier")]
    assert training == [f"training the digit classifier for the metric features (32x32x1, 20 epochs on "
                        f"scikit-learn's digits; once, cached in {models}): ~13 s on a CPU"], training
    assert re.search(r"^digit classifier trained in \d+ s: 9\d\.\d% on held-out real digits; saved as "
                     r"digit_classifier_32px_1ch_e20_s0\.keras$", text, re.M)
    assert sorted(p.name for p in models.iterdir()) == ["digit_classifier_32px_1ch_e20_s0.json",
                                                        "digit_classifier_32px_1ch_e20_s0.keras"]
    assert re.findall(r"^training variant (\d) of 2, (\w+): ", text, re.M) == [("1", "dcgan1"), ("2", "dcgan2")]

    # The introduction's presets table names the metric, the network and the sample count of smoke ...
    intro = next(c.source for c in cells if c.cell_type == "markdown")
    [(metric, network, samples)] = re.findall(r"^\| `smoke` \| [^|]+ \| (\w+) \| the (\d+x\d+x\d) digit classifier "
                                              r"\| (\d+) \|$", intro, re.M)
    assert (metric, network, samples) == ("KID", "32x32x1", "16")
    # ... and the table and the printed ranking say the same
    [table] = [o["data"]["text/markdown"] for c in cells for o in c.get("outputs", [])
               if "text/markdown" in o.get("data", {}) and o["data"]["text/markdown"].startswith("| rank")]
    assert table.startswith(f"| rank | variant | {metric} (last) | best {metric} |")
    assert f"_{metric} and precision/recall by digit-cnn-32px-1ch-e20-s0 on {samples} samples_" in table
    [check] = learning_checks(cells)  # the ranked table in one line, the metric named
    assert re.match(rf"learning check: ranked by {metric} on digit-cnn-32px-1ch\S* features of {samples} samples: "
                    r"1\. (dcgan1|dcgan2) .+, 2\. (dcgan1|dcgan2) ", check), check
    assert {results(exp / f"default-{v}")["variant"] for v in ("dcgan1", "dcgan2")} == {"dcgan1", "dcgan2"}

    # Every variant's grid has visible structure: its last grid shown (stretched when the samples are flat)
    grids_cell = next(c for c in cells if c.cell_type == "code" and "final_grid.png" in c.source)
    shown_grids, per_variant = [], []
    for o in grids_cell.outputs:
        if "text/markdown" in o.get("data", {}):
            per_variant.append([])
        elif "image/png" in o.get("data", {}):
            per_variant[-1].append(_tiles_std(base64.b64decode(o["data"]["image/png"])))
            shown_grids.append(per_variant[-1][-1])
    assert len(per_variant) == 2 and all(len(v) in (1, 2) for v in per_variant), per_variant
    assert all(v[-1] > 20 for v in per_variant), per_variant  # uint8 levels: flat grey is below 1
    # The exercises (more variants) cost more in smoke: not run.


def test_a_notebook_trains_on_two_devices_and_devices_is_fixed_for_the_kernel(tmp_path):
    """DEVICES = 2 in notebook 01: the setup cell says how many replicas it found and the run trains on
    them (the same steps as on one device); the setup cell run again reuses them, and another count
    asks for a new kernel."""
    name = "01_dcgan_birds.ipynb"
    with Kernel(name) as k:
        cells = k.run_all(**smoke(tmp_path, DEVICES=2))
        check_outputs(cells)
        assert "devices: 2 replicas (MirroredStrategy over 2 logical CPU devices)\n" in \
            next(stream_text(c, "stdout") for c in cells if "REPOSITORY = " in c.source)
        r = results(tmp_path / "model_data" / "dcgan_smoke" / "default")
        assert (r["replicas"], r["strategy"], r["step"]) == (2, "MirroredStrategy", 28)
        setup = next(c.source for c in nbformat.read(NOTEBOOKS / name, 4).cells if "REPOSITORY = " in c.source)
        assert "devices: 2 replicas" in all_text([k.run("DEVICES = 2\n" + setup)])
        cell = k.run("DEVICES = 3\n" + setup, allow_errors=True)
        [error] = [o for o in cell.outputs if o.output_type == "error"]
        assert error.ename == "RuntimeError" and error.evalue.startswith("DEVICES = 3: ") and \
            "Restart the kernel (Colab: Runtime > Restart session) and Run all to change DEVICES" in error.evalue


def test_repository_is_named_in_one_place_and_everything_agrees():
    """REPOSITORY names the GitHub repository; tools/set_repository.py writes it into every
    notebook's badge and install cell and the README's badges. They must agree, and every notebook
    has a badge, GPU metadata, a parameters cell and no outputs."""
    repository = (ROOT / "REPOSITORY").read_text().strip()
    badge = re.compile(r"colab\.research\.google\.com/github/([^/\s)]+/[^/\s)]+)/blob/[^/\s)]+/notebooks/([\w.]+)")
    readme = dict((nb, repo) for repo, nb in badge.findall((ROOT / "README.md").read_text()))
    paths = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert sorted(readme) == [p.name for p in paths] and set(readme.values()) == {repository}
    setups = set()
    for path in paths:
        nb = nbformat.read(path, 4)
        text = "\n".join(c.source for c in nb.cells)
        setups |= {c.source for c in nb.cells if "REPOSITORY = " in c.source}
        parameters = next(c.source for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        assert "DRIVE_COPY = None" in parameters and "DEVICES = 1" in parameters, path.name
        assert text.count("strategy=STRATEGY") >= 1, f"{path.name} trains without the session's strategy"
        assert badge.findall(nb.cells[0].source) == [(repository, path.name)], path.name
        assert re.findall(r'^REPOSITORY = "([^"]*)"', text, re.M) == [repository], path.name
        assert nb.metadata.get("accelerator") == "GPU", path.name
        assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells), path.name
        assert not any(c.get("outputs") or c.get("execution_count") for c in nb.cells if c.cell_type == "code"), \
            f"{path.name} is committed with outputs"
    assert len(setups) == 1  # one setup cell, the same in every notebook (tests/test_colab.py runs it)


MNIST_DIR = Path(os.environ.get("GANHELPERS_MNIST_DIR", ROOT.parent / "shared" / "datasets"))


@pytest.mark.slow
@pytest.mark.skipif(not (MNIST_DIR / "mnist.npz").is_file(),
                    reason=f"no mnist.npz in {MNIST_DIR}: download it with ganhelpers.data.mnist(DIR) (11 MB) and set "
                           "GANHELPERS_MNIST_DIR=DIR")
def test_dcgan_notebook_trains_its_mnist_preset_and_the_mnist_judge_checks_it(tmp_path):
    """PRESET = "mnist" as a student sets it, with MNIST in DATA_DIR (a local copy, as a laptop without
    internet has it); a few steps of a narrower network (the preset's whole budget is 15-19 minutes).
    The learning check is the MNIST judge's bar, printed and recorded."""
    data_dir = _data_dir_with_mnist_and_judge(tmp_path)
    narrow = {"generator": {"base_filters": 8}, "discriminator": {"base_filters": 8}}
    with Kernel("01_dcgan_birds.ipynb") as k:
        try:
            cells = k.run_all(PRESET="mnist", RUN_NAME="m", MODEL_DATA=str(tmp_path / "model_data"),
                              DATA_DIR=str(data_dir), STEPS=3, CHANGES=narrow)
            shown = check_outputs(cells)
        finally:  # the TensorBoard the notebook started (not in smoke) must not outlive the test
            k.run("from tensorboard import manager\nimport os, signal\n"
                  f"[os.kill(i.pid, signal.SIGTERM) for i in manager.get_all() if {str(tmp_path)!r} in i.logdir]")
    assert shown["figures"] >= 4
    text = all_text(cells)
    assert "(60000, 32, 32, 1) uint8" in text  # the real MNIST, 28 -> 32
    [check] = learning_checks(cells)
    assert re.match(r"learning check: MNIST judge \(99\.\d\d% on the test set\): \d+\.\d% of 1000 samples with "
                    r"p >= 0\.9, \d+/10 classes within 5%-20% .* KID -?\d+\.\d+ ± \d+\.\d+: (passes|does not pass)$",
                    check), check
    run = results(tmp_path / "model_data" / "dcgan_mnist" / "m")
    assert run["step"] == 3 and run["learning_check"]["summary"] == check and run["learning_check"]["step"] == 3
    assert not run["learning_check"]["passes"]  # three steps do not make digits: the bar says so


def _data_dir_with_mnist_and_judge(tmp_path) -> Path:
    """A DATA_DIR as a laptop without internet has it: a copy of mnist.npz (the judge ships in the
    package: ganhelpers/networks)."""
    import shutil

    from ganhelpers import evaluate

    assert evaluate.shipped_mnist_judge_path().is_file()
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    shutil.copy(MNIST_DIR / "mnist.npz", data_dir / "mnist.npz")
    return data_dir


JUDGED = (r"learning check: MNIST judge \(99\.\d\d% on the test set\): \d+\.\d% of 1000 samples with p >= 0\.9, "
          r"\d+/10 classes within 5%-20% .* KID -?\d+\.\d+ ± \d+\.\d+: (passes|does not pass)$")

# notebook, its parameters (narrow networks, a few steps; PGGAN: one step a phase, so the growth ends
# at 32x32 and is judged), the learning-check lines it prints, the run folders it records them in
MNIST_NOTEBOOKS = {
    "02": ("02_wgan_birds.ipynb",
           dict(STEPS=3, CHANGES={"generator": {"base_filters": 8}, "critic": {"base_filters": 8}}),
           [r"WGAN \(weight clipping\): " + JUDGED, "WGAN-GP: " + JUDGED],
           ["wgan_mnist_clip/m", "wgan_mnist_gp/m"]),  # 3 critic steps: no generator iteration, no Wasserstein plot
    "04": ("04_pggan_fade_in.ipynb",
           dict(WIDTH=1 / 32, CHANGES={"training": {"fade_images": 32, "stabilise_images": 32, "log_every": 1}}),
           [JUDGED], ["pggan_mnist/m"]),
    "05": ("05_dog_dcgan_variants.ipynb",
           dict(STEPS=3, VARIANTS=["dcgan1"],
                CHANGES={"generator": {"base_filters": 8}, "discriminator": {"base_filters": 8}}),
           [r"learning check: ranked by FID on mnist-judge-[0-9a-f]+ features of 1000 samples: 1\. dcgan1 \d"], []),
}


@pytest.mark.slow
@pytest.mark.skipif(not (MNIST_DIR / "mnist.npz").is_file(),
                    reason=f"no mnist.npz in {MNIST_DIR}: download it with ganhelpers.data.mnist(DIR) (11 MB) and set "
                           "GANHELPERS_MNIST_DIR=DIR")
@pytest.mark.parametrize("which", sorted(MNIST_NOTEBOOKS))
def test_notebooks_02_04_05_train_their_mnist_preset_as_a_student_sets_it(tmp_path, which):
    """PRESET = "mnist" in notebooks 02 (both WGANs), 04 (the whole growth, 4x4 -> 32x32, one step a
    phase) and 05 (one variant): the real MNIST is read from DATA_DIR, no cell errs, stderr stays quiet,
    the figures appear, and the learning check is the MNIST judge's (05: the FID ranking on its features)."""
    name, params, expected, run_dirs = MNIST_NOTEBOOKS[which]
    data_dir = _data_dir_with_mnist_and_judge(tmp_path)
    with Kernel(name) as k:
        try:
            cells = k.run_all(PRESET="mnist", RUN_NAME="m", MODEL_DATA=str(tmp_path / "model_data"),
                              DATA_DIR=str(data_dir), **params)
            shown = check_outputs(cells, no_figure=("wasserstein_clip_vs_gp",))
        finally:  # the TensorBoard the notebook started (not in smoke) must not outlive the test
            k.run("from tensorboard import manager\nimport os, signal\n"
                  f"[os.kill(i.pid, signal.SIGTERM) for i in manager.get_all() if {str(tmp_path)!r} in i.logdir]")
    assert shown["figures"] >= 3
    assert "(60000, 32, 32, 1) uint8" in all_text(cells)  # the real MNIST, 28 -> 32
    checks = learning_checks(cells)
    assert len(checks) == len(expected), checks
    for line, pattern in zip(checks, expected, strict=True):
        assert re.match(pattern, line), line
    for run_dir, line in zip(run_dirs, checks, strict=False):
        recorded = results(tmp_path / "model_data" / run_dir)["learning_check"]
        assert line.endswith(recorded["summary"]) and not recorded["passes"]  # a few steps make no digits
