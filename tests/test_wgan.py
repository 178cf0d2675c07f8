"""WGAN with weight clipping and WGAN-GP: the critic schedule, clipping after every critic update
(three equivalent forms), the gradient penalty and resume (notebook 02: tests/test_notebooks.py)."""

import csv

import keras
import numpy as np
import pytest
import tensorflow as tf

from ganhelpers import losses, wgan
from ganhelpers.layers import dcgan_discriminator, dcgan_generator

C = 0.01
TINY_SCHEDULE = dict(warmup_generator_iterations=2, warmup_n_critic=4, every=3, n_critic=2)


def tiny_nets(seed=0, batchnorm=True, init_stddev=0.01, size=16):
    """A 16x16x1 generator and critic small enough to train dozens of steps in seconds."""
    keras.utils.set_random_seed(seed)
    g = dcgan_generator(size, 1, latent_dim=4, base_filters=4, init_stddev=init_stddev)
    c = dcgan_discriminator(size, 1, base_filters=4, batchnorm=batchnorm, init_stddev=init_stddev, name="critic")
    return g, c


def tiny_wgan(seed=0, clip_value=C, schedule=TINY_SCHEDULE, critic_fn=None):
    g, c = tiny_nets(seed)
    if critic_fn:
        c = critic_fn(c)
    model = wgan.WGAN(g, c, clip_value=clip_value, schedule=schedule, seed=seed)
    model.compile()
    return model


def batches(n_images=64, batch=8, size=16, seed=0):
    x = np.random.default_rng(seed).uniform(-1, 1, (n_images, size, size, 1)).astype("float32")
    return tf.data.Dataset.from_tensor_slices(x).batch(batch, drop_remainder=True).repeat()


class Recorder(keras.callbacks.Callback):
    """After every step: optimizer update counts, generator iteration, and the critic's variables."""

    def __init__(self):
        super().__init__()
        self.d, self.g, self.gi, self.trainable, self.moving = [], [], [], [], []

    def on_train_batch_end(self, batch, logs=None):
        m = self.model
        self.d.append(int(m.d_optimizer.iterations.numpy()))
        self.g.append(int(m.g_optimizer.iterations.numpy()))
        self.gi.append(int(m.generator_iteration.numpy()))
        self.trainable.append([v.numpy() for v in m.critic.trainable_variables])
        self.moving.append([v.numpy() for v in m.critic.non_trainable_variables])


# -- the loss ------------------------------------------------------------------------------------

def test_wasserstein_loss_is_mean_label_times_score():
    scores = tf.constant([[2.0], [-1.0], [0.5]])
    assert float(wgan.wasserstein_loss(1.0, scores)) == pytest.approx(0.5)
    assert float(wgan.wasserstein_loss(tf.constant([[-1.0], [1.0], [-1.0]]), scores)) == pytest.approx(-3.5 / 3)
    real, fake = tf.constant([[3.0], [1.0]]), tf.constant([[0.5], [-0.5]])
    # critic loss = mean(D(fake)) - mean(D(real)) = 0 - 2; the Wasserstein estimate is +2.
    assert float(wgan.critic_loss(real, fake)) == pytest.approx(-2.0)
    assert float(wgan.generator_loss(fake)) == pytest.approx(0.0)
    pair = losses.get("wasserstein")
    assert float(pair.real(real, None) + pair.fake(fake, None)) == pytest.approx(-2.0)


# -- the schedule --------------------------------------------------------------------------------

def test_critic_iterations_follows_the_authors_schedule():
    got = {g: wgan.critic_iterations(g) for g in range(2001)}
    hundred = set(range(25)) | {500, 1000, 1500, 2000}
    assert {g for g, n in got.items() if n == 100} == hundred
    assert all(n == 5 for g, n in got.items() if g not in hundred)
    assert wgan.critic_iterations(25) == 5 and wgan.critic_iterations(501) == 5
    tf_values = wgan.critic_iterations_tf(tf.range(1101, dtype=tf.int64)).numpy()
    assert tf_values.tolist() == [wgan.critic_iterations(g) for g in range(1101)]
    assert [wgan.critic_iterations(g, **TINY_SCHEDULE) for g in range(8)] == [4, 4, 2, 4, 2, 2, 4, 2]
    assert wgan.critic_iterations(0, 0, 5, 0, 5) == 5  # WGAN-GP: every=0 disables the periodic burst
    assert wgan.steps_for_generator_iterations(3, **TINY_SCHEDULE) == 4 + 4 + 2 + 1
    with pytest.raises(ValueError, match="generator_iteration must be >= 0"):
        wgan.critic_iterations(-1)


