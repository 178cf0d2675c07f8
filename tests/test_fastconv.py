"""The phase form of strided (transposed) convolutions: same numbers as TensorFlow's own ops in the
forward pass, both gradients and the second-order gradient a gradient penalty takes; the Keras
layers use it exactly where intended. No timing here: ``benchmarks/conv_ops.py`` measures it."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from ganhelpers import fastconv
from ganhelpers.dcgan import build_dcgan, dcgan_config
from ganhelpers.fastconv import PhaseConv2D, PhaseConv2DTranspose

CASES = [  # (n, h, w, c_in, c_out, kernel, stride)
    (2, 4, 4, 8, 6, 5, 2), (2, 4, 4, 8, 6, 4, 2), (3, 5, 7, 4, 5, 3, 2), (2, 3, 3, 3, 2, 2, 2),
    (2, 4, 3, 5, 4, 5, 3), (2, 6, 6, 3, 4, 3, 1), (1, 2, 2, 4, 3, 4, 4),
]


def _rand(shape, seed):
    return tf.constant(np.random.default_rng(seed).normal(size=shape))  # float64: exact comparisons


def _native_transpose(x, k, s):
    n, h, w, _ = x.shape
    return tf.nn.conv2d_transpose(x, k, (n, s * h, s * w, k.shape[2]), s, "SAME")


@pytest.mark.parametrize("n,h,w,cin,cout,k,s", CASES)
def test_phase_transpose_equals_conv2d_transpose_and_its_gradients(n, h, w, cin, cout, k, s):
    x, kernel = _rand((n, h, w, cin), 0), _rand((k, k, cout, cin), 1)
    dy = _rand((n, s * h, s * w, cout), 2)
    np.testing.assert_allclose(fastconv.conv2d_transpose_phases(x, kernel, (s, s)),
                               _native_transpose(x, kernel, s), rtol=0, atol=1e-12)
    grads = []
    for fn in (lambda a, b: fastconv.conv2d_transpose(a, b, (s, s)), lambda a, b: _native_transpose(a, b, s)):
        with tf.GradientTape() as tape:
            tape.watch([x, kernel])
            y = fn(x, kernel)
            loss = tf.reduce_sum(y * dy)
        grads.append(tape.gradient(loss, [x, kernel]))
    for got, want in zip(*grads, strict=True):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-11)


@pytest.mark.parametrize("n,h,w,cin,cout,k,s", CASES)
def test_phase_conv2d_gradients_equal_conv2d(n, h, w, cin, cout, k, s):
    # A conv2d from (s*h, s*w, c_out) down to (h, w, c_in): its input gradient is the transposed case.
    u, kernel = _rand((n, s * h, s * w, cout), 3), _rand((k, k, cout, cin), 4)
    dy = _rand((n, h, w, cin), 5)
    results = []
    for fn in (lambda a, b: fastconv.conv2d(a, b, (s, s)), lambda a, b: tf.nn.conv2d(a, b, s, "SAME")):
        with tf.GradientTape() as tape:
            tape.watch([u, kernel])
            y = fn(u, kernel)
            loss = tf.reduce_sum(y * dy)
        results.append([y, *tape.gradient(loss, [u, kernel])])
    for got, want in zip(*results, strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-11)


def test_second_order_gradient_of_a_gradient_penalty_matches_native_ops():
    # Critic: strided conv -> leaky -> strided conv -> sum; penalty (||dD/dx|| - 1)^2, its gradient
    # with respect to both kernels goes through the custom gradients' own derivatives.
    x = _rand((2, 8, 8, 3), 6)
    k1, k2 = tf.Variable(_rand((4, 4, 3, 6), 7)), tf.Variable(_rand((4, 4, 6, 5), 8))

    def penalty_grads(conv):
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                inner.watch(x)
                h = tf.nn.leaky_relu(conv(x, k1), 0.2)
                score = tf.reduce_sum(conv(h, k2) ** 2)
            g = inner.gradient(score, x)
            gp = tf.reduce_sum((tf.norm(tf.reshape(g, (2, -1)), axis=1) - 1.0) ** 2)
        return [gp, *outer.gradient(gp, [k1, k2])]

    got = penalty_grads(lambda a, b: fastconv.conv2d(a, b, (2, 2)))
    want = penalty_grads(lambda a, b: tf.nn.conv2d(a, b, 2, "SAME"))
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-9)


def _graph_ops(fn, *args):
    return tf.function(fn).get_concrete_function(*args).graph.get_operations()


def _layer_pair(phase_cls, native_cls, input_shape, **kwargs):
    phase, native = phase_cls(**kwargs), native_cls(**kwargs)
    phase.build(input_shape)
    native.build(input_shape)
    rng = np.random.default_rng(9)
    weights = [rng.normal(size=w.shape).astype("float32") * 0.1 for w in phase.weights]
    phase.set_weights(weights)
    native.set_weights(weights)
    return phase, native


@pytest.mark.parametrize("kind", ["transpose", "conv"])
def test_layers_match_keras_layers_with_the_same_weights(kind):
    if kind == "transpose":
        shape = (4, 8, 8, 32)
        phase, native = _layer_pair(PhaseConv2DTranspose, keras.layers.Conv2DTranspose, shape, filters=16,
                                    kernel_size=5, strides=2, padding="same", activation="relu")
    else:
        shape = (4, 16, 16, 16)
        phase, native = _layer_pair(PhaseConv2D, keras.layers.Conv2D, shape, filters=32, kernel_size=5,
                                    strides=2, padding="same")
    x = tf.constant(np.random.default_rng(10).normal(size=shape).astype("float32"))
    outs = []
    for layer in (phase, native):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * tf.cos(y))
        outs.append([y, *tape.gradient(loss, [x, *layer.trainable_weights])])
    for a, b in zip(*outs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(tf.reduce_max(tf.abs(b))))
    # Same config: the layer can stand in for the Keras one in a saved model.
    assert {k: v for k, v in phase.get_config().items() if k != "name"} == {
        k: v for k, v in native.get_config().items() if k != "name"}


def test_path_choice_phases_on_cpu_native_for_few_channels_native_path_and_accelerators(monkeypatch):
    # Forward of a transposed layer: the phase path has no Conv2DBackpropInput op, the native one does.
    def forward_ops(filters, shape=(2, 8, 8, 32), **kw):
        layer = PhaseConv2DTranspose(filters, 5, strides=2, padding="same", **kw)
        layer.build(shape)
        return {op.type for op in _graph_ops(layer, tf.TensorSpec(shape))}

    assert "Conv2DBackpropInput" not in forward_ops(16)
    assert "Conv2DBackpropInput" in forward_ops(3)  # below MIN_PHASE_CHANNELS: native
    assert "Conv2DBackpropInput" in forward_ops(16, path="native")
    assert "Conv2DBackpropInput" not in forward_ops(3, path="phases")  # forced
    monkeypatch.setattr(fastconv, "_accelerator_visible", lambda: True)
    assert "Conv2DBackpropInput" in forward_ops(16)  # a GPU/TPU keeps its library's op
    with pytest.raises(ValueError, match="path must be one of"):
        PhaseConv2DTranspose(16, 5, path="fast")


def test_builders_take_the_phase_form_on_a_cpu_by_default_and_keras_layers_when_asked(monkeypatch):
    from ganhelpers import fastconv
    from ganhelpers.layers import build_dcgan_networks, resolve_conv

    def kinds(config):
        return {type(layer) for net in build_dcgan_networks(config) for layer in net.layers}

    config = dcgan_config("smoke")
    assert "conv" not in config["training"] and resolve_conv() == "phases"  # no GPU/TPU here
    assert {PhaseConv2D, PhaseConv2DTranspose} <= kinds(config) and keras.layers.Conv2D not in kinds(config)
    monkeypatch.setattr(fastconv, "_accelerator_visible", lambda: True)  # where a GPU is seen
    assert resolve_conv() == "keras" and keras.layers.Conv2DTranspose in kinds(config)
    monkeypatch.undo()
    config["training"]["conv"] = "keras"
    assert keras.layers.Conv2D in kinds(config) and keras.layers.Conv2DTranspose in kinds(config)
    assert not kinds(config) & {PhaseConv2D, PhaseConv2DTranspose}
    config["training"]["conv"] = "fast"
    with pytest.raises(ValueError, match=r"conv must be one of \['keras', 'phases', 'auto'\], got 'fast'"):
        build_dcgan_networks(config)


@pytest.mark.parametrize("shape,kwargs", [
    ((2, 7, 7, 16), dict(filters=32, kernel_size=3, strides=2, padding="same")),  # odd side: 7 != 2 * 4
    ((2, 8, 8, 16), dict(filters=32, kernel_size=4, strides=2, padding="valid")),
    ((2, 8, 8, 16), dict(filters=32, kernel_size=3, strides=2, padding="same", groups=2)),
])
def test_cases_outside_the_phase_form_fall_back_to_the_native_conv(shape, kwargs):
    phase, native = _layer_pair(PhaseConv2D, keras.layers.Conv2D, shape, **kwargs)
    x = tf.random.stateless_normal(shape, (1, 2))
    np.testing.assert_allclose(phase(x), native(x), rtol=1e-5, atol=1e-5)


def test_transposed_fallbacks_valid_padding_and_output_padding():
    for kwargs in (dict(padding="valid"), dict(padding="same", output_padding=1)):
        phase, native = _layer_pair(PhaseConv2DTranspose, keras.layers.Conv2DTranspose, (2, 4, 4, 16),
                                    filters=16, kernel_size=4, strides=2, **kwargs)
        x = tf.random.stateless_normal((2, 4, 4, 16), (3, 4))
        np.testing.assert_allclose(phase(x), native(x), rtol=1e-5, atol=1e-5)


def test_dcgan_train_step_runs_conv2d_backprop_input_only_onto_the_image_channels():
    # The bird DCGAN at 64x64: every transposed product onto >= 16 channels goes through the phase
    # form (forward of G, input gradients of D); only the 3-channel ones (G's RGB layer, D's first
    # layer's input gradient) keep TensorFlow's Conv2DBackpropInput.
    config = dcgan_config("full")
    config["data"]["batch_size"] = 4
    config["training"]["conv"] = "phases"
    model = build_dcgan(config)
    real = tf.TensorSpec((4, 64, 64, 3))
    ops = _graph_ops(model.train_step, real)
    backprop_input = [op for op in ops if op.type == "Conv2DBackpropInput"]

    def channels(op):
        return op.outputs[0].shape[-1]

    assert backprop_input, "the RGB layers should keep the native op"
    assert {channels(op) for op in backprop_input} == {3}
    n_phase_convs = sum(op.type == "Conv2D" and op.get_attr("strides") == [1, 1, 1, 1] for op in ops)
    assert n_phase_convs > 0


def test_saved_model_with_phase_layers_reloads_with_the_same_outputs(tmp_path):
    inp = keras.Input((8, 8, 16))
    out = PhaseConv2D(8, 3, strides=2, padding="same")(PhaseConv2DTranspose(16, 5, strides=2, padding="same")(inp))
    model = keras.Model(inp, out)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.layers[1], PhaseConv2DTranspose) and isinstance(loaded.layers[2], PhaseConv2D)
    x = tf.random.stateless_normal((2, 8, 8, 16), (5, 6))
    np.testing.assert_array_equal(model(x), loaded(x))


def test_mixed_bfloat16_layer_computes_in_bfloat16_close_to_float32():
    layer32 = PhaseConv2DTranspose(16, 5, strides=2, padding="same")
    layer16 = PhaseConv2DTranspose(16, 5, strides=2, padding="same", dtype="mixed_bfloat16")
    layer32.build((2, 4, 4, 32))
    layer16.build((2, 4, 4, 32))
    layer16.set_weights(layer32.get_weights())
    x = tf.random.stateless_normal((2, 4, 4, 32), (7, 8))
    y16, y32 = layer16(x), layer32(x)
    assert y16.dtype == tf.bfloat16 and layer16.kernel.dtype == "float32"
    np.testing.assert_allclose(tf.cast(y16, tf.float32), y32, rtol=0, atol=0.02 * float(tf.reduce_max(tf.abs(y32))))
