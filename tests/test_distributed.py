"""Multi-device training on a CPU split into 2 logical devices (MirroredStrategy).

Logical devices must be configured before TensorFlow initialises, so the checks run in a fresh
Python process (this file run as a script) and report JSON; the rest of the suite keeps one CPU.

Equivalence: one DCGAN ``adversarial_step`` on 2 replicas (each gets half of the global batch) must
move every weight as one step on one device does, from the same weights on the same global batch
with the same noise. Two choices make that an exact comparison:

* the noise is drawn on the host and split over the replicas (``adversarial_step`` takes it as
  arguments): the model's in-scope RNG gives each replica its own stream, which is right for
  training but not comparable with one device;
* BatchNorm layers are synchronised (``distribute.synchronize_batchnorm``): plain BatchNorm would
  normalise each replica's half batch with its own statistics, a different computation;
* the optimizers are plain SGD, whose update is proportional to the gradient, so a wrong loss
  scaling (e.g. summing two replicas' mean-loss gradients: 2x) shows; Adam's first step,
  ~lr * sign(g), would hide it.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

RESULT_TAG = "RESULT "


def _equivalence_and_fit() -> dict:
    import numpy as np

    from ganhelpers import distribute

    devices = distribute.split_cpu(2)
    import keras
    import tensorflow as tf

    from ganhelpers import data
    from ganhelpers.dcgan import DCGAN, build_dcgan, dcgan_config
    from ganhelpers.layers import build_dcgan_networks

    config = dcgan_config("smoke")
    keras.utils.set_random_seed(0)
    g0, d0 = build_dcgan_networks(config)
    batch = 16
    rng = np.random.default_rng(0)
    real = tf.constant(data.to_float(data.digits(32)["images"][:batch]).astype("float32"))
    z_fake = tf.constant(rng.normal(size=(batch, 1, 1, 100)).astype("float32"))
    z_gen = tf.constant(rng.normal(size=(2 * batch, 1, 1, 100)).astype("float32"))

    def make_model():
        model = DCGAN(distribute.synchronize_batchnorm(g0), distribute.synchronize_batchnorm(d0))
        model.compile(d_optimizer=keras.optimizers.SGD(0.5), g_optimizer=keras.optimizers.SGD(0.5))
        model.prepare_distributed()
        return model

    def weights(model):
        return [v.numpy() for v in model.generator.weights + model.discriminator.weights]

    single = make_model()
    before = weights(single)
    logs_single = tf.function(single.adversarial_step)(real, z_fake, z_gen)

    strategy = tf.distribute.MirroredStrategy(devices)
    with strategy.scope():
        mirrored = make_model()
    args = distribute.per_replica_slices(strategy, real, z_fake, z_gen)
    tf.function(lambda: strategy.run(mirrored.adversarial_step, args=args))()

    deltas_s = [a - b for a, b in zip(weights(single), before, strict=True)]
    deltas_m = [a - b for a, b in zip(weights(mirrored), before, strict=True)]
    rel = max(float(np.abs(m - s).max() / (np.abs(s).max() + 1e-12)) for s, m in zip(deltas_s, deltas_m, strict=True)
              if np.abs(s).max() > 0)
    moved = sum(int(np.abs(s).max() > 0) for s in deltas_s)

    # fit under the strategy with the real train_step (in-scope RNG, per-replica noise), Adam.
    with strategy.scope():
        model = build_dcgan(config)
    history = model.fit(data.make_dataset(data.digits(32)["images"][:64], 32, repeat=True), epochs=1,
                        steps_per_epoch=2, verbose=0)
    return {"replicas": strategy.num_replicas_in_sync, "max_relative_delta_error": rel, "weights_moved": moved,
            "num_weights": len(before), "d_loss_real_single": float(logs_single["d_loss_real"]),
            "fit_steps": int(model.step.numpy()),
            "fit_losses": {k: float(v[-1]) for k, v in history.history.items()}}


@pytest.fixture(scope="module")
def result():
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve())], cwd=root, capture_output=True,
                          text=True, timeout=600, env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "2",
                                                       "CUDA_VISIBLE_DEVICES": ""})
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_TAG)]
    assert proc.returncode == 0 and lines, f"subprocess failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1][len(RESULT_TAG):])


def test_distributed_step_matches_single_device_step(result):
    assert result["replicas"] == 2
    assert result["weights_moved"] >= result["num_weights"] // 2  # the step really trained both networks
    # float32 sums in a different order: ~1e-6 relative; a loss-scaling error would be >= 50%.
    assert result["max_relative_delta_error"] < 1e-3


def test_fit_runs_under_mirrored_strategy(result):
    assert result["fit_steps"] == 2
    losses = result["fit_losses"]
    assert {"d_loss_real", "d_loss_fake", "g_loss"} <= set(losses)
    assert all(0.0 < v < 10.0 for k, v in losses.items() if "loss" in k)


def _every_kind(root: str) -> dict:
    """Every model kind's smoke preset trained 4 steps through ``run.train`` on 2 logical CPU devices, and the
    SGAN run that one device started (``moved``) continued on 2."""
    from ganhelpers import distribute

    strategy = distribute.make_strategy(devices=2)
    from ganhelpers import run

    out = {}
    for name in run.model_names():
        r = run.train(run.model_kind(name).config("smoke"), "two", root=root, steps=4, strategy=strategy,
                      verbose=0).results
        out[name] = {k: r.get(k) for k in ("step", "replicas", "strategy", "final_losses", "images_seen")}
    moved = run.train(run.model_kind("sgan").config("smoke"), "moved", root=root, strategy=strategy, verbose=0)
    out["sgan-moved"] = {k: moved.results.get(k) for k in ("step", "replicas", "resumed_from")}
    return out


def _subprocess(*argv, timeout=900):
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, *argv], cwd=root, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 0, f"{argv} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_every_model_kind_trains_on_two_devices_and_checkpoints_move_between_device_counts(tmp_path):
    from types import SimpleNamespace

    import numpy as np
    from tensorboard.plugins.hparams import metadata as hp_metadata

    from ganhelpers import run, summaries

    root = tmp_path / "model_data"
    # one device -> two: an SGAN run started here (one CPU device) to step 10 ...
    sgan = run.model_kind("sgan").config("smoke")
    started = run.train(sgan, "moved", root=root, steps=10, verbose=0)
    assert started.results["replicas"] == 1
    started.run.release()  # this process is done with the run: the next process may take it
    proc = _subprocess(str(Path(__file__).resolve()), "every-kind", str(root))
    kinds = json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_TAG)][-1][len(RESULT_TAG):])
    for name in run.model_names():
        assert kinds[name]["replicas"] == 2 and kinds[name]["strategy"] == "MirroredStrategy", name
        assert kinds[name]["step"] == 4 and kinds[name]["final_losses"], name
        assert all(np.isfinite(v) for v in kinds[name]["final_losses"].values()), kinds[name]
        results = json.loads((root / run.model_kind(name).experiment(run.model_kind(name).config("smoke")) / "two"
                              / "results.json").read_text())
        assert results["replicas"] == 2 and results["strategy"] == "MirroredStrategy"
        [session] = [hp_metadata.parse_session_start_info_plugin_data(v.metadata.plugin_data.content) for v in
                     summaries._tagged(SimpleNamespace(logs=root / results["experiment"] / "two" / "logs"),
                                       summaries.HPARAMS_TAG)]
        assert (session.hparams["replicas"].number_value, session.hparams["strategy"].string_value) == \
            (2, "MirroredStrategy"), name  # in the HParams too
    # PGGAN's schedule counts the global batch (each replica sees half): 4 steps at 4x4 and 8x8
    assert kinds["pggan"]["images_seen"] == 4 * run.model_kind("pggan").config("smoke")["training"]["batch_sizes"][4]
    # ... continued on two devices from its checkpoint
    assert kinds["sgan-moved"]["replicas"] == 2 and Path(kinds["sgan-moved"]["resumed_from"]).name == "ckpt-10"
    assert kinds["sgan-moved"]["step"] > 10

    # two devices -> one: the command line's --devices 2 to step 10, then one device to the budget
    proc = _subprocess("-m", "ganhelpers", "train", "dcgan", "--devices", "2", "--steps", "10", "--run", "back",
                       "--root", str(root), "--quiet")
    assert "trained to step 10 (epoch " in proc.stdout and "on 2 replicas (MirroredStrategy)" in proc.stdout
    assert "absl::InitializeLog" not in proc.stderr and "cuda drivers" not in proc.stderr  # the CLI is quiet
    back = run.train(run.model_kind("dcgan").config("smoke"), "back", root=root, verbose=0)
    assert back.results["replicas"] == 1 and back.results["strategy"] == "default"
    assert Path(back.results["resumed_from"]).name == "ckpt-10" and back.results["step"] == 28


@pytest.mark.parametrize("argv, message", [
    (["--devices", "0"], "--devices must be >= 1, got 0"),
    (["--devices", "-2"], "--devices must be >= 1, got -2"),
    (["--devices", "two"], "--devices takes a whole number, got 'two'"),
    (["--strategy", "ring"], "argument --strategy: invalid choice: 'ring'"),
])
def test_devices_and_strategy_options_refuse_bad_values_naming_the_option(argv, message, capsys, tmp_path):
    from ganhelpers.cli import main

    with pytest.raises(SystemExit) as raised:
        main(["train", "dcgan", "--root", str(tmp_path), *argv])
    assert raised.value.code == 2 and message in capsys.readouterr().err


def test_the_default_strategy_on_two_devices_is_a_clear_error(tmp_path):
    from ganhelpers.cli import main

    with pytest.raises(SystemExit, match=r"error: --strategy/--devices: the default strategy trains on one "
                                         r"device, not 2: use --strategy mirrored"):
        main(["train", "dcgan", "--root", str(tmp_path), "--strategy", "default", "--devices", "2"])
    assert not any(tmp_path.iterdir())  # nothing written


def test_tpu_without_a_tpu_is_a_clear_error_naming_what_to_do(tmp_path):
    """TPUStrategy cannot run here (no TPU): what can be tested is that asking for one without it
    stops before anything is written, with the message a Colab user needs."""
    from ganhelpers.cli import main

    with pytest.raises(SystemExit, match=r"error: --strategy/--devices: no TPU found \(.*\); on Colab pick "
                                         r"Runtime > Change runtime type > TPU"):
        main(["train", "dcgan", "--root", str(tmp_path), "--strategy", "tpu"])
    assert not any(tmp_path.iterdir())


if __name__ == "__main__":
    if sys.argv[1:2] == ["every-kind"]:
        print(RESULT_TAG + json.dumps(_every_kind(sys.argv[2])), flush=True)
    else:
        print(RESULT_TAG + json.dumps(_equivalence_and_fit()), flush=True)