def test_train_step_does_n_critic_critic_updates_per_generator_update():
    model, rec = tiny_wgan(), Recorder()
    model.fit(batches(), epochs=1, steps_per_epoch=30, callbacks=[rec], verbose=0, shuffle=False)
    assert rec.d == list(range(1, 31))  # one critic update (one batch) per step
    # Critic updates between consecutive generator updates, counted from the optimizers.
    d_at_g = [0] + [rec.d[i] - 1 for i in range(1, 30) if rec.g[i] > rec.g[i - 1]]  # g runs before d in a step
    counted = np.diff(d_at_g).tolist()
    assert counted == [wgan.critic_iterations(g, **TINY_SCHEDULE) for g in range(len(counted))]
    assert len(counted) == rec.g[-1] == int(model.generator_iteration.numpy()) >= 8
    assert int(model.n_critic.numpy()) == wgan.critic_iterations(rec.g[-1], **TINY_SCHEDULE)


# -- clipping ------------------------------------------------------------------------------------

def test_in_step_clip_bounds_trainables_and_leaves_moving_statistics_alone():
    model, rec = tiny_wgan(), Recorder()
    model.fit(batches(), epochs=1, steps_per_epoch=12, callbacks=[rec], verbose=0, shuffle=False)
    names = [v.path for v in model.critic.trainable_variables]
    assert any("gamma" in n for n in names) and any("beta" in n for n in names)
    for step in rec.trainable:
        assert max(float(np.abs(v).max()) for v in step) <= C
    # gamma starts at ~1 (DCGAN's N(1, 0.02)) and is clipped to c; BatchNorm's moving variance
    # (from 1, momentum 0.9, two calls a step) is a statistic and stays far above c.
    variance = [i for i, v in enumerate(model.critic.non_trainable_variables) if "moving_variance" in v.path]
    assert variance and min(float(rec.moving[-1][i].min()) for i in variance) > 5 * C

    # The same step with and without the clip: identical moving statistics, clipped trainables.
    clipped, free = tiny_wgan(clip_value=C), tiny_wgan(clip_value=None)
    x = next(iter(batches()))
    clipped.train_step(x), free.train_step(x)
    for a, b in zip(clipped.critic.non_trainable_variables, free.critic.non_trainable_variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for a, b in zip(clipped.critic.trainable_variables, free.critic.trainable_variables, strict=True):
        np.testing.assert_allclose(a.numpy(), np.clip(b.numpy(), -C, C), atol=1e-7)
    assert max(float(np.abs(v.numpy()).max()) for v in free.critic.trainable_variables) > 0.5


def test_weightclip_callback_clips_trainables_only():
    model = tiny_wgan(clip_value=None)
    model.train_step(next(iter(batches())))
    moving = [v.numpy() for v in model.critic.non_trainable_variables]
    before = [v.numpy() for v in model.critic.trainable_variables]
    cb = wgan.WeightClip(C)
    cb.set_model(model)
    cb.on_train_begin()
    for v, b in zip(model.critic.trainable_variables, before, strict=True):
        np.testing.assert_array_equal(v.numpy(), np.clip(b, -C, C))
    for v, m in zip(model.critic.non_trainable_variables, moving, strict=True):
        np.testing.assert_array_equal(v.numpy(), m)
    with pytest.raises(ValueError, match="clip_value must be > 0"):
        wgan.WeightClip(0.0)


def test_callback_constraint_and_in_step_clip_train_identically():
    """WGAN(clip_value=c), WeightClip(c) and ClipConstraint(c) clip after every critic update, before
    the generator reads the critic: the three runs give the same weights."""
    in_step, rec_a = tiny_wgan(clip_value=C), Recorder()
    callback, rec_b = tiny_wgan(clip_value=None), Recorder()
    constraint, rec_c = tiny_wgan(clip_value=None, critic_fn=lambda c: wgan.constrain_critic(c, C)), Recorder()
    for model, cbs in ((in_step, [rec_a]), (callback, [wgan.WeightClip(C), rec_b]), (constraint, [rec_c])):
        model.fit(batches(), epochs=1, steps_per_epoch=11, callbacks=cbs, verbose=0, shuffle=False)
    assert rec_a.g == rec_b.g == rec_c.g and rec_a.g[-1] == 3
    for other in (callback, constraint):
        for net in ("critic", "generator"):
            for a, b in zip(getattr(in_step, net).weights, getattr(other, net).weights, strict=True):
                np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6, err_msg=f"{net} {a.path}")
    for step in rec_c.trainable:
        assert max(float(np.abs(v).max()) for v in step) <= C


