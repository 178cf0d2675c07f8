"""Semi-supervised GAN: the logit trick, labelled subsets, the digits experiment (notebook 03:
tests/test_notebooks.py)."""

import fcntl
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from ganhelpers import sgan

RNG = np.random.default_rng(0)


# -- the logit trick ------------------------------------------------------------------------------

def test_fake_class_logit_is_zero_and_d_matches_z_over_z_plus_one():
    logits = RNG.normal(0, 3, (64, 10)).astype(np.float32)
    logits[0] = 40.0   # Z = 10 e^40: a naive float32 exp(l).sum() would overflow; ours must not
    logits[1] = -40.0  # Z tiny: D(x) ~ 10 e^-40
    full = sgan.k_plus_one_logits(logits).numpy()
    assert full.shape == (64, 11)
    np.testing.assert_array_equal(full[:, 10], 0.0)
    np.testing.assert_array_equal(full[:, :10], logits)

    z = np.exp(logits.astype(np.float64)).sum(axis=1)
    expected = z / (z + 1.0)
    d = sgan.real_probability(logits).numpy()
    assert np.all(np.isfinite(d))
    np.testing.assert_allclose(d, expected, rtol=1e-5, atol=0)
    # ... and D(x) is 1 - the fake class's probability in the K+1 softmax.
    p_fake = tf.nn.softmax(full).numpy()[:, 10]
    np.testing.assert_allclose(d, 1.0 - p_fake, rtol=1e-5, atol=1e-7)


