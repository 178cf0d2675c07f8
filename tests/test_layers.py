"""DCGAN builders: shapes, value ranges, where BatchNorm goes, and the paper's initialisation."""

import keras
import numpy as np
import pytest

from ganhelpers import layers


def _bn_layers(model):
    return [lyr for lyr in model.layers if isinstance(lyr, keras.layers.BatchNormalization)]


@pytest.mark.parametrize("size", [32, 64, 128])
@pytest.mark.parametrize("layout", ["paper", "birds"])
def test_shapes_and_ranges(size, layout):
    kw = dict(kernel_size=4, projection="conv") if layout == "paper" else dict(kernel_size=5, projection="dense")
    g = layers.dcgan_generator(size, 3, latent_dim=100, base_filters=8, **kw)
    d = layers.dcgan_discriminator(size, 3, base_filters=8, kernel_size=kw["kernel_size"],
                                   head="conv" if layout == "paper" else "dense")
    assert g.input_shape == (None, 1, 1, 100)
    z = np.random.default_rng(0).normal(size=(4, 1, 1, 100)).astype("float32")
    images = g(z, training=False).numpy()
    assert images.shape == (4, size, size, 3)
    assert images.min() >= -1.0 and images.max() <= 1.0
    logits = d(images, training=False).numpy()
    assert logits.shape == (4, 1) and np.isfinite(logits).all()


def test_feature_maps_halve_per_stage_as_in_the_bird_experiment():
    g = layers.dcgan_generator(64, 3, base_filters=64, kernel_size=5, projection="dense")
    shapes = [g.get_layer(n).output.shape[1:] for n in ("project_act", "up1", "up2", "up3", "to_image")]
    assert shapes == [(4, 4, 512), (8, 8, 256), (16, 16, 128), (32, 32, 64), (64, 64, 3)]
    d = layers.dcgan_discriminator(64, 3, base_filters=64, kernel_size=5, head="dense")
    assert [d.get_layer(f"down{i}").output.shape[-1] for i in range(4)] == [64, 128, 256, 512]
    assert d.get_layer("down3").output.shape[1:3] == (4, 4)


def test_batchnorm_everywhere_but_g_output_and_d_input():
    g = layers.dcgan_generator(64, 3, base_filters=8)
    d = layers.dcgan_discriminator(64, 3, base_filters=8)
    assert [b.name for b in _bn_layers(g)] == ["project_bn", "up1_bn", "up2_bn", "up3_bn"]
    assert [b.name for b in _bn_layers(d)] == ["down1_bn", "down2_bn", "down3_bn"]
    assert not _bn_layers(layers.dcgan_discriminator(64, 3, base_filters=8, batchnorm=False))
    for bn in _bn_layers(g) + _bn_layers(d):
        assert bn.momentum == 0.9 and bn.epsilon == 1e-5  # PyTorch's 0.1 / 1e-5, not Keras's 0.99 / 1e-3


def test_initialisation_follows_the_paper():
    g = layers.dcgan_generator(64, 3, base_filters=64)
    kernel = g.get_layer("up1").kernel.numpy()
    assert abs(kernel.mean()) < 1e-3 and kernel.std() == pytest.approx(0.02, rel=0.05)
    gamma = g.get_layer("up1_bn").gamma.numpy()
    assert gamma.mean() == pytest.approx(1.0, abs=0.01) and gamma.std() == pytest.approx(0.02, rel=0.3)


def test_options_activation_bias_dropout_and_2x2_start():
    g = layers.dcgan_generator(32, 1, base_filters=8, activation_name="leaky", use_bias=True, start_size=2)
    assert isinstance(g.get_layer("project_act"), keras.layers.LeakyReLU)
    assert g.get_layer("project").output.shape[1:3] == (2, 2)
    assert g.get_layer("up1").use_bias
    d = layers.dcgan_discriminator(32, 1, base_filters=8, dropout=0.3, start_size=2)
    assert d.get_layer("down0_dropout").rate == 0.3
    assert d.get_layer(f"down{layers.num_stages(32, 2) - 1}").output.shape[1:3] == (2, 2)


@pytest.mark.parametrize("bad", [48, 4, 0])
def test_bad_image_size_says_what_to_use(bad):
    with pytest.raises(ValueError, match="32, 64 or 128"):
        layers.dcgan_generator(bad, 3)
