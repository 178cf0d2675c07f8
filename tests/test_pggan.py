"""Progressive GAN (Karras et al. 2018): the custom layers, the fade-in, growth and resume."""

import math

import numpy as np
import pytest
import tensorflow as tf

from ganhelpers.experiment import open_run
from ganhelpers.pggan import (
    FadeIn,
    ProgressiveGAN,
    build_pggan,
    fmaps,
    load_images,
    pggan_config,
    phase_name,
    restore_progress,
)
from ganhelpers.pggan_layers import (
    EqualizedConv2D,
    EqualizedDense,
    MinibatchStdDev,
    PixelNorm,
    downsample_images,
    to_rgb,
    upsample_images,
)
from ganhelpers.run import train


def small_model(resolution=8, channels=3):
    model = ProgressiveGAN(resolution, channels, width=1 / 32, seed=3, num_fixed=8)
    model.compile()
    return model


def test_feature_maps_follow_table_2():
    assert [fmaps(r) for r in (4, 8, 16, 32, 64, 128, 256, 512, 1024)] == [512] * 4 + [256, 128, 64, 32, 16]
    assert fmaps(4, 1 / 32) == 16 and fmaps(128, 0.25) == 32


def test_pixel_norm_gives_unit_mean_square_at_every_pixel():
    x = tf.random.stateless_normal((3, 5, 5, 7), seed=(1, 2)) * 10.0 + 3.0
    y = PixelNorm()(x).numpy()
    np.testing.assert_allclose(np.mean(y ** 2, axis=-1), 1.0, rtol=1e-5)
    z = PixelNorm()(tf.constant([[3.0, 4.0]])).numpy()  # also on (N, C) latents
    np.testing.assert_allclose(z, [[3.0, 4.0]] / np.sqrt(12.5), rtol=1e-6)


def test_minibatch_stddev_channel_matches_numpy():
    x = tf.random.stateless_normal((8, 3, 3, 5), seed=(4, 5)).numpy()
    y = MinibatchStdDev(group_size=4)(x).numpy()
    assert y.shape == (8, 3, 3, 6)
    np.testing.assert_array_equal(y[..., :5], x)
    groups = x.reshape(4, 2, 3, 3, 5)                       # image i is in group i % 2
    std = np.sqrt(groups.var(axis=0) + 1e-8).mean(axis=(1, 2, 3))
    expected = np.tile(std, 4)                              # images 0, 2, 4, 6 -> std[0]
    for i in range(8):
        np.testing.assert_allclose(y[i, ..., 5], expected[i], rtol=1e-5)
    assert abs(expected[0] - expected[1]) > 1e-3            # the two groups really differ


def test_equalized_layers_scale_their_kernel_by_the_he_constant():
    dense = EqualizedDense(4)
    x = tf.random.stateless_normal((2, 6), seed=(0, 1))
    y = dense(x).numpy()
    c = math.sqrt(2 / 6)
    np.testing.assert_allclose(dense.effective_kernel().numpy(), c * dense.kernel.numpy(), rtol=1e-6)
    np.testing.assert_allclose(y, x.numpy() @ (c * dense.kernel.numpy()), rtol=1e-5, atol=1e-6)
    assert abs(np.std(dense.kernel.numpy()) - 1.0) < 0.5    # stored weights are N(0, 1)

    conv = EqualizedConv2D(3, 3)
    conv.build((None, 5, 5, 2))
    np.testing.assert_allclose(conv.effective_kernel().numpy(), math.sqrt(2 / (3 * 3 * 2)) * conv.kernel.numpy(),
                               rtol=1e-6)
    rgb = to_rgb(3)
    rgb.build((None, 4, 4, 8))
    assert rgb.scale == pytest.approx(1 / math.sqrt(8))     # toRGB: gain 1 (the authors' code)


def test_generator_fade_in_is_old_path_at_alpha_0_and_new_path_at_alpha_1():
    model = small_model()
    z = model.sample_noise(4)
    g_old, _ = model.wire(0, False)
    g_new, _ = model.wire(1, False)
    g_fade, _ = model.wire(1, True)
    model.alpha.assign(0.0)
    np.testing.assert_allclose(g_fade(z).numpy(), upsample_images(g_old(z)).numpy(), rtol=1e-6, atol=1e-6)
    model.alpha.assign(1.0)
    np.testing.assert_allclose(g_fade(z).numpy(), g_new(z).numpy(), rtol=1e-6, atol=1e-6)
    model.alpha.assign(0.25)
    np.testing.assert_allclose(g_fade(z).numpy(), 0.75 * upsample_images(g_old(z)).numpy() + 0.25 * g_new(z).numpy(),
                               rtol=1e-5, atol=1e-5)
    assert np.abs(g_new(z).numpy() - upsample_images(g_old(z)).numpy()).max() > 1e-3  # the paths differ


