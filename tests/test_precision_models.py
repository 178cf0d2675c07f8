"""``training.precision`` is an option of every model, not only the DCGAN: WGAN (clip and GP), SGAN
and the progressive GAN build their networks under the mixed policy (16-bit compute, float32
weights), keep images, scores and losses float32, wrap optimizers for loss scaling under float16,
and take a finite step. (The DCGAN's own tests are in test_speed_paths.py.)"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from ganhelpers import pggan, precision, sgan, wgan

COMPUTE = {"mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}


def _check_networks(nets, compute):
    assert keras.config.dtype_policy().name == "float32"  # building did not leak the policy
    for net in nets:
        assert precision.compute_dtype(net) == compute, net.name
        assert all(v.dtype == "float32" for v in net.trainable_variables), net.name


def _check_optimizers(model, policy):
    for opt in (model.d_optimizer, model.g_optimizer):
        assert isinstance(opt, keras.optimizers.LossScaleOptimizer) == (policy == "mixed_float16")


def _weights(net):
    return [v.numpy().copy() for v in net.trainable_variables]


def _moved(before, net):
    return min(np.abs(a - v.numpy()).max() for a, v in zip(before, net.trainable_variables, strict=True))


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
@pytest.mark.parametrize("variant", ["clip", "gp"])
def test_wgan_mixed_precision(policy, variant):
    config = wgan.wgan_config("smoke", training={**wgan.wgan_config("smoke")["training"], "precision": policy})
    config["data"]["image_size"] = 16
    model = wgan.build_wgan(config, variant)
    _check_networks((model.generator, model.critic), COMPUTE[policy])
    _check_optimizers(model, policy)
    assert model.generator(model.sample_noise(2)).dtype == tf.float32
    real = tf.random.stateless_uniform((8, 16, 16, 1), (1, 2), -1.0, 1.0)
    assert model.critic(real).dtype == tf.float32
    before = _weights(model.critic)
    logs = model.train_on_batch(real, return_dict=True)
    assert all(np.isfinite(v) for v in logs.values()), logs
    assert _moved(before, model.critic) > 0
    if variant == "clip":  # clipping still bounds the float32 weights
        assert max(float(tf.reduce_max(tf.abs(v))) for v in model.critic.trainable_variables) <= 0.01 + 1e-9


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_sgan_and_its_baseline_mixed_precision(policy):
    config = sgan.sgan_config("smoke", training={**sgan.sgan_config("smoke")["training"], "precision": policy})
    model = sgan.build_sgan(config)
    _check_networks((model.generator, model.discriminator), COMPUTE[policy])
    _check_optimizers(model, policy)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 8, 8, 1), dtype=np.uint8)
    ds = sgan.sgan_dataset(x[:30], x[30:], np.arange(10), batch_size=8, labelled_batch_size=10)
    out = model.discriminator(tf.zeros((2, 8, 8, 1)))
    assert all(t.dtype == tf.float32 for t in tf.nest.flatten(out))  # logits and features float32
    before = _weights(model.discriminator)
    history = model.fit(ds, epochs=1, steps_per_epoch=2, verbose=0)
    assert all(np.isfinite(v[-1]) for v in history.history.values()), history.history
    assert _moved(before, model.discriminator) > 0

    config["baseline"]["epochs"] = 1
    baseline = sgan.train_baseline(config, x[30:], np.arange(10), steps_per_epoch=1)
    assert precision.compute_dtype(baseline) == COMPUTE[policy]


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_pggan_mixed_precision_through_a_fade(policy):
    config = pggan.pggan_config("smoke", training={**pggan.pggan_config("smoke")["training"], "precision": policy})
    model = pggan.build_pggan(config)
    model.start_phase(1)  # 8x8, fading in: the blend and resampling layers are wired now
    _check_networks((model.generator, model.discriminator), COMPUTE[policy])
    _check_optimizers(model, policy)  # the fresh Adam of the new phase is wrapped too
    model.alpha.assign(0.5)
    assert model.generator(model.sample_noise(4)).dtype == tf.float32
    real = tf.random.stateless_uniform((16, 8, 8, 1), (3, 4), -1.0, 1.0)
    assert model.discriminator(real).dtype == tf.float32
    before = _weights(model.generator)
    logs = model.train_step(real)
    assert all(np.isfinite(float(v)) and v.dtype == tf.float32 for v in logs.values()), logs
    assert _moved(before, model.generator) > 0


def test_float32_stays_the_default_everywhere():
    nets = [wgan.build_wgan(wgan.wgan_config("smoke"), "clip").critic,
            sgan.build_sgan(sgan.sgan_config("smoke")).discriminator,
            pggan.build_pggan(pggan.pggan_config("smoke")).generator]
    assert [precision.compute_dtype(n) for n in nets] == ["float32"] * 3
