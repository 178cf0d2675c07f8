"""One way to run every paper: `python -m ganhelpers train MODEL`, then `sample`, `gif` and `fid` on
the run folder it made, for each of the six models; TensorBoard holds every promised point."""

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from ganhelpers import data, images, losses, summaries
from ganhelpers.cli import main
from ganhelpers.experiment import load_config
from ganhelpers.models import GAN, GANBase
from ganhelpers.run import budget_report, duration, model_kind, model_names, set_value, train

ROOT = Path(__file__).resolve().parents[1]

# model -> (run folder under the root, the tag of the model's own metric and how many points it must have)
RUNS = {
    "dcgan": "dcgan_smoke/default",
    "wgan": "wgan_smoke_clip/default",
    "wgan-gp": "wgan_smoke_gp/default",
    "sgan": "sgan_smoke/default",
    "pggan": "pggan_smoke/default",
    "dogs": "dog_dcgan_variants/default-dcgan1",
}


def csv_rows(path):
    return path.read_text().splitlines()[1:]


@pytest.fixture(scope="module")
def real_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("real")
    for i, img in enumerate(data.digits(32, 1)["images"][:4]):
        images.save_png(folder / f"real_{i}.png", img[..., 0])
    return folder


@pytest.mark.parametrize("model", list(RUNS))
def test_train_then_sample_gif_and_fid_on_every_model(model, tmp_path, capsys, real_folder):
    assert main(["train", model, "--preset", "smoke", "--root", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    run = tmp_path / RUNS[model]
    assert f"run folder:  {run}" in out and f"tensorboard --logdir {run / 'logs'}" in out
    config = load_config(run / "config.yaml")
    assert config["model"] == model and (model != "dogs" or config["variant"] == "dcgan1")
    results = json.loads((run / "results.json").read_text())
    assert results["model"] == model and results["step"] > 0 and results["train_seconds"] > 0
    assert set(results["final_losses"]) >= {n for n in model_kind(model).build(config).metric_names
                                            if n != "generator_loss"}

    # TensorBoard: every event file in logs/ itself (one TensorBoard run), and the same step
    # points as losses.csv for every reported value.
    logs = run / "logs"
    assert {p.parent for p in run.rglob("events.out.tfevents.*")} == {logs}
    tags = summaries.read_scalars(logs)
    rows = csv_rows(run / "samples" / "losses.csv")
    header = (run / "samples" / "losses.csv").read_text().splitlines()[0].split(",")
    assert len(rows) > 0
    groups = model_kind(model).build(config).metric_groups
    for i, name in enumerate(header[1:], 1):
        tag = summaries.tag_for(name, groups)  # losses/g_loss, wasserstein/critic_iteration ...
        filled = [r.split(",")[i] for r in rows if r.split(",")[i] != ""]
        assert len(tags[tag]) == len(filled) > 0, (name, tag)
    assert not [t for t in tags if t.startswith("epoch/")]
    assert "learning_rate/discriminator" in tags and "learning_rate/generator" in tags

    if model in ("wgan", "wgan-gp"):
        w = csv_rows(run / "samples" / "wasserstein.csv")
        assert len(w) == config["training"]["generator_iterations"] == len(tags["wasserstein/estimate"])
        steps = [s for s, _ in tags["wasserstein/estimate"]]  # at the model's step, like every tag
        assert steps == sorted(set(steps)) and len(steps) == len(w)  # one point per generator iteration
        assert [int(v) for _, v in tags["schedule/generator_iteration"]] == list(range(1, len(w) + 1))
        assert len(tags["schedule/n_critic"]) == len(w)
        assert "losses/generator_loss" in tags and 0.0 not in [v for _, v in tags["losses/generator_loss"]]
    if model == "sgan":
        assert len(tags["metrics/test_accuracy"]) == config["training"]["epochs"]
        assert [v for _, v in tags["Headline/test_accuracy"]] == pytest.approx([results["sgan_test_accuracy"]])
        assert "Headline/baseline_test_accuracy" in tags and "results/train_seconds" in tags
    if model == "dogs":
        assert len(tags["metrics/fid"]) == config["training"]["epochs"]
        assert tags["Headline/fid"] == [(results["step"], pytest.approx(results["fid"]))]  # the final figure
    if model == "pggan":
        assert len(tags["schedule/alpha"]) == len(rows)

    # sample: from the run's own generator, the same seed the same images
    assert main(["sample", str(run), "-n", "3", "-o", str(tmp_path / "a"), "--seed", "4"]) == 0
    assert main(["sample", str(run), "-n", "3", "-o", str(tmp_path / "b"), "--seed", "4"]) == 0
    assert main(["sample", str(run), "-n", "3", "-o", str(tmp_path / "c"), "--seed", "5"]) == 0
    first = [images.read_png(p) for p in sorted((tmp_path / "a").glob("*.png"))]
    assert len(first) == 3
    np.testing.assert_array_equal(first[0], images.read_png(sorted((tmp_path / "b").glob("*.png"))[0]))
    assert not np.array_equal(first[0], images.read_png(sorted((tmp_path / "c").glob("*.png"))[0]))

    # gif: rebuilt from every frame
    gif = run / "gifs" / f"{run.parent.name}-{run.name}.gif"
    gif.unlink()
    assert main(["gif", str(run), "--fps", "2"]) == 0
    assert images.gif_frame_count(gif) == len(list((run / "tmp").glob("step_*.png")))
    assert main(["gif", str(run), "--walk", "--frames", "4", "--seed", "2", "-o", str(tmp_path / "walk.gif")]) == 0
    assert images.gif_frame_count(tmp_path / "walk.gif") == 4

    # fid: a run folder against a folder of real images (random Inception weights: plumbing only)
    capsys.readouterr()
    assert main(["fid", str(run), str(real_folder), "--weights", "none", "-n", "4", "--batch", "4"]) == 0
    value = float(capsys.readouterr().out.split("FID: ")[1].split()[0])
    assert np.isfinite(value) and value >= 0


def test_a_value_reported_only_later_keeps_its_column(tmp_path, caplog):
    """WGAN has no generator loss before its first generator update: those rows leave the cell
    empty (and TensorBoard has no point), and the column is there from the first row on."""
    from ganhelpers.callbacks import read_loss_csv

    config = model_kind("wgan").config("smoke")
    config["training"]["log_every"] = 1
    run = train(config, root=tmp_path, steps=8, verbose=0).run
    table = read_loss_csv(run.samples / "losses.csv")
    assert "malformed" not in caplog.text
    assert list(table["step"]) == list(range(1, 9))
    g = table["generator_loss"]
    assert np.isnan(g[:3]).all() and np.isfinite(g[3:]).all()  # the first G update starts step 4
    tags = summaries.read_scalars(run.logs)
    assert [s for s, _ in tags["losses/generator_loss"]] == list(range(4, 9))


def test_cli_errors_say_what_to_do(tmp_path, capsys):
    with pytest.raises(SystemExit, match="no preset 'huge'"):
        main(["train", "dcgan", "--preset", "huge", "--root", str(tmp_path)])
    with pytest.raises(SystemExit, match="--variant is for the dog experiment"):
        main(["train", "wgan", "--variant", "leaky", "--root", str(tmp_path)])
    with pytest.raises(SystemExit, match="no key 'latent_dimm'"):
        main(["train", "dcgan", "--set", "generator.latent_dimm=3", "--root", str(tmp_path)])
    with pytest.raises(SystemExit, match="is not a run folder"):
        main(["sample", str(tmp_path)])
    with pytest.raises(SystemExit, match="is not a run folder"):
        main(["gif", str(tmp_path)])
    (tmp_path / "e" / "r" / "checkpoints").mkdir(parents=True)
    (tmp_path / "e" / "r" / "config.yaml").write_text("model: wgan-gp\n")
    with pytest.raises(SystemExit, match="holds no frames"):
        main(["gif", str(tmp_path / "e" / "r")])
    with pytest.raises(SystemExit):  # argparse: an unknown model
        main(["train", "cyclegan"])


def test_train_help_lists_every_model_and_its_presets(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    for name in model_names():
        assert f"  {name} " in out
        assert "presets: " + ", ".join(model_kind(name).presets) in out
    assert "variants: dcgan1, dcgan2, leaky" in out


def test_set_parses_yaml_scalars_and_the_run_records_it(tmp_path):
    config = model_kind("dcgan").config("smoke")
    set_value(config, "generator.latent_dim=64")
    set_value(config, "training.d_lr=1e-4")
    set_value(config, "training.label_noise=null")
    assert config["generator"]["latent_dim"] == 64 and config["training"]["d_lr"] == 1e-4
    assert config["training"]["label_noise"] is None
    assert main(["train", "dcgan", "--root", str(tmp_path), "--steps", "2", "--quiet",
                 "--set", "generator.latent_dim=64", "--set", "training.d_lr=1e-4"]) == 0
    saved = load_config(tmp_path / "dcgan_smoke" / "default" / "config.yaml")
    assert saved["generator"]["latent_dim"] == 64 and saved["training"]["d_lr"] == 1e-4


def test_steps_budget_and_resume_in_the_same_run(tmp_path):
    config = model_kind("dcgan").config("smoke")
    first = train(config, root=tmp_path, steps=5, verbose=0)
    assert first.results["step"] == 5 and first.results["resumed_from"] is None
    second = train(config, root=tmp_path, steps=9, verbose=0)
    assert second.results["step"] == 9 and second.results["resumed_from"].endswith("ckpt-5")
    assert second.results["train_seconds"] > first.results["train_seconds"]
    tags = summaries.read_scalars(second.run.logs)
    assert tags["results/images_seen"][-1] == (9, 9 * config["data"]["batch_size"])


def test_a_run_at_its_budget_says_so_and_the_report_times_the_whole_budget(tmp_path, capsys):
    config = model_kind("dcgan").config("smoke")
    first = train(config, root=tmp_path, steps=5, verbose=0)
    assert (first.start_step, first.total_steps, first.config_steps, first.nothing_to_train) == (0, 5, 28, False)
    r, batch = first.results, config["data"]["batch_size"]
    rate = 5 / r["train_seconds"]  # steps per second of fit's wall clock
    assert budget_report(first, preset="smoke").splitlines() == [
        f"measured: 5 steps ({5 * batch:,} images) in {duration(r['train_seconds'])}: {rate:.2f} steps/s, "
        f"{5 * batch / r['train_seconds']:,.0f} images/s on this runtime (the wall clock of training: tracing and "
        "callbacks included)",
        f"the whole budget of preset 'smoke': 28 steps, about {duration(28 / rate)} at this rate "
        f"({duration(23 / rate)} left)"]

    again = train(config, root=tmp_path, steps=5, verbose=0)  # the budget is met: no fit at all
    assert again.history is None and (again.start_step, again.nothing_to_train) == (5, True)
    assert budget_report(again).splitlines()[0] == \
        "nothing to train: step 5 of 5 already done (RUN_NAME='default'); change RUN_NAME or STEPS to train more"
    assert main(["train", "dcgan", "--root", str(tmp_path), "--steps", "5", "--quiet"]) == 0
    assert "nothing to train: step 5 of 5 already done; a new --run or a larger --steps trains more" in \
        capsys.readouterr().out
    assert [duration(s) for s in (45, 192, 9000, 207_360)] == ["45 s", "3.2 min", "2.5 h", "2.4 days"]


def test_the_full_bird_preset_downloads_its_data_through_the_run_loop(tmp_path):
    """train(dcgan_config("full")) fetches CUB-200-2011 on first use (here from a small archive in
    the real layout, by a file:// URL), then trains the bird networks on it."""
    from ganhelpers.dcgan import dcgan_config
    from tests.test_data import bird_archive

    archive = bird_archive(tmp_path)
    config = dcgan_config("full")
    config["data"].update(image_size=32, batch_size=2, url=archive.as_uri(), md5=data.file_hash(archive))
    result = train(config, root=tmp_path / "model_data", data_dir=tmp_path / "data", steps=2, verbose=0)
    assert result.results["step"] == 2 and result.model.generator.output_shape == (None, 32, 32, 3)
    assert (tmp_path / "data" / "CUB_200_2011" / "images.txt").is_file()


def test_wasserstein_loss_is_registered_when_losses_is_imported():
    code = ("import sys; from ganhelpers import losses; "
            "print(losses.get('wasserstein').name, 'ganhelpers.wgan' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.split() == ["wasserstein", "False"]


def test_accuracy_uses_the_threshold_of_the_loss():
    assert losses.get("lsgan").threshold == 0.5
    assert losses.get("bce").threshold == losses.get("hinge").threshold == losses.get("bce_probs").threshold == 0.0
    from ganhelpers.dcgan import build_dcgan, dcgan_config

    model = build_dcgan(dcgan_config("smoke", training={**dcgan_config("smoke")["training"], "loss": "lsgan"}))
    # a discriminator that outputs 0.3 for everything: below LSGAN's 0.5, so "fake" to it
    model.discriminator = keras.Sequential([keras.Input((32, 32, 1)), keras.layers.Flatten(),
                                            keras.layers.Dense(1, kernel_initializer="zeros",
                                                               bias_initializer=keras.initializers.Constant(0.3))])
    model.d_optimizer = keras.optimizers.SGD(0.0)
    logs = model.train_on_batch(np.zeros((8, 32, 32, 1), "float32"), return_dict=True)
    assert logs["d_acc_real"] == 0.0 and logs["d_acc_fake"] == 1.0


# -- the model contract: a conditional GAN and a two-generator model fit without editing the base ----

class ConditionalGAN(GAN):
    """G(z, label) and D(x): two generator inputs; ``sample`` draws labels too."""

    metric_names = ("g_loss",)

    def sample(self, n, seed=0, batch_size=256):
        rng = np.random.default_rng(seed)
        z = rng.standard_normal((n, *self.latent_shape)).astype("float32")
        return self.generator.predict([z, rng.integers(0, 10, (n, 1))], verbose=0)

    def snapshot_images(self):
        labels = tf.constant(np.arange(int(self.fixed_noise.shape[0]))[:, None] % 10)
        return keras.ops.convert_to_numpy(self.generator([tf.convert_to_tensor(self.fixed_noise), labels],
                                                         training=False))

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            fake = self.generator([self.sample_noise(tf.shape(x)[0]), y[:, None]], training=True)
            g_loss = tf.reduce_mean(tf.square(fake - x))
        self._apply(self.g_optimizer, tape, g_loss, self.generator.trainable_variables)
        self.step.assign_add(1)
        return self._report(g_loss=g_loss)


class TwoGenerators(GANBase):
    """CycleGAN-shaped: two generators, no single discriminator; only the base's run state."""

    metric_names = ("cycle_loss",)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.g_ab = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4)])
        self.g_ba = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4)])
        self.opt = keras.optimizers.Adam(1e-2)

    def named_optimizers(self):
        return {"generators": self.opt}

    def optimizer_pairs(self):
        return [(self.opt, self)]

    def checkpoint_items(self):
        return dict(super().checkpoint_items(), g_ab=self.g_ab, g_ba=self.g_ba, opt=self.opt)

    def sample(self, n, seed=0, batch_size=256):
        return np.tanh(self.g_ab.predict(np.random.default_rng(seed).standard_normal((n, 4)), verbose=0))

    def train_step(self, x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.abs(self.g_ba(self.g_ab(x)) - x))
        variables = self.g_ab.trainable_variables + self.g_ba.trainable_variables
        self._apply(self.opt, tape, loss, variables)
        self.step.assign_add(1)
        return self._report(cycle_loss=loss)