def test_discriminator_fade_in_is_downsampled_path_at_alpha_0_and_new_block_at_alpha_1():
    model = small_model()
    x = tf.random.stateless_uniform((8, 8, 8, 3), seed=(7, 8), minval=-1, maxval=1)
    _, d_old = model.wire(0, False)
    _, d_new = model.wire(1, False)
    _, d_fade = model.wire(1, True)
    model.alpha.assign(0.0)
    np.testing.assert_allclose(d_fade(x).numpy(), d_old(downsample_images(x)).numpy(), rtol=1e-5, atol=1e-5)
    model.alpha.assign(1.0)
    np.testing.assert_allclose(d_fade(x).numpy(), d_new(x).numpy(), rtol=1e-5, atol=1e-5)
    assert np.abs(d_new(x).numpy() - d_old(downsample_images(x)).numpy()).max() > 1e-3
    # the reals are blended the same way during a fade
    model.start_phase(1)
    model.alpha.assign(0.0)
    np.testing.assert_allclose(model.blend_reals(x).numpy(), upsample_images(downsample_images(x)).numpy(), atol=1e-6)


def test_growing_keeps_every_existing_weight():
    model = small_model()
    model.start_phase(0)
    data = tf.random.stateless_uniform((8, 4, 4, 3), seed=(1, 1), minval=-1, maxval=1)
    for _ in range(2):
        model.train_step(data)  # weights now differ from their initial values
    old = {id(v): (v, v.numpy().copy()) for v in model.generator.weights + model.discriminator.weights}
    model.start_phase(1)        # grow to 8x8, fade-in
    new_ids = {id(v) for v in model.generator.weights + model.discriminator.weights}
    assert set(old) < new_ids   # every old weight is part of the grown networks, and some are new
    for v, before in old.values():
        np.testing.assert_array_equal(v.numpy(), before)
    assert model.alpha.numpy() == 0.0 and model.generator.output_shape == (None, 8, 8, 3)


def test_fade_in_callback_is_linear_in_images_shown():
    fade = FadeIn(fade_images=200)
    assert [fade.alpha_at(n) for n in (0, 50, 200, 400)] == [0.0, 0.25, 1.0, 1.0]


class Interrupted(Exception):
    pass


class InterruptAt(tf.keras.callbacks.Callback):
    def __init__(self, step):
        super().__init__()
        self.at = step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.step.numpy()) == self.at:
            raise Interrupted


def test_resume_restores_level_alpha_and_weights_mid_fade(model_data):
    config = pggan_config("smoke", data={"name": "digits", "image_size": 8, "channels": 1},
                          training={**pggan_config("smoke")["training"], "fade_images": 64, "stabilise_images": 32,
                                    "checkpoint_every_steps": 2, "snapshot_every": 100})
    data = {"images": load_images(config)}
    # phase 0: 2 steps of 16 at 4x4; then the fade to 8x8: 4 steps; stop after 2 of them
    with pytest.raises(Interrupted):
        train(config, "resume", root=model_data, data=data, verbose=0, tensorboard=False,
              callbacks=[InterruptAt(4)])
    run = open_run(config["experiment"], "resume", config, root=model_data)

    second = build_pggan(config)
    assert restore_progress(second, run.checkpoints).endswith("ckpt-4")
    assert int(second.level.numpy()) == 1 and second.fading and second.resolution == 8
    assert second.alpha.numpy() == pytest.approx(0.5) and int(second.phase_images.numpy()) == 32
    assert int(second.step.numpy()) == 4 and int(second.images_seen.numpy()) == 64

    model, _, results = train(config, "resume", root=model_data, data=data, verbose=0, tensorboard=False)
    # 2 + 4 + 2 steps in all, 16 images each: the resumed run did only the missing 4
    assert results["step"] == 8 and results["images_seen"] == 128 and results["resumed_from"].endswith("ckpt-4")
    assert results["resolution"] == 8 and results["alpha"] == 1.0
    assert results["level_grids"] == ["level_0004x0004.png", "level_0008x0008.png"]


def test_pggan_uses_the_shared_optimizer_step_and_penalty(monkeypatch):
    """PGGAN's critic and generator updates go through GANBase._apply (loss scaling, replica
    division) and its penalty is losses.gradient_penalty: one copy of each for every model."""
    from ganhelpers import losses
    from ganhelpers.models import GANBase

    calls = {"apply": 0, "gp": 0}
    apply, gp = GANBase._apply, losses.gradient_penalty

    def counting_apply(optimizer, tape, loss, variables):
        calls["apply"] += 1
        return apply(optimizer, tape, loss, variables)

    def counting_gp(*args):
        calls["gp"] += 1
        return gp(*args)

    monkeypatch.setattr(GANBase, "_apply", staticmethod(counting_apply))
    monkeypatch.setattr(losses, "gradient_penalty", counting_gp)
    model = small_model(8, 1)
    model.run_eagerly = True
    model.start_phase(0)
    model.train_on_batch(tf.zeros((8, 4, 4, 1)))
    assert calls == {"apply": 2, "gp": 1}


def test_every_phase_has_a_name_with_its_resolutions():
    model = build_pggan(pggan_config("smoke"))
    assert [phase_name(model, i) for i in range(len(model.phases))] == \
        ["stabilise 4×4", "fade-in 4×4→8×8", "stabilise 8×8", "fade-in 8×8→16×16", "stabilise 16×16"]


