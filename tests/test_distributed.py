"""Multi-device training on a CPU split into 2 logical devices (MirroredStrategy).

Logical devices must be configured before TensorFlow initialises, so the checks run in one fresh
Python process (this file run as a script, ``python tests/test_distributed.py ROOT``) and report
JSON; the rest of the suite keeps one CPU.

Equivalence, for every model kind: two ``train_step``s on 2 replicas (each gets half of the global
batch) must give the same losses and move every weight as two steps on one device do, from the same
weights on the same global batches with the same noise. What makes that an exact comparison:

* noise: under several replicas every replica draws the global batch's noise from one shared seed
  and keeps its rows (``GANBase.normal``/``uniform``, ``layers.GaussianNoise``/``Dropout``); the
  one-device model draws the same way (``global_draws = True``), from the same RNG state;
* BatchNorm is synchronised when a network is built under several replicas (``layers.batch_norm``);
* SGAN's feature matching compares global-batch means (``distribute.global_batch_mean``);
* PGGAN's minibatch standard deviation groups each replica's share (the authors' multi-GPU code),
  so the one-device reference gets the global batch (images and every draw) in the order that puts
  the same images in each group: a permutation, to which everything else is blind (means);
* the optimizers are plain SGD, whose update is proportional to the gradient, so a wrong loss
  scaling (e.g. summing two replicas' mean-loss gradients: 2x) shows; Adam's update, ~lr * sign(g),
  would hide it.

What is left is float32 round-off (sums in another order, the all-reduce). How much that can change
two steps depends on the state, so each comparison measures it: a second one-device run from weights
changed by 1e-6 of themselves (``conditioning``). The tiny smoke nets are well conditioned for the
first updates at SGD 1e-3 (DCGAN: 2e-2 of an update; the dogs' 64x64 nets with 4 base maps: 6e-2),
and two devices stay inside that (measured 4e-5 and 4e-2). A control (SGAN with each replica's own
feature means: a distance of means is not the mean of distances) lands 100x outside.
"""

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

RESULT_TAG = "RESULT "
KINDS = ("dcgan", "wgan", "wgan-gp", "sgan", "pggan", "dogs")
STEPS = 2
# SGD; from 3e-3 on, the dogs' smoke nets reach a state after one step where a 1e-6 relative change
# of the weights moves the next update by 20% (measured), which blurs any comparison
LR = 1e-3
PGGAN_PHASE = 1  # 8x8 fade-in: both levels, the blend and the minibatch-stddev block