def test_a_conditional_gan_and_a_two_generator_model_fit_with_the_standard_callbacks(tmp_path):
    from ganhelpers import callbacks
    from ganhelpers.experiment import open_run

    z = keras.Input((8,))
    label = keras.Input((1,), dtype="int32")
    h = keras.layers.Concatenate()([z, keras.layers.Flatten()(keras.layers.Embedding(10, 4)(label))])
    g = keras.Model([z, label], keras.layers.Reshape((8, 8, 1))(keras.layers.Dense(64, activation="tanh")(h)))
    d = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(1)])
    cgan = ConditionalGAN(g, d, num_fixed=10)
    cgan.compile()
    assert cgan.latent_shape == (8,)
    run = open_run("cgan", "a", root=tmp_path)
    x = np.random.default_rng(0).uniform(-1, 1, (32, 8, 8, 1)).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((x, np.arange(32) % 10)).batch(8)
    cbs = [callbacks.Checkpoint(run), callbacks.FixedNoiseSnapshots(run, every_n_steps=2),
           callbacks.LossHistory(run, every_n_steps=1), summaries.TensorBoard(run, log_every=1)]
    cgan.fit(ds, epochs=1, verbose=0, callbacks=cbs)
    assert int(cgan.step.numpy()) == 4 and len(list(run.tmp.glob("step_*.png"))) == 3
    assert cgan.sample(5, seed=1).shape == (5, 8, 8, 1)
    summaries.close(run)
    assert len(summaries.read_scalars(run.logs)["losses/g_loss"]) == 4

    run2 = open_run("cycle", "a", root=tmp_path)
    model = TwoGenerators()
    model.compile()
    model.fit(np.ones((16, 4), "float32"), batch_size=4, epochs=2, verbose=0,
              callbacks=[callbacks.Checkpoint(run2), summaries.TensorBoard(run2, log_every=1)])
    again = TwoGenerators(seed=1)
    again.compile()
    assert callbacks.Checkpoint(run2).restore_before_fit(again).endswith("ckpt-8")
    np.testing.assert_array_equal(again.g_ab.get_weights()[0], model.g_ab.get_weights()[0])
    summaries.close(run2)
    assert len(summaries.read_scalars(run2.logs)["learning_rate/generators"]) == 8


@pytest.mark.parametrize("model", ["dcgan", "wgan", "wgan-gp", "sgan", "pggan"])
def test_every_model_has_a_cpu_workshop_preset_on_the_offline_digits(model, tmp_path):
    """The workshop presets (timed to learn in minutes by benchmarks/workshop.py) build and train on
    the offline digits; two steps here, the whole budget in the benchmark."""
    kind = model_kind(model)
    assert {"smoke", "cpu"} <= set(kind.presets)
    config = kind.config("cpu")
    assert config["data"]["name"] == "digits" and not config["training"].get("run_eagerly")
    result = train(config, root=tmp_path, steps=2, verbose=0, tensorboard=False)
    assert result.results["step"] == 2
    side = result.model.resolution if model == "pggan" else config["data"]["image_size"]  # PGGAN grows from 4x4
    assert result.model.sample(2).shape[1:] == (side, side, 1)
