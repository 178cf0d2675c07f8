"""What a workshop step costs besides its arithmetic: every option that could make a ``cpu`` preset
faster, each measured against the same baseline, in one run.

    python benchmarks/overheads.py                      # DCGAN's cpu preset (the demo)
    python benchmarks/overheads.py --model dogs --steps 60
    python benchmarks/overheads.py --isa avx2           # oneDNN capped at AVX2 (an AVX2 laptop's path)

Each case runs in a fresh process (thread settings and the bfloat16 policy are per process), one
after the other, for ``--rounds`` rounds, so a round's ratios compare neighbours in time; the
median ratio over rounds is reported. The cases, on the preset's own model and data:

* ``memory``: ``fit`` on one batch held in memory (``from_tensors(batch).repeat()``): the step's
  arithmetic and Keras' per-step work, nothing else. The baseline of every ratio.
* ``keras``: ``memory`` with Keras' own convolution layers (``training.conv = "keras"``) instead of
  the default's choice on this machine (``auto``; ``ganhelpers.layers.resolve_conv``).
* ``pipeline``: ``fit`` on the preset's own ``tf.data`` pipeline (``kind.dataset``): the input cost.
* ``iterate``: that pipeline iterated alone, no model: what producing one batch costs by itself
  (milliseconds per batch, beside ``memory``'s milliseconds per step).
* ``xla``: ``memory`` with ``training.jit_compile = True``.
* ``bf16``: ``memory`` with ``training.precision = "mixed_bfloat16"``.
* ``spe10``: ``memory`` with ``training.steps_per_execution = 10`` (fewer Python round trips).
* ``intra1`` / ``inter1``: ``memory`` with TensorFlow's intra-op / inter-op pool at 1 thread
  (the default is one per core for both).
* ``run``: ``run.train`` itself: the pipeline, every callback (losses.csv, TensorBoard, fixed-noise
  snapshots, checkpoints, plots, the GIF) and the run loop. Each callback's hooks are timed
  (per step: ``on_train_batch_*``; per epoch: ``on_epoch_*``; once: ``on_train_*``).

Every case reports the cold call (``--steps`` steps including the trace, what a student waits for)
and the warm rate (the same steps again, traced). The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
CASES = ("memory", "keras", "pipeline", "iterate", "xla", "bf16", "spe10", "intra1", "inter1", "run")
ISA_ENV = {"native": {}, "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2"}}
HOOKS = ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_train_batch_begin",
         "on_train_batch_end")


def _config(model: str, case: str) -> dict:
    from ganhelpers.run import model_kind

    config = model_kind(model).config("cpu")
    t = config.setdefault("training", {})
    if case == "xla":
        t["jit_compile"] = True
    elif case == "bf16":
        t["precision"] = "mixed_bfloat16"
    elif case == "spe10":
        t["steps_per_execution"] = 10
    elif case == "keras":
        t["conv"] = "keras"
    return config


def _timed_callbacks(seconds: dict) -> None:
    """Time every hook of every callback ``fit`` is given (Keras' CallbackList calls the instance's)."""
    import keras

    original = keras.callbacks.CallbackList.__init__

    def wrap(callback):
        name = type(callback).__name__
        for hook in HOOKS:
            method = getattr(callback, hook, None)
            if method is None or getattr(method, "_timed", False):
                continue

            def timed(*args, _method=method, _key=(name, hook), **kwargs):
                start = time.perf_counter()
                try:
                    return _method(*args, **kwargs)
                finally:
                    seconds[_key] += time.perf_counter() - start

            timed._timed = True
            setattr(callback, hook, timed)

    def init(self, callbacks=None, *args, **kwargs):
        for callback in callbacks or []:
            wrap(callback)
        original(self, callbacks, *args, **kwargs)

    keras.callbacks.CallbackList.__init__ = init


def _case(model: str, case: str, steps: int) -> dict:
    import tensorflow as tf

    if case == "intra1":
        tf.config.threading.set_intra_op_parallelism_threads(1)
    elif case == "inter1":
        tf.config.threading.set_inter_op_parallelism_threads(1)
    sys.path.insert(0, str(HERE.parent))
    from ganhelpers import run as run_mod
    from ganhelpers.run import model_kind

    kind = model_kind(model)
    config = _config(model, case)
    if case == "run":
        seconds = defaultdict(float)
        _timed_callbacks(seconds)
        root = Path(tempfile.mkdtemp(prefix="overheads-"))
        start = time.perf_counter()
        result = run_mod.train(config, "cold", root=root, steps=steps, verbose=0)
        cold = time.perf_counter() - start
        epochs = int(result.results["epoch"])
        hooks = defaultdict(float)
        for (name, hook), s in seconds.items():
            hooks[f"{name}.{'step' if 'batch' in hook else 'epoch' if 'epoch' in hook else 'once'}"] += s
        return {"cold_seconds": cold, "train_seconds": result.results["train_seconds"], "steps": steps,
                "epochs": epochs, "callback_seconds": dict(hooks)}
    run_mod.seed_everything(config.get("seed", 0))
    data = kind.load_data(config, None, download=False)
    dataset = kind.dataset(config, data)
    if case == "iterate":
        it = iter(dataset)
        passes = []
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(steps):
                next(it)
            passes.append(time.perf_counter() - start)
        return {"iterate_ms_per_batch": 1000 * min(passes[1:]) / steps, "first_pass_ms_per_batch":
                1000 * passes[0] / steps, "steps": steps}
    model_ = kind.build(config)
    if case != "pipeline":
        dataset = tf.data.Dataset.from_tensors(next(iter(dataset))).repeat()
    spe = config["training"].get("steps_per_execution", 1)
    n = steps // spe * spe
    start = time.perf_counter()
    model_.fit(dataset, epochs=1, steps_per_epoch=n, verbose=0)
    cold = time.perf_counter() - start
    warm = []
    for _ in range(2):
        start = time.perf_counter()
        model_.fit(dataset, epochs=1, steps_per_epoch=n, verbose=0)
        warm.append(time.perf_counter() - start)
    return {"cold_seconds": cold * steps / n, "warm_seconds": min(warm) * steps / n, "steps": steps,
            "batch": config["data"]["batch_size"]}


def _run_case(model: str, case: str, steps: int, isa: str) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", **ISA_ENV[isa]}
    out = subprocess.run([sys.executable, __file__, "--case", model, case, str(steps)], env=env,
                         capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{case} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    sys.path.insert(0, str(HERE.parent))
    from ganhelpers.precision import speed_flags

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="dcgan", help="a model kind whose cpu preset trains with fit (default dcgan)")
    p.add_argument("--steps", type=int, default=84, help="steps per timed call (default 84: 3 of the demo's epochs)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    p.add_argument("--isa", choices=tuple(ISA_ENV), default="native")
    args = p.parse_args(argv)
    for name in ("steps", "rounds"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    sys.path.insert(0, str(HERE.parent))
    from ganhelpers.run import model_kind, model_names

    if args.model not in model_names():
        p.error(f"--model must be one of {', '.join(model_names())}, got {args.model!r}")
    if model_kind(args.model).fit is not None and set(args.cases) - {"run"}:
        p.error(f"--model {args.model} trains with its own loop, not fit: only --cases run measures it")
    print(f"CPU flags: {speed_flags()} (oneDNN capped at: {args.isa}); {os.cpu_count()} cores; "
          f"{args.model} cpu preset, {args.steps} steps per call", flush=True)
    rounds = []
    for r in range(args.rounds):
        row = {}
        for case in args.cases:
            try:
                row[case] = _run_case(args.model, case, args.steps, args.isa)
            except RuntimeError as err:  # a case this machine cannot run (e.g. bfloat16 kernels under a cap)
                lines = [ln for ln in str(err).splitlines() if "Error" in ln or "message" in ln]
                row[case] = {"error": (lines[-1] if lines else str(err).splitlines()[0])[:300]}
                print(f"{case}: failed: {row[case]['error']}", flush=True)
        rounds.append(row)
        parts = [f"{c} cold {v['cold_seconds']:.1f} s" + (f" warm {v['warm_seconds']:.2f} s" if "warm_seconds" in v
                                                         else "") if "cold_seconds" in v else
                 f"{c} {v['iterate_ms_per_batch']:.2f} ms per batch" for c, v in row.items() if "error" not in v]
        print(f"round {r + 1}: " + ", ".join(parts), flush=True)

    summary = {"benchmark": "overheads", "model": args.model, "cpu_flags": speed_flags(), "isa": args.isa,
               "cores": os.cpu_count(), "steps": args.steps, "rounds": rounds}
    ok = [case for case in args.cases if all("error" not in row[case] for row in rounds)]
    if "iterate" in ok:
        alone = statistics.median_high([row["iterate"]["iterate_ms_per_batch"] for row in rounds])
        summary["iterate_ms_per_batch"] = alone
        line = f"iterate: the pipeline alone gives a batch every {alone:.2f} ms"
        if "memory" in ok:
            step = statistics.median_high([1000 * row["memory"]["warm_seconds"] / row["memory"]["steps"]
                                           for row in rounds])
            line += f" (memory's warm step: {step:.1f} ms)"
        print(line)
    if "memory" in ok:
        for case in ok:
            if case in ("memory", "iterate"):
                continue
            cold = statistics.median_high([row["memory"]["cold_seconds"] / row[case]["cold_seconds"] for row in rounds])
            summary[f"{case}_cold_speed"] = cold
            line = f"{case}: cold x{cold:.2f} of memory's speed"
            if "warm_seconds" in rounds[0][case]:
                warm = statistics.median_high([row["memory"]["warm_seconds"] / row[case]["warm_seconds"]
                                               for row in rounds])
                summary[f"{case}_warm_speed"] = warm
                line += f", warm x{warm:.2f}"
            print(line)
    if "run" in ok:
        last = rounds[-1]["run"]
        steps, epochs = last["steps"], max(last["epochs"], 1)
        for key, s in sorted(last["callback_seconds"].items(), key=lambda kv: -kv[1]):
            per = f"{1000 * s / steps:.1f} ms per step" if key.endswith(".step") else \
                f"{s / epochs:.2f} s per epoch" if key.endswith(".epoch") else f"{s:.2f} s once"
            print(f"  {key}: {s:.2f} s in all ({per})")
        total = sum(last["callback_seconds"].values())
        print(f"run: {last['cold_seconds']:.1f} s for {steps} steps ({epochs} epochs), of which callbacks "
              f"{total:.1f} s")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--case"]:
        model, case, steps = sys.argv[2], sys.argv[3], int(sys.argv[4])
        print(json.dumps(_case(model, case, steps)))
    else:
        sys.exit(main())
