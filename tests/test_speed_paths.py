"""The speed options keep the numbers right: mixed-precision policies (bfloat16 and float16 with loss
scaling, float32 outputs and losses), XLA, steps_per_execution, and the benchmark's FLOP count.
No timing here: speed is measured by benchmarks/train_step.py."""

import logging
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from ganhelpers import data, precision
from ganhelpers.dcgan import build_dcgan, dcgan_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


@pytest.fixture(scope="module")
def real():
    return data.to_float(data.digits(32)["images"][:64]).astype("float32")


def _model(prec="float32", **training):
    config = dcgan_config("smoke")
    config["training"].update(precision=prec, **training)
    return build_dcgan(config)


def test_policy_for_picks_bf16_on_capable_cpus_fp16_on_gpus_and_float32_otherwise(tmp_path):
    env = {}  # no oneDNN cap, whatever the environment the suite runs in
    assert precision.policy_for("float32", environ=env) == "float32"
    assert precision.policy_for(None, environ=env) == "float32"
    assert precision.policy_for("mixed", device="gpu", environ=env) == "mixed_float16"
    assert precision.policy_for("mixed", device="tpu", environ=env) == "mixed_bfloat16"
    assert precision.policy_for("mixed", device="cpu", cpu_bf16=True, environ=env) == "mixed_bfloat16"
    assert precision.policy_for("mixed", device="cpu", cpu_bf16=False, environ=env) == "float32"
    assert precision.policy_for("mixed_bfloat16", device="cpu", cpu_bf16=False, environ=env) == "mixed_bfloat16"
    with pytest.raises(ValueError, match="precision must be one of"):
        precision.policy_for("half")
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_tile\n")
    assert precision.cpu_bf16_flags(info) == ["avx512_bf16"]
    assert precision.speed_flags(info) == "avx2 avx512f avx512_bf16 amx_tile"  # SPEED_FLAGS' order
    info.write_text("flags\t\t: fpu sse avx2\n")
    assert precision.cpu_bf16_flags(info) == []
    assert precision.speed_flags(info) == "avx2"
    info.write_text("flags\t\t: fpu sse\n")
    assert precision.speed_flags(info).startswith("none of avx2/fma/")
    assert precision.speed_flags(tmp_path / "absent") == "unknown" and precision.cpu_bf16_flags(tmp_path / "x") == []
    info.write_text("processor\t: 0\nFeatures\t: fp asimd\n")  # ARM: no flags line
    assert precision.speed_flags(info) == "unknown" and precision.cpu_bf16_flags(info) == []
    # the flag readers serve benchmarks before TensorFlow loads (their thread settings must come first)
    code = ("import sys; from ganhelpers import precision; precision.speed_flags(); "
            "print(sorted(m for m in ('keras', 'tensorflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]", out.stderr


def test_a_onednn_cap_below_bf16_keeps_mixed_in_float32_and_refuses_mixed_bfloat16(monkeypatch, caplog):
    # ONEDNN_MAX_CPU_ISA=AVX2 (how benchmarks/workshop.py plays an AVX2 laptop) has no bfloat16
    # kernels: "mixed" must not pick bfloat16 there even on a CPU whose flags have it
    for cap in ("AVX2", "avx2", " AVX512_CORE ", "SSE41"):
        assert precision.cap_blocks_bf16({"ONEDNN_MAX_CPU_ISA": cap})
        with caplog.at_level(logging.WARNING, logger="ganhelpers.precision"):
            assert precision.policy_for("mixed", device="cpu", cpu_bf16=True,
                                        environ={"ONEDNN_MAX_CPU_ISA": cap}) == "float32"
        assert f"capped at {cap.strip().upper()}" in caplog.text
        caplog.clear()
    assert precision.policy_for("mixed", device="cpu", cpu_bf16=True,
                                environ={"DNNL_MAX_CPU_ISA": "AVX2"}) == "float32"  # oneDNN's old name
    for cap in ("AVX512_CORE_BF16", "AVX512_CORE_AMX", "ALL", ""):
        assert not precision.cap_blocks_bf16({"ONEDNN_MAX_CPU_ISA": cap})
        assert precision.policy_for("mixed", device="cpu", cpu_bf16=True,
                                    environ={"ONEDNN_MAX_CPU_ISA": cap}) == "mixed_bfloat16"
    # a GPU's convolutions are not oneDNN's: the cap changes nothing there
    assert precision.policy_for("mixed", device="gpu", environ={"ONEDNN_MAX_CPU_ISA": "AVX2"}) == "mixed_float16"
    assert precision.policy_for("mixed_bfloat16", device="gpu",
                                environ={"ONEDNN_MAX_CPU_ISA": "AVX2"}) == "mixed_bfloat16"
    # asked for by name on a capped CPU: a clear error naming the option and the variable, from the
    # config the user wrote, before any layer is built
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    with pytest.raises(ValueError, match=r"precision 'mixed_bfloat16'.*AVX2 \(ONEDNN_MAX_CPU_ISA\)"):
        _model("mixed_bfloat16")
    model = _model("mixed")
    assert precision.compute_dtype(model.generator) == "float32"


def test_policy_scope_restores_the_global_policy():
    before = keras.config.dtype_policy().name
    with precision.policy_scope("mixed_bfloat16"):
        assert keras.config.dtype_policy().name == "mixed_bfloat16"
    assert keras.config.dtype_policy().name == before


@pytest.mark.parametrize("policy,compute", [("mixed_bfloat16", "bfloat16"), ("mixed_float16", "float16")])
def test_mixed_precision_step_keeps_weights_outputs_and_losses_float32(real, policy, compute):
    model = _model(policy)
    assert keras.config.dtype_policy().name == "float32"  # building did not leak the policy
    for net in (model.generator, model.discriminator):
        assert precision.compute_dtype(net) == compute
        assert all(v.dtype == "float32" for v in net.trainable_variables)
    assert model.generator(model.sample_noise(4)).dtype == tf.float32  # images float32 in [-1, 1]
    assert model.discriminator(real[:4]).dtype == tf.float32  # logits float32
    scaled = isinstance(model.d_optimizer, keras.optimizers.LossScaleOptimizer)
    assert scaled == (policy == "mixed_float16")  # only float16 needs loss scaling
    before = [v.numpy() for v in model.generator.trainable_variables]
    logs = model.train_on_batch(real, return_dict=True)
    assert all(np.isfinite(v) for v in logs.values())
    moved = [np.abs(a - v.numpy()).max() for a, v in zip(before, model.generator.trainable_variables, strict=True)]
    assert min(moved) > 0  # every G weight got a finite, non-zero update


def test_bfloat16_losses_track_float32_losses(real):
    """Same weights, same batch: the first step's D loss on reals (computed before any update) agrees
    to bfloat16's precision (8 bits of mantissa: ~1%), and the losses stay float32."""
    f32, bf16 = _model("float32"), _model("mixed_bfloat16")
    bf16.set_weights(f32.get_weights())
    for m in (f32, bf16):
        m.real_target_range.assign([0.9, 0.9])
    a = f32.train_on_batch(real, return_dict=True)["d_loss_real"]
    b = bf16.train_on_batch(real, return_dict=True)["d_loss_real"]
    assert b == pytest.approx(a, rel=0.03)
    logits = bf16.discriminator(real, training=False)
    assert bf16.loss_fn.real(logits, 1.0).dtype == tf.float32


def test_xla_computes_the_same_step(real):
    """jit_compile=True (what ``training.jit_compile`` asks of ``compile``) changes how the step runs,
    not what it computes: same weights, batch and noise give the same update of every variable, to
    1% of that update's size (XLA fuses and reorders float32 sums, so single elements whose update
    is ~0 may differ relatively more; an elementwise check was flaky for that reason). The noise is
    passed in: XLA may draw a different stream from the model's RNG. Both take plain SGD steps: an
    update proportional to the gradient. Adam's first update is lr * g / (|g| + eps), about +-lr for
    every element whatever its size, so a round-off-sized gradient whose sign the reordering flips moved
    a whole element, and the check failed on some initial weights (1.8% of a kernel's update)."""
    plain, xla = _model(), _model()
    xla.set_weights(plain.get_weights())
    for m in (plain, xla):
        m.d_optimizer, m.g_optimizer = keras.optimizers.SGD(0.05), keras.optimizers.SGD(0.05)
    start = plain.get_weights()
    z = tf.random.stateless_normal((3 * 64, 1, 1, 100), (3, 4))
    tf.function(plain.adversarial_step)(real, z[:64], z[64:])
    tf.function(xla.adversarial_step, jit_compile=True)(real, z[:64], z[64:])
    for w0, a, b in zip(start, plain.get_weights(), xla.get_weights(), strict=True):
        update = np.linalg.norm(a - w0)
        assert update > 0
        assert np.linalg.norm(b - a) <= 0.01 * update, (np.linalg.norm(b - a), update)


def test_steps_per_execution_computes_the_same_steps(real):
    """``training.steps_per_execution`` (several steps per call: less host overhead for small steps)."""
    ds = tf.data.Dataset.from_tensors(real).repeat()
    plain, multi = _model(), _model(steps_per_execution=2)
    multi.set_weights(plain.get_weights())
    for m in (plain, multi):
        m.fit(ds, epochs=1, steps_per_epoch=2, verbose=0)
    assert int(multi.step.numpy()) == 2
    for a, b in zip(plain.get_weights(), multi.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_benchmark_flop_count_matches_a_hand_count():
    from train_step import dcgan_step_flops, layer_flops, pass_flops

    g = keras.Sequential([keras.Input((1, 1, 10)), keras.layers.Conv2DTranspose(8, 4, name="t"),
                          keras.layers.Conv2DTranspose(3, 4, strides=2, padding="same", name="t2")])
    d = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 4, strides=2, padding="same", name="c"),
                          keras.layers.Flatten(), keras.layers.Dense(1, name="d")])
    # transposed conv: input pixels x k^2 x c_in x c_out; conv: output pixels x k^2 x c_in x c_out
    assert dict(layer_flops(g)) == {"t": 2 * 1 * 16 * 10 * 8, "t2": 2 * 16 * 16 * 8 * 3}
    assert dict(layer_flops(d)) == {"c": 2 * 16 * 16 * 3 * 4, "d": 2 * 64}
    c, dense = 2 * 16 * 16 * 3 * 4, 2 * 64
    assert pass_flops(d, trained=True, input_grad=False) == 3 * (c + dense) - c
    assert pass_flops(d, trained=False, input_grad=True) == 2 * (c + dense)
    g_fwd = 2 * 16 * 10 * 8 + 2 * 16 * 16 * 8 * 3
    expected = 2 * (3 * (c + dense) - c) + g_fwd + 2 * (3 * g_fwd - 2 * 16 * 10 * 8 + 2 * (c + dense))
    assert dcgan_step_flops(g, d) == expected