def test_unsupervised_loss_is_the_gan_loss_on_z_over_z_plus_one():
    real, fake = RNG.normal(0, 2, (32, 10)), RNG.normal(-1, 2, (32, 10))
    d = lambda lg: np.exp(lg).sum(1) / (np.exp(lg).sum(1) + 1.0)
    expected = -np.mean(np.log(d(real))) - np.mean(np.log(1.0 - d(fake)))
    got = sgan.unsupervised_loss_k_plus_one(real.astype(np.float32), fake.astype(np.float32)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_discriminator_d_of_x_from_its_own_logits():
    disc = sgan.build_discriminator((8, 8, 1), 10, units=(16, 8))
    x = RNG.uniform(-1, 1, (5, 8, 8, 1)).astype(np.float32)
    out = disc(x, training=False)
    assert set(out) == {"class_logits", "features"}
    assert out["class_logits"].shape == (5, 10) and out["features"].shape == (5, 8)
    model = sgan.SGAN(sgan.mlp_generator(4, (8, 8, 1), (8,)), disc)
    lg = out["class_logits"].numpy().astype(np.float64)
    z = np.exp(lg).sum(1)
    np.testing.assert_allclose(tf.sigmoid(model.real_logit(out)).numpy(), z / (z + 1), rtol=1e-5)


def test_two_head_needs_a_real_logit_output():
    disc = sgan.build_discriminator((8, 8, 1), 10, units=(8,))
    with pytest.raises(ValueError, match="real_logit"):
        sgan.SGAN(sgan.mlp_generator(4, (8, 8, 1), (8,)), disc, formulation="two_head")


# -- weight normalisation and D's weight average (the improved-gan recipe) ------------------------

def test_weight_norm_dense_is_a_scale_times_a_unit_direction_and_its_init_standardises():
    x = RNG.normal(2.0, 3.0, (256, 6)).astype(np.float32)
    layer = sgan.WeightNormDense(4, train_scale=False)
    layer.build((None, 6))
    v, g = layer.v.numpy(), layer.g.numpy()
    w = v * g / np.sqrt((v ** 2).sum(0) + 1e-6)
    np.testing.assert_allclose(layer(x).numpy(), x @ w + layer.b.numpy(), rtol=1e-5, atol=1e-5)
    layer.initialize_from(x)  # the code's init pass: unit-variance, zero-mean pre-activations
    pre = layer(x).numpy()
    np.testing.assert_allclose(pre.mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(pre.std(0), 1.0, rtol=1e-3)
    assert [t.name for t in layer.trainable_weights] == ["v", "b"]  # the scale stays where the init put it
    head = sgan.WeightNormDense(3, train_scale=True)
    head.build((None, 6))
    assert sorted(t.name for t in head.trainable_weights) == ["b", "g", "v"]


def _tiny_weight_norm_sgan(average_decay=None):
    disc = sgan.build_discriminator((8, 8, 1), 10, units=(32, 16), activation="relu", weight_norm=True)
    model = sgan.SGAN(sgan.mlp_generator(8, (8, 8, 1), (32,), weight_norm=True), disc, unsup_weight=0.5,
                      average_decay=average_decay)
    model.compile(d_optimizer=keras.optimizers.Adam(3e-3, beta_1=0.5, epsilon=1e-4),
                  g_optimizer=keras.optimizers.Adam(3e-3, beta_1=0.5, epsilon=1e-4))
    return model


def test_d_hidden_units_keep_their_length_while_training():
    """The collapse on MNIST (D's features growing without bound, feature matching at 1,054) cannot
    happen the same way with the code's frozen scales: every hidden unit's weight vector keeps the
    length the data-dependent init gave it, whatever the game does to its direction."""
    digits = sgan.digits_split(8, 500)
    model = _tiny_weight_norm_sgan()
    x = sgan._as_float(digits["x_train"][:500])
    assert sgan.initialize_weight_norm(model.discriminator, x) == 3  # dense0, dense1 and the class head
    hidden = [model.discriminator.get_layer(n) for n in ("dense0", "dense1")]
    lengths = [np.linalg.norm(h.kernel().numpy(), axis=0) for h in hidden]
    directions = [h.v.numpy().copy() for h in hidden]
    ds = iter(sgan.sgan_dataset(digits["x_train"], digits["x_train"][:50], digits["y_train"][:50], 64, 50, repeat=True))
    step = tf.function(model.train_step)  # traced once, as fit does
    for _ in range(30):
        logs = step(next(ds))
    for h, n, v in zip(hidden, lengths, directions, strict=True):
        np.testing.assert_allclose(np.linalg.norm(h.kernel().numpy(), axis=0), n, rtol=1e-4)
        assert np.abs(h.v.numpy() - v).max() > 1e-3  # the directions did train
    assert all(np.isfinite(float(logs[k])) for k in ("g_loss", "d_loss_unsup", "d_loss_sup"))


def test_averaged_weights_are_the_debiased_moving_average_of_d():
    digits = sgan.digits_split(8, 500)
    model = _tiny_weight_norm_sgan(average_decay=0.5)
    sgan.initialize_weight_norm(model.discriminator, sgan._as_float(digits["x_train"][:500]))
    ds = iter(sgan.sgan_dataset(digits["x_train"], digits["x_train"][:50], digits["y_train"][:50], 64, 50, repeat=True))
    after = []
    for _ in range(2):
        model.train_step(next(ds))
        after.append([w.numpy().copy() for w in model.discriminator.weights])
    # a2 = 0.5 * 0.5 * w1 + 0.5 * w2, debiased by 1 - 0.5^2
    for avg, w1, w2 in zip(model.averaged_weights(), *after, strict=True):
        np.testing.assert_allclose(avg, (0.25 * w1 + 0.5 * w2) / 0.75, rtol=1e-5, atol=1e-6)
    x = sgan._as_float(digits["x_test"][:20])
    own = model.classifier(x).numpy()
    with model.use_averaged_weights() as averaged:
        assert not np.allclose(averaged(x).numpy(), own)
    np.testing.assert_array_equal(model.classifier(x).numpy(), own)  # D's own weights are back
    assert "d_average" in model.checkpoint_items()  # a resumed run keeps its average
    with pytest.raises(ValueError, match="average_decay"):
        sgan.SGAN(model.generator, model.discriminator, average_decay=1.0)


# -- labelled subsets -----------------------------------------------------------------------------

def test_labelled_subset_is_balanced_seeded_and_disjoint():
    y = np.repeat(np.arange(10), 30)[RNG.permutation(300)]
    lab, unl = sgan.select_labelled(y, per_class=5, seed=3)
    assert np.bincount(y[lab], minlength=10).tolist() == [5] * 10
    assert len(np.intersect1d(lab, unl)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([lab, unl])), np.arange(300))
    again, _ = sgan.select_labelled(y, per_class=5, seed=3)
    other, _ = sgan.select_labelled(y, per_class=5, seed=4)
    np.testing.assert_array_equal(lab, again)
    assert not np.array_equal(lab, other)
    # Salimans et al.'s code keeps the labelled images in the unlabelled set too.
    lab2, unl2 = sgan.select_labelled(y, per_class=5, seed=3, disjoint=False)
    np.testing.assert_array_equal(lab2, lab)
    np.testing.assert_array_equal(unl2, np.arange(300))


def test_half_of_the_training_set_and_all_labels():
    y = np.repeat(np.arange(4), [10, 20, 30, 40])
    lab, unl = sgan.select_labelled(y, fraction=0.5, seed=0)
    assert np.bincount(y[lab]).tolist() == [5, 10, 15, 20]
    assert len(np.intersect1d(lab, unl)) == 0 and len(lab) + len(unl) == 100
    everything, unl_all = sgan.select_labelled(y, per_class=None)
    np.testing.assert_array_equal(everything, np.arange(100))
    np.testing.assert_array_equal(unl_all, np.arange(100))
    with pytest.raises(ValueError, match="only 10 images"):
        sgan.select_labelled(y, per_class=11)


def test_digits_split_is_fixed_and_stratified():
    a, b = sgan.digits_split(8, 500), sgan.digits_split(8, 500)
    assert a["x_train"].shape == (1297, 8, 8, 1) and a["x_test"].shape == (500, 8, 8, 1)
    np.testing.assert_array_equal(a["y_test"], b["y_test"])
    # Stratified: every class holds its share of the 500 test images, to within one image.
    share = np.bincount(np.concatenate([a["y_train"], a["y_test"]])) * 500 / 1797
    assert np.all(np.abs(np.bincount(a["y_test"]) - share) <= 1)


def test_dataset_yields_unlabelled_and_labelled_batches():
    x = RNG.integers(0, 256, (40, 8, 8, 1), dtype=np.uint8)
    ds = sgan.sgan_dataset(x[:30], x[30:], np.arange(10), batch_size=8, labelled_batch_size=16)
    x_unl, (x_lab, y_lab) = next(iter(ds))
    assert x_unl.shape == (8, 8, 8, 1) and x_lab.shape == (16, 8, 8, 1) and y_lab.shape == (16,)
    assert -1.0 <= float(tf.reduce_min(x_lab)) and float(tf.reduce_max(x_lab)) <= 1.0
    assert len(list(ds)) == 30 // 8  # the unlabelled images set the epoch


@pytest.mark.parametrize("formulation,generator_loss", [("two_head", "standard"), ("k_plus_one", "standard")])
def test_other_formulations_train(formulation, generator_loss, model_data):
    config = sgan.sgan_config("smoke", sgan={"formulation": formulation, "generator_loss": generator_loss},
                              training={**sgan.sgan_config("smoke")["training"], "epochs": 1})
    data = sgan.digits_split(8, 500)
    r = sgan.run_experiment(config, data=data, root=model_data, steps_per_epoch=5, tensorboard=False)
    assert r["formulation"] == formulation and r["num_labels"] == 50
    assert int(r["model"].step.numpy()) == 5
    assert 0.0 <= r["sgan_test_accuracy"] <= 1.0


def test_full_preset_trains_on_an_mnist_npz(tmp_path, model_data):
    """The MNIST preset's networks and loader on a small mnist.npz in the real format (file:// URL)."""
    from ganhelpers.data import file_hash

    digits = sgan.digits_split(28, 500)
    arrays = {"x_train": digits["x_train"][:300, ..., 0], "y_train": digits["y_train"][:300].astype(np.uint8),
              "x_test": digits["x_test"][:100, ..., 0], "y_test": digits["y_test"][:100].astype(np.uint8)}
    np.savez(tmp_path / "mnist.npz", **arrays)
    config = sgan.sgan_config("full")
    config["data"].update(url=(tmp_path / "mnist.npz").as_uri(), md5=file_hash(tmp_path / "mnist.npz"))
    config["labels"]["per_class"] = 2
    config["training"]["epochs"] = config["baseline"]["epochs"] = 1
    data = sgan.load_data(config, data_dir=tmp_path / "data")
    assert data["x_train"].shape == (300, 28, 28, 1) and data["x_test"].shape == (100, 28, 28, 1)
    r = sgan.run_experiment(config, data=data, root=model_data, steps_per_epoch=2, tensorboard=False)
    assert r["num_labels"] == 20 and r["dataset"] == "mnist" and int(r["model"].step.numpy()) == 2
    assert r["model"].discriminator.output["features"].shape[-1] == 250  # Salimans et al.'s last hidden layer


def test_rerunning_a_run_resumes_it(model_data):
    data = sgan.digits_split(8, 500)
    config = sgan.sgan_config("smoke")
    config["training"]["epochs"] = 2
    first = sgan.run_experiment(config, data=data, root=model_data, steps_per_epoch=3, tensorboard=False)
    assert int(first["model"].step.numpy()) == 6 and len(first["test_accuracy_per_epoch"]) == 2
    config["training"]["epochs"] = 3
    second = sgan.run_experiment(config, data=data, root=model_data, steps_per_epoch=3, tensorboard=False)
    assert int(second["model"].step.numpy()) == 9  # restored at step 6, then one more epoch
    assert second["test_accuracy_per_epoch"][:2] == first["test_accuracy_per_epoch"]
    assert len(second["test_accuracy_per_epoch"]) == 3


def test_the_label_sweep_reports_the_main_run_at_its_labels(model_data):
    """At the main run's labels the sweep's row is the main run (one figure, not a second shorter run);
    the other label counts are runs of their own, of the sweep's epochs."""
    data = sgan.digits_split(8, 500)
    config = sgan.sgan_config("smoke")
    config["training"]["epochs"] = 2
    main = sgan.run_experiment(config, data=data, root=model_data, run_name="main", steps_per_epoch=3,
                               tensorboard=False)
    rows = sgan.label_sweep(config, [1, 5], data=data, root=model_data, run_prefix="main_sweep", epochs=1,
                            main=main, steps_per_epoch=3, tensorboard=False)
    assert [(r["num_labels"], r["epochs"], r["run"], r["main_run"]) for r in rows] == \
        [(10, 1, "main_sweep_1", False), (50, 2, "main", True)]
    assert (rows[1]["sgan_test_accuracy"], rows[1]["baseline_test_accuracy"]) == \
        (main["sgan_test_accuracy"], main["baseline_test_accuracy"])
    assert not (model_data / config["experiment"] / "main_sweep_5").exists()  # not trained a second time


# -- the offline experiment -----------------------------------------------------------------------

@pytest.mark.slow
def test_digits_sgan_beats_its_baseline_over_three_seeds(model_data):
    """5 labels per class on the digits: the SGAN's classifier must beat the same body trained on
    the same 50 labels alone, averaged over seeds 0, 1, 2."""
    config = sgan.sgan_config("digits")
    summary = sgan.run_seeds(config, seeds=(0, 1, 2), root=model_data, run_name="seeds", tensorboard=False)
    saved = json.loads((model_data / "sgan_digits" / "seeds" / "results.json").read_text())
    assert saved["num_labels"] == 50 and saved["seeds"] == [0, 1, 2]
    # the summary run is not held after writing (a process per seed writes it in turn): a new open
    # file description can take its flock
    fd = os.open(model_data / "sgan_digits" / "seeds" / ".lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)
    assert saved["sgan_test_accuracy_mean"] == pytest.approx(np.mean(saved["sgan_test_accuracy"]))
    per_seed = json.loads((model_data / "sgan_digits" / "seeds_seed1" / "results.json").read_text())
    assert per_seed["seed"] == 1 and per_seed["num_labels"] == 50
    assert len(per_seed["test_accuracy_per_epoch"]) == config["training"]["epochs"]
    print(f"\nSGAN {summary['sgan_test_accuracy']} mean {summary['sgan_test_accuracy_mean']:.4f}; "
          f"baseline {summary['baseline_test_accuracy']} mean {summary['baseline_test_accuracy_mean']:.4f}")
    assert summary["sgan_test_accuracy_mean"] > summary["baseline_test_accuracy_mean"]


# -- the notebook ---------------------------------------------------------------------------------


def tensorboard_scalars(log_dir, tag):
    """Values of one scalar tag in every event file under ``log_dir``, in step order."""
    from tensorflow.core.util import event_pb2

    values = []
    for path in sorted(log_dir.rglob("events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(str(path)):
            event = event_pb2.Event.FromString(record.numpy())
            for v in event.summary.value:
                if v.tag == tag:
                    values.append((event.step, float(tf.make_ndarray(v.tensor)) if v.HasField("tensor")
                                   else v.simple_value))
    return [v for _, v in sorted(values)]


def test_the_reproduction_script_reads_whole_epochs_and_names_its_data_absolutely(tmp_path):
    """benchmarks/sgan_mnist.py --curve: the feature-matching loss per epoch is the mean of each whole
    epoch's logged rows (a partial last epoch is left out), and the figure is written."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "sgan_mnist_bench", Path(__file__).resolve().parents[1] / "benchmarks" / "sgan_mnist.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    run = tmp_path / "validation_seed0"
    (run / "samples").mkdir(parents=True)
    rows = ["step,d_loss_sup,g_loss"] + [f"{s},0.1,{1.0 if s <= 50 else 3.0 if s <= 100 else 9.0}"
                                         for s in range(10, 131, 10)]
    (run / "samples" / "losses.csv").write_text("\n".join(rows) + "\n")
    assert bench.epoch_means(run / "samples" / "losses.csv", "g_loss", 50) == [1.0, 3.0]  # steps 101-130: partial
    (run / "results.json").write_text(json.dumps({"validation_accuracy_per_epoch": [0.9, 0.95],
                                                  "validation_accuracy_averaged_per_epoch": [0.88, 0.94]}))
    bench.plot_curve(run, "validation", 50, str(tmp_path / "curve.png"))
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # --data-dir becomes an absolute data.path: resuming from another folder names the same file
    config = bench.config_for(5, 0, "../datasets", None)
    assert config["data"]["path"] == str((Path.cwd().parent / "datasets" / "mnist.npz").resolve())
    assert config["training"]["epochs"] == 5 and config["sgan"]["evaluate_each_epoch"] is False