def _pggan_order(n_global: int, replicas: int, group_size: int) -> list[int]:
    """Position -> image of the one-device batch whose minibatch-stddev groups (image i in group
    i mod M) are the replicas' groups (replica r's image r*n + q in its group q mod m)."""
    n = n_global // replicas
    m = n // min(group_size, n)
    big_m = replicas * m
    order = [0] * n_global
    for r in range(replicas):
        for j in range(m):
            for k in range(n // m):
                order[r * m + j + big_m * k] = r * n + j + m * k
    return order


def _equivalence(strategy) -> dict:
    import keras
    import numpy as np
    import tensorflow as tf

    from ganhelpers import distribute, pggan, run

    def build(kind, config):
        model = kind.build(config)
        if kind.name == "pggan":
            model.start_phase(PGGAN_PHASE)
            model.alpha.assign(0.5)
        model.d_optimizer, model.g_optimizer = keras.optimizers.SGD(LR), keras.optimizers.SGD(LR)
        model.prepare_distributed()
        return model

    def variables(model):
        return [v for net in (model.generator, model.discriminator)
                for v in net.trainable_variables + net.non_trainable_variables]

    def step_state(model):
        """Every variable a step reads or changes: the networks', the optimizers', the counters,
        ``rng`` and the loss trackers (the logs are running means), so a model set back to these
        values repeats its steps exactly."""
        found, seen = [], set()
        extra = [model.rng.state, *model.d_optimizer.variables, *model.g_optimizer.variables,
                 *model.checkpoint_items().values(), *(v for m in model.metrics for v in m.variables)]
        for v in variables(model) + extra:
            if isinstance(v, tf.Variable | keras.Variable) and id(v) not in seen:
                seen.add(id(v))
                found.append(v)
        return found

    def steps(model, batches, strategy_=None, compiled=None):
        """``train_step`` on each batch, traced once per kind of step (WGAN: with and without the
        generator update, in step 1 and 2); ``compiled`` keeps the traces for another run."""
        compiled = {} if compiled is None else compiled
        wgan = model.__class__.__name__.startswith("WGAN")
        logs = []
        for i, batch in enumerate(batches):
            update = i == 0 if wgan else None
            if update not in compiled:
                step = functools.partial(model.train_step, generator_update=update) if wgan else model.train_step
                compiled[update] = tf.function(step) if strategy_ is None else \
                    tf.function(lambda b, step=step: strategy_.run(step, args=(b,)))
            if strategy_ is None:
                out = compiled[update](batch)
            else:
                flat = tf.nest.flatten(batch)
                shares = tf.nest.pack_sequence_as(batch, list(distribute.per_replica_slices(strategy_, *flat)))
                out = compiled[update](shares)
                out = {k: np.mean([x.numpy() for x in strategy_.experimental_local_results(v)], axis=0)
                       for k, v in out.items()}
            logs.append({k: float(np.asarray(v).reshape(-1)[0]) for k, v in out.items()})
        return logs

    def delta_error(before, reference, other, paths):
        """The largest relative difference of two runs' weight changes (the weights after each, as
        arrays), and the weight where it is."""
        errors = []
        for b0, ws, wo, path in zip(before, reference, other, paths, strict=True):
            ds, do = ws - b0, wo - b0
            if np.abs(ds).max() > 0:
                # a change of a few float32 ulps of the value itself (a BatchNorm variance after two small
                # steps) cannot be compared more finely than its round-off: 1e-3 of 1e-3 of it, ~16 ulps
                floor = 1e-3 * np.abs(b0).max()
                errors.append((float(np.abs(do - ds).max() / max(np.abs(ds).max(), floor)), path))
        return max(errors), len(errors)

    references = {}  # name -> one device's run: (weights before, logs, weights after)

    def compare(name, config, control=None, probe_too=True, reference=None):
        """Two steps on one device, again on one device from weights changed by 1e-6 of themselves
        (the probe: the same model set back, its traces reused), and on the strategy's replicas.
        ``reference``: the name of an earlier comparison whose one-device run this one shares."""
        kind = run.model_kind(name)
        data = kind.load_data(config, None, download=False)
        keras.utils.set_random_seed(0)
        single = build(kind, config)
        with strategy.scope():
            mirrored = build(kind, config)
        before = [v.numpy() for v in variables(single)]
        for b0, vm in zip(before, variables(mirrored), strict=True):
            vm.assign(b0)
        if name == "pggan":
            mirrored.alpha.assign(single.alpha)
            res = single.resolution
            batch = pggan.batch_size_at(config, res)
            images = tf.constant(pggan.downscale(data["images"], res)[:STEPS * batch].astype("float32") / 127.5 - 1)
            batches = [images[i * batch:(i + 1) * batch] for i in range(STEPS)]
            order = tf.constant(_pggan_order(batch, 2, config["network"]["group_size"]))
            single_batches = [tf.gather(b, order) for b in batches]
            for draw in ("normal", "uniform"):  # every draw of the step is one row per image
                own = getattr(single, draw)
                setattr(single, draw, lambda *a, own=own, **k: tf.gather(own(*a, **k), order))
        else:
            it = iter(kind.dataset(config, data))
            batches = [next(it) for _ in range(STEPS)]
            single_batches = batches
        single.global_draws = True
        if reference is None:
            start, compiled = [v.numpy() for v in step_state(single)], {}
            logs_s = steps(single, single_batches, compiled=compiled)
            after_s = [v.numpy() for v in variables(single)]
            references[name] = (before, logs_s, after_s)
        else:
            ref_before, logs_s, after_s = references[reference]
            assert all(np.array_equal(a, b) for a, b in zip(ref_before, before, strict=True))  # the same start
        logs_p, after_p = logs_s, None
        if probe_too:
            # the probe: one device again, from weights changed by 1e-6 of themselves (round-off's size)
            for v, v0 in zip(step_state(single), start, strict=True):
                v.assign(v0)
            noise = np.random.default_rng(1)
            for b0, vp in zip(before, variables(single), strict=True):
                if b0.dtype.kind == "f" and "seed_generator" not in vp.path:
                    vp.assign((b0 * (1 + 1e-6 * noise.standard_normal(b0.shape))).astype(b0.dtype))
            logs_p = steps(single, single_batches, compiled=compiled)
            after_p = [v.numpy() for v in variables(single)]
        if control is not None:
            control()
        logs_m = steps(mirrored, batches, strategy)
        after_m = [v.numpy() for v in variables(mirrored)]
        paths = [v.path for v in variables(mirrored)]
        rel = lambda a, b: abs(a - b) / max(abs(a), 1e-3)  # noqa: E731
        loss_error, worst_loss = max((rel(s[k], m[k]), f"step {i + 1} {k}: {s[k]} vs {m[k]}")
                                     for i, (s, m) in enumerate(zip(logs_s, logs_m, strict=True)) for k in s)
        loss_conditioning = max(rel(s[k], p[k]) for s, p in zip(logs_s, logs_p, strict=True) for k in s)
        (error, worst), moved = delta_error(before, after_s, after_m, paths)
        (conditioning, _), _ = delta_error(before, after_s, after_p, paths) if probe_too else ((None, None), None)
        return {"replicas": strategy.num_replicas_in_sync, "loss_error": loss_error, "worst_loss": worst_loss,
                "max_relative_delta_error": error, "worst_weight": worst, "conditioning": conditioning,
                "loss_conditioning": loss_conditioning,
                "weights_moved": moved, "num_weights": len(before), "losses": logs_s[-1], "synchronized_bn": sorted({
                    bool(layer.synchronized) for net in (mirrored.generator, mirrored.discriminator)
                    for layer in net._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)})}

    def smoke(name):
        config = run.model_kind(name).config("smoke")
        if name == "sgan":
            config["discriminator"]["dropout"] = 0.3  # the Dropout layer's shared draw too
        return config

    out = {name: compare(name, smoke(name)) for name in KINDS}

    # the noise layers alone: Keras' draws the same rows on both replicas; ours the global batch's
    from ganhelpers import layers as our_layers

    zeros = tf.zeros((8, 3))
    noise = {}
    for label, layer_class in (("keras", keras.layers.GaussianNoise), ("ganhelpers", our_layers.GaussianNoise)):
        with strategy.scope():
            layer = layer_class(1.0, seed=3)
            layer.build(zeros.shape)
        state = layer.seed_generator.state.numpy()
        [shares] = [distribute.per_replica_slices(strategy, zeros)]
        halves = strategy.experimental_local_results(
            tf.function(lambda x, layer=layer: strategy.run(lambda y: layer(y, training=True), args=(x,)))(*shares))
        one = layer_class(1.0, seed=3)
        one.build(zeros.shape)
        one.seed_generator.state.assign(state)
        noise[label] = {"replicas_equal": bool(np.array_equal(halves[0].numpy(), halves[1].numpy())),
                        "equals_one_device": bool(np.allclose(np.concatenate([h.numpy() for h in halves]),
                                                              one(zeros, training=True).numpy()))}
    out["noise_layers"] = noise

    # control: SGAN's feature matching on each replica's own means (what it was before the fix)
    from ganhelpers import sgan

    shared_mean = sgan.global_batch_mean

    def local_means():
        sgan.global_batch_mean = lambda x: tf.reduce_mean(x, axis=0)

    try:
        out["sgan-local-means"] = compare("sgan", smoke("sgan"), control=local_means, probe_too=False,
                                          reference="sgan")
    finally:
        sgan.global_batch_mean = shared_mean
    return out