def test_init_stddev_decides_how_much_clipping_moves_at_step_0():
    def fraction(stddev):
        keras.utils.set_random_seed(0)
        return wgan.clipped_fraction(dcgan_discriminator(32, 1, base_filters=16, init_stddev=stddev), C)

    # |w| > c has probability 2 (1 - Phi(c / s)): 0.317 for s = 0.01, 0.617 for s = 0.02.
    assert 0.29 < fraction(0.01) < 0.34
    assert 0.59 < fraction(0.02) < 0.65


def test_without_biases_and_batchnorm_gamma():
    _, c = tiny_nets()
    assert any("bias" in v.path for v in c.weights)
    nb = wgan.without_biases(c)
    assert not any("bias" in v.path for v in nb.weights) and nb.output_shape == (None, 1)
    wgan.set_batchnorm_gamma(nb, 0.005)
    gammas = [v.numpy() for v in nb.weights if "gamma" in v.path]
    assert gammas and all(np.all(g == np.float32(0.005)) for g in gammas)


# -- WGAN-GP -------------------------------------------------------------------------------------

def test_gradient_penalty_matches_closed_form():
    rng = np.random.default_rng(1)
    real = tf.constant(rng.normal(size=(4, 3, 3, 2)), tf.float32)
    fake = tf.constant(rng.normal(size=(4, 3, 3, 2)), tf.float32)
    eps = tf.constant(rng.uniform(size=(4, 1, 1, 1)), tf.float32)
    x_hat = (eps * real + (1 - eps) * fake).numpy().reshape(4, -1)

    # D(x) = 0.5 ||x||^2 has gradient x: the penalty is mean((||x_hat|| - 1)^2).
    def quadratic(x, training=False):
        return 0.5 * tf.reduce_sum(tf.square(x), axis=[1, 2, 3])[:, None]

    expected = np.mean((np.linalg.norm(x_hat, axis=1) - 1.0) ** 2)
    assert float(wgan.gradient_penalty(quadratic, real, fake, eps)) == pytest.approx(expected, rel=1e-5)

    # A linear critic D(x) = <w, x> has gradient w everywhere: the penalty is (||w|| - 1)^2.
    w = tf.constant(rng.normal(size=(1, 3, 3, 2)), tf.float32)
    linear = lambda x, training=False: tf.reduce_sum(w * x, axis=[1, 2, 3])[:, None]  # noqa: E731
    expected = (np.linalg.norm(w.numpy()) - 1.0) ** 2
    assert float(wgan.gradient_penalty(linear, real, fake, eps)) == pytest.approx(expected, rel=1e-5)


def test_wgan_gp_trains_with_five_critic_iterations_and_no_batchnorm():
    g, c = tiny_nets(batchnorm=True)
    with pytest.raises(ValueError, match="must not use BatchNorm"):
        wgan.WGANGP(g, c)
    g, c = tiny_nets(batchnorm=False)
    model, rec = wgan.WGANGP(g, c), Recorder()
    model.compile()
    assert model.clip_value is None and float(model.d_optimizer.beta_1) == 0.0
    assert float(model.d_optimizer.beta_2) == pytest.approx(0.9)
    history = model.fit(batches(), epochs=1, steps_per_epoch=16, callbacks=[rec], verbose=0, shuffle=False)
    assert rec.g[-1] == 3 and [rec.d[i] for i in range(1, 16) if rec.g[i] > rec.g[i - 1]] == [6, 11, 16]
    assert history.history["gradient_penalty"][-1] > 0


# -- config, run folder, resume ------------------------------------------------------------------

def test_wgan_config_presets():
    full = wgan.wgan_config("full")
    assert full["data"] == {"name": "cub200", "image_size": 64, "channels": 3, "batch_size": 64, "crop": "bbox"}
    assert full["critic"]["init_stddev"] == full["generator"]["init_stddev"] == 0.01
    assert full["critic"]["use_bias"] is False and not any(
        "bias" in v.path for v in wgan.build_wgan(wgan.wgan_config("smoke"), "clip").critic.weights)
    assert full["clip"]["learning_rate"] == 5e-5 and full["clip"]["schedule"] == wgan.SCHEDULE
    assert wgan.wgan_config("smoke", seed=3)["seed"] == 3
    with pytest.raises(ValueError, match="unknown WGAN preset"):
        wgan.wgan_config("nope")
    with pytest.raises(ValueError, match="variant must be"):
        wgan.build_wgan(wgan.wgan_config("smoke"), "hinge")