def test_graph_flop_count_agrees_with_the_layer_count():
    """The PGGAN case reads FLOPs off the traced graph; on the DCGAN (transposed convolutions,
    convolutions, a dense head) both counts must agree exactly."""
    from train_step import graph_flops, layer_flops

    model = _model()
    g, d = model.generator, model.discriminator
    assert graph_flops(g, g.input.shape[1:]) == sum(f for _, f in layer_flops(g))
    assert graph_flops(d, d.input.shape[1:]) == sum(f for _, f in layer_flops(d))
    # and on a dense layer: 2 x in x out
    dense = keras.Sequential([keras.Input((7,)), keras.layers.Dense(5)])
    assert graph_flops(dense, (7,)) == 2 * 7 * 5


@pytest.mark.parametrize("name", ["dcgan", "wgan", "wgan-gp", "sgan", "pggan", "dogs"])
def test_every_model_kind_compiles_its_step_with_xla_when_the_config_asks(name, tmp_path):
    """``training.jit_compile`` (README "The command line": a key every kind reads) reaches Keras'
    ``compile`` for every model kind, and is off unless asked for; a traced PGGAN (its smoke preset
    runs eagerly, where XLA does not apply) compiles too, and a WGAN run (the step with the generator
    update inside ``tf.cond`` and the clipping) finishes its budget under XLA."""
    from ganhelpers.run import model_kind, train

    kind = model_kind(name)
    config = kind.config("smoke")
    assert kind.build(config).jit_compile is False
    config["training"]["jit_compile"] = True
    if name == "pggan":
        config["training"]["run_eagerly"] = False
    assert kind.build(config).jit_compile is True
    if name == "wgan":
        result = train(config, "xla", root=tmp_path, verbose=0)
        assert int(result.model.step.numpy()) == result.results["step"] == result.total_steps > 0