def start_two_devices(root: Path) -> dict:
    """Start the 2-device process in the background (``conftest.py`` does, as soon as the suite is
    collected, so that its minutes of tracing overlap the tests before this file's): a one-device
    process first trains an SGAN run to step 10 in ``root``, then this file as a script continues it
    and does both halves of the checks. Its output goes to files beside ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    out, err = root.parent / "two_devices.out", root.parent / "two_devices.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), str(root)],
                                cwd=Path(__file__).resolve().parents[1], stdout=stdout, stderr=stderr, env=_env())
    return {"proc": proc, "root": root, "out": out, "err": err}


@pytest.fixture(scope="module")
def two_devices(request, tmp_path_factory):
    """One process on 2 logical CPU devices does both halves of this file (TensorFlow is imported and
    split once): the equivalence above, and every kind trained through ``run.train`` (``_every_kind``),
    after a one-device process started an SGAN run that it continues."""
    started = getattr(request.config, "_two_devices", None) or start_two_devices(
        tmp_path_factory.mktemp("two_devices") / "model_data")
    proc = started["proc"]
    try:
        proc.wait(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
    stdout, stderr = started["out"].read_text(), started["err"].read_text()
    assert proc.returncode == 0, f"the 2-device process failed:\n{stdout[-3000:]}\n{stderr[-3000:]}"
    lines = [ln for ln in stdout.splitlines() if ln.startswith(RESULT_TAG)]
    assert lines, f"no result:\n{stdout[-3000:]}\n{stderr[-3000:]}"
    return {"root": started["root"], **json.loads(lines[-1][len(RESULT_TAG):])}


@pytest.fixture(scope="module")
def equivalence(two_devices):
    return two_devices["equivalence"]


@pytest.mark.parametrize("name", KINDS)
def test_two_steps_on_two_devices_match_one_device(equivalence, name):
    """Two devices differ from one by float32 round-off only (sums in another order, the all-reduce):
    their losses and weight changes are at least as close to one device's as one device's are to a
    run of its own from weights changed by 1e-6 of themselves (``conditioning``: what round-off can
    do in this state), and never further apart than 1e-4 (losses) and 1e-3 (weight changes) where
    that is smaller. The control below shows a different semantics lands far outside."""
    result = equivalence[name]
    assert result["replicas"] == 2
    assert result["weights_moved"] >= result["num_weights"] // 2, result  # both networks really trained
    assert result["conditioning"] < 0.1, result  # a state where a comparison can mean something
    assert result["loss_error"] < max(1e-4, result["loss_conditioning"]), result
    assert result["max_relative_delta_error"] < max(1e-3, result["conditioning"]), result
    assert all(np.isfinite(v) for v in result["losses"].values())


def test_batchnorm_is_synchronised_where_a_network_has_it(equivalence):
    # DCGAN's, WGAN's (DCGAN critic and generator), SGAN's generator, the dogs' DCGAN: global statistics
    for name in ("dcgan", "wgan", "sgan", "dogs"):
        assert equivalence[name]["synchronized_bn"] == [True], name
    assert equivalence["pggan"]["synchronized_bn"] == []  # pixel norm, no BatchNorm
    assert equivalence["wgan-gp"]["synchronized_bn"] == [True]  # its generator's; the critic has none


def test_noise_layers_draw_independent_noise_per_replica(equivalence):
    """Keras' GaussianNoise gives both replicas the same noise (the halves of the global batch would be
    correlated); ganhelpers' gives each its rows of the global batch's draw: one device's noise."""
    assert equivalence["noise_layers"]["keras"] == {"replicas_equal": True, "equals_one_device": False}
    assert equivalence["noise_layers"]["ganhelpers"] == {"replicas_equal": False, "equals_one_device": True}