def test_resume_continues_the_schedule(model_data):
    from ganhelpers.run import train

    config = wgan.wgan_config("smoke")
    schedule = config["clip"]["schedule"]
    config["training"]["generator_iterations"] = 3
    model, run, results = train(config, root=model_data, verbose=0, tensorboard=False)
    assert int(model.generator_iteration.numpy()) == 3 == results["generator_iterations"]
    assert int(model.step.numpy()) == wgan.steps_for_generator_iterations(3, **schedule) == 9

    rec = Recorder()
    config["training"]["generator_iterations"] = 6  # a larger budget on resume
    model, run, _ = train(config, root=model_data, verbose=0, tensorboard=False, callbacks=[rec])
    # The restored counters: the first step of the second run is critic iteration 2 of generator
    # iteration 3 (n_critic 2), so generator update 4 runs at the start of its second step.
    assert rec.gi[0] == 3 and rec.gi[1] == 4
    assert int(model.step.numpy()) == wgan.steps_for_generator_iterations(6, **schedule)
    assert int(model.g_optimizer.iterations.numpy()) == 6
    assert int(model.d_optimizer.iterations.numpy()) == int(model.step.numpy())
    with open(run.samples / "wasserstein.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["generator_iteration"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [int(r["n_critic"]) for r in rows] == [wgan.critic_iterations(g, **schedule) for g in range(6)]
    # Asking again for what is done trains nothing.
    assert train(config, root=model_data, verbose=0, tensorboard=False).history is None


def test_wasserstein_csv_keeps_the_newest_row_of_each_generator_iteration(tmp_path):
    path = tmp_path / "wasserstein.csv"
    path.write_text("generator_iteration,wasserstein,critic_loss,generator_loss,n_critic\n"
                    "1,0.5,-0.5,0.1,100\n2,0.7,-0.7,0.2,100\n2,0.6,-0.6,0.2,100\n3,0.4,-0.4,0.3,5\n")
    rows = wgan.read_wasserstein_csv(path)
    assert rows["generator_iteration"].tolist() == [1, 2, 3] and rows["wasserstein"].tolist() == [0.5, 0.6, 0.4]


def test_median_filter():
    np.testing.assert_array_equal(wgan.median_filter([0, 10, 0, 0, 5, 0], 3), [5, 0, 0, 0, 0, 2.5])


def overlapping_tick_labels(fig) -> list[tuple[str, str]]:
    """Pairs of drawn tick labels of ``fig`` (any axes, x or y; ticks outside the view are not drawn)
    whose boxes overlap."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    renderer = fig.canvas.get_renderer()

    def drawn(labels, coordinate, limits):
        lo, hi = sorted(limits)
        return [lb for lb in labels if lb.get_visible() and lb.get_text() and lo <= lb.get_position()[coordinate] <= hi]

    boxes = [(label.get_text(), label.get_window_extent(renderer)) for ax in fig.axes
             for label in drawn(ax.get_xticklabels(), 0, ax.get_xlim()) + drawn(ax.get_yticklabels(), 1, ax.get_ylim())]
    return [(a, b) for i, (a, box_a) in enumerate(boxes) for b, box_b in boxes[i + 1:] if box_a.overlaps(box_b)]


def test_critic_weight_histograms_have_no_overlapping_tick_labels():
    rng = np.random.default_rng(0)
    weights = {"clip: critic kernel weights after training": np.clip(rng.normal(0, 0.01, 100_000), -0.01, 0.01),
               "gp: critic kernel weights after training": rng.normal(0, 0.05, 100_000)}
    fig = wgan.weight_histograms(weights)
    assert overlapping_tick_labels(fig) == []
    assert [len(ax.patches) for ax in fig.axes] == [100, 100] and fig.axes[0].get_yscale() == "log"
    # matplotlib's default ticks on the clipped critic's +-0.01 box (notebook 02 before): labels collide
    from matplotlib.figure import Figure

    default = Figure(figsize=(12, 3))
    for ax, w in zip(default.subplots(1, 2), weights.values(), strict=True):
        ax.hist(w, bins=100)
    assert overlapping_tick_labels(default) != []


def test_kernel_weights_are_the_kernels_only():
    critic = dcgan_discriminator(32, 1, base_filters=4)
    kernels = [v for v in critic.trainable_variables if "kernel" in v.path]
    assert len(wgan.kernel_weights(critic)) == sum(int(np.prod(v.shape)) for v in kernels) < critic.count_params()