def test_traced_phases_train_without_tensorflows_retracing_warning(tmp_path):
    """Each phase traces its own step (new networks); TensorFlow's "triggered tf.function retracing"
    warning would be a red line in notebook 04's cpu preset (traced, unlike smoke). It is dropped
    while the phases train, and the filter is gone afterwards."""
    import logging

    from ganhelpers import run

    seen = []

    class Catch(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    tf_logger = logging.getLogger("tensorflow")
    catch, filters = Catch(level=logging.WARNING), list(tf_logger.filters)
    tf_logger.addHandler(catch)
    try:
        config = run.model_kind("pggan").config("smoke")
        config["training"]["run_eagerly"] = False
        result = run.train(config, "traced", root=tmp_path, verbose=0)
        tf_logger.warning("5 out of the last 11 calls to f triggered tf.function retracing (after training)")
    finally:
        tf_logger.removeHandler(catch)
    assert result.results["phase"] == 4 and result.results["step"] == 14  # every phase trained, traced
    assert seen == ["5 out of the last 11 calls to f triggered tf.function retracing (after training)"]
    assert tf_logger.filters == filters


def _g_values(model):
    return [w.numpy().copy() for w in model.generator.trainable_weights]


def test_generator_average_is_the_papers_running_average_and_leaves_g_untouched():
    """training.ema_decay: G's Adam keeps avg = d * avg + (1 - d) * w after every step (the first step
    sets avg = w); sampling inside ``generator_average`` uses it, and G's own weights come back exactly."""
    model = ProgressiveGAN(8, 1, width=1 / 32, seed=3, num_fixed=8, ema_decay=0.5)
    model.compile()
    model.run_eagerly = True
    model.start_phase(0)
    before = model.sample(4, seed=1)
    assert np.array_equal(before, model.sample(4, seed=1))  # no step yet: no average, G's own weights
    batch = tf.random.stateless_uniform((8, 4, 4, 1), (1, 2), -1.0, 1.0)
    model.train_on_batch(batch)
    w1 = _g_values(model)
    model.train_on_batch(batch)
    w2 = _g_values(model)
    assert not all(np.array_equal(a, b) for a, b in zip(w1, w2, strict=True))
    with model.generator_average():
        inside = _g_values(model)
    for avg, a, b in zip(inside, w1, w2, strict=True):
        np.testing.assert_allclose(avg, 0.5 * a + 0.5 * b, rtol=1e-6, atol=1e-7)
    for now, b in zip(_g_values(model), w2, strict=True):
        assert np.array_equal(now, b)
    averaged = model.sample(4, seed=1)
    raw = np.clip(model.generator(tf.random.Generator.from_seed(1).normal((4, model.latent_shape[0])),
                                  training=False).numpy(), -1, 1)
    assert np.abs(averaged - raw).max() > 1e-4  # sample() draws from the average, not from G
    raw_frame = np.repeat(np.repeat(model.generator(model.fixed_noise).numpy(), 2, axis=1), 2, axis=2)
    assert np.abs(model.snapshot_images() - raw_frame).max() > 1e-4  # so do the GIF's frames


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.1, "0.99", True])
def test_ema_decay_outside_0_1_is_a_clear_error(bad):
    with pytest.raises(ValueError, match=r"training\.ema_decay must be a number between 0 and 1"):
        build_pggan(pggan_config("smoke", training={**pggan_config("smoke")["training"], "ema_decay": bad}))


def test_the_average_is_checkpointed_and_adding_it_to_an_old_run_is_refused(model_data):
    from ganhelpers.experiment import ConfigMismatch

    smoke = pggan_config("smoke")
    config = pggan_config("smoke", data={"name": "digits", "image_size": 8, "channels": 1},
                          training={**smoke["training"], "fade_images": 32, "stabilise_images": 32,
                                    "checkpoint_every_steps": 2, "snapshot_every": 100, "ema_decay": 0.9})
    data = {"images": load_images(config)}
    model, run, results = train(config, "ema", root=model_data, data=data, verbose=0, tensorboard=False)
    assert results["step"] == 6
    second = build_pggan(config)
    assert restore_progress(second, run.checkpoints).endswith("ckpt-6")
    # the restored average (not only G's own weights) draws the same images
    assert np.array_equal(second.sample(8, seed=5), model.sample(8, seed=5))
    with second.generator_average():
        restored = _g_values(second)
    assert not all(np.array_equal(a, b) for a, b in zip(restored, _g_values(second), strict=True))

    # an old run without the average cannot take one on resume: its optimizers hold no average
    old = dict(config, training={k: v for k, v in config["training"].items() if k != "ema_decay"})
    train(old, "plain", root=model_data, data=data, verbose=0, tensorboard=False, steps=2)
    with pytest.raises(ConfigMismatch, match=r"training\.ema_decay"):
        train(config, "plain", root=model_data, data=data, verbose=0, tensorboard=False)