def test_the_comparison_sees_a_different_semantics(equivalence):
    """The control: the same SGAN step with each replica's own feature means (a distance of means is
    not the mean of distances) is measurably not the one-device step."""
    control, sgan = equivalence["sgan-local-means"], equivalence["sgan"]  # the same SGAN, its probe's bounds
    assert control["loss_error"] > 10 * max(1e-4, sgan["loss_conditioning"]), control
    assert control["max_relative_delta_error"] > 10 * max(1e-3, sgan["conditioning"]), control


def _every_kind(root: str, strategy) -> dict:
    """Every model kind's smoke preset trained 4 steps through ``run.train`` on 2 logical CPU devices, and the
    SGAN run that one device started (``moved``) continued on 2."""
    from ganhelpers import run

    out = {}
    for name in run.model_names():
        r = run.train(run.model_kind(name).config("smoke"), "two", root=root, steps=4, strategy=strategy,
                      verbose=0).results
        out[name] = {k: r.get(k) for k in ("step", "replicas", "strategy", "final_losses", "images_seen")}
    moved = run.train(run.model_kind("sgan").config("smoke"), "moved", root=root, strategy=strategy, verbose=0)
    out["sgan-moved"] = {k: moved.results.get(k) for k in ("step", "replicas", "resumed_from")}
    return out


def _env() -> dict:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}


def _subprocess(*argv, timeout=900):
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, *argv], cwd=root, capture_output=True, text=True, timeout=timeout,
                          env=_env())
    assert proc.returncode == 0, f"{argv} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_every_model_kind_trains_on_two_devices_and_checkpoints_move_between_device_counts(two_devices):
    from types import SimpleNamespace

    from tensorboard.plugins.hparams import metadata as hp_metadata

    from ganhelpers import run, summaries

    root, kinds = two_devices["root"], two_devices["every_kind"]
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
    if sys.argv[1] == "--one-device":  # one device -> two: an SGAN run started on one CPU device to step 10
        from ganhelpers import run

        started = run.train(run.model_kind("sgan").config("smoke"), "moved", root=sys.argv[2], steps=10, verbose=0)
        assert started.results["replicas"] == 1
        started.run.release()
        sys.exit(0)
    # in its own process: TensorFlow here must not start before the split into 2 devices
    _subprocess(str(Path(__file__).resolve()), "--one-device", sys.argv[1])
    from ganhelpers import distribute

    # one strategy for the whole process: two MirroredStrategy objects share collective instance keys,
    # and synchronised BatchNorm's all-reduces then meet the other's ("Shape mismatch in the collective")
    two = distribute.make_strategy(devices=2)
    both = {"equivalence": _equivalence(two), "every_kind": _every_kind(sys.argv[1], two)}
    print(RESULT_TAG + json.dumps(both), flush=True)
