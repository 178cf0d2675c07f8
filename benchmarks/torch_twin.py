"""The DCGAN paper step in TensorFlow (Keras' convolutions, and the phase form) and in PyTorch, side
by side on the same CPU, with each one's fraction of the fp32 matmul peak.

    python benchmarks/torch_twin.py                     # this CPU as it is
    python benchmarks/torch_twin.py --isa avx2          # its vector units capped at AVX2 (see below)
    python benchmarks/torch_twin.py --rounds 4 --steps 10

The step is the same in both: Radford et al. 2015's networks at 64x64x3 (the ``paper`` DCGAN
preset: G 100 -> 512x4x4 -> 256 -> 128 -> 64 -> 3 with 4x4 transposed convolutions, BatchNorm and
ReLU; D its mirror with LeakyReLU 0.2, no BatchNorm on its first layer), batch 64, float32, BCE on
logits, Adam(2e-4, beta_1 0.5), and this project's three updates per step (``dcgan.DCGAN``): D on
the real batch, D on a fake batch (G forward only), G through D on 2 x batch noise vectors. The
batch is held in memory (no input pipeline in either), so the figure is the step's arithmetic.

Each case runs in a fresh process, and the cases of a round run one after the other, so a round's
ratios compare neighbours in time; the median over rounds is reported. Each process also times its
own framework's fp32 matmul (2048 x 2048); the step's GFLOP/s (analytic FLOPs, counted as
``benchmarks/train_step.py`` does) is reported as a fraction of the fastest of those matmuls in
the run, one yardstick for both frameworks.

``--isa avx2`` caps both frameworks' kernels at AVX2 (``ONEDNN_MAX_CPU_ISA=AVX2`` for oneDNN, which
both use for convolutions, and ``ATEN_CPU_CAPABILITY=avx2`` for PyTorch's own kernels): an
approximation of an AVX2-only laptop on an AVX-512 machine (same cores, caches and clocks; the ISA
cap is all that differs), not a measurement on one.

PyTorch is a benchmark-only peer: ``make bench`` installs it (requirements-bench.txt), ``make test``
does not; without it the script says so and times the TensorFlow cases only. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from ganhelpers.precision import speed_flags  # noqa: E402  (TensorFlow-free: flags only)

CASES = ("tf-keras", "tf-phases", "torch")
ISA_ENV = {"native": {}, "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}}


def _tf_case(conv: str, steps: int, batch: int, repeats: int = 3) -> dict:
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(HERE.parent))
    import tensorflow as tf
    from _peak import measure_matmul_peak
    from train_step import _time_fit, build_dcgan, dcgan_config, dcgan_step_flops

    # the ``paper`` preset: Radford et al.'s layout, the network _torch_networks builds (4x4 kernels,
    # a transposed-convolution projection and a convolution head; the ``full`` preset's 5x5 kernels
    # cost 25/16 of the FLOPs)
    config = dcgan_config("paper")
    config["data"]["batch_size"] = batch
    config["training"].update(precision="float32", jit_compile=False, steps_per_execution=steps, conv=conv)
    model = build_dcgan(config)
    real = tf.random.stateless_uniform((batch, 64, 64, 3), (1, 2), -1.0, 1.0)
    elapsed = _time_fit(model, real, steps, repeats)
    return {"images_per_s": batch * steps / elapsed, "flops_per_image": dcgan_step_flops(model.generator,
                                                                                        model.discriminator),
            "parameters": int(sum(v.numpy().size for net in (model.generator, model.discriminator)
                                  for v in net.trainable_weights)),  # torch's parameters(): trainable only
            "peak_gflops": measure_matmul_peak("float32")}


def _torch_networks(torch):
    nn = torch.nn

    def g_block(cin, cout, stride, pad):
        return [nn.ConvTranspose2d(cin, cout, 4, stride, pad, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]

    generator = nn.Sequential(*g_block(100, 512, 1, 0), *g_block(512, 256, 2, 1), *g_block(256, 128, 2, 1),
                              *g_block(128, 64, 2, 1), nn.ConvTranspose2d(64, 3, 4, 2, 1), nn.Tanh())
    discriminator = nn.Sequential(
        nn.Conv2d(3, 64, 4, 2, 1), nn.LeakyReLU(0.2, True),
        nn.Conv2d(64, 128, 4, 2, 1, bias=False), nn.BatchNorm2d(128), nn.LeakyReLU(0.2, True),
        nn.Conv2d(128, 256, 4, 2, 1, bias=False), nn.BatchNorm2d(256), nn.LeakyReLU(0.2, True),
        nn.Conv2d(256, 512, 4, 2, 1, bias=False), nn.BatchNorm2d(512), nn.LeakyReLU(0.2, True),
        nn.Conv2d(512, 1, 4, 1, 0), nn.Flatten())
    for module in list(generator.modules()) + list(discriminator.modules()):
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(module.weight, 0.0, 0.02)  # Radford et al.: N(0, 0.02)
    return generator, discriminator


def _torch_case(steps: int, batch: int, repeats: int = 3) -> dict:
    import torch

    torch.manual_seed(0)
    generator, discriminator = _torch_networks(torch)
    opt_d = torch.optim.Adam(discriminator.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(generator.parameters(), 2e-4, betas=(0.5, 0.999))
    bce = torch.nn.BCEWithLogitsLoss()
    real = torch.rand(batch, 3, 64, 64) * 2 - 1
    ones, zeros, ones2 = torch.ones(batch, 1), torch.zeros(batch, 1), torch.ones(2 * batch, 1)

    def step():
        opt_d.zero_grad(set_to_none=True)  # 1. D on the real batch
        bce(discriminator(real), ones).backward()
        opt_d.step()
        with torch.no_grad():  # 2. D on a fake batch; G forward only
            fake = generator(torch.randn(batch, 100, 1, 1))
        opt_d.zero_grad(set_to_none=True)
        bce(discriminator(fake), zeros).backward()
        opt_d.step()
        opt_g.zero_grad(set_to_none=True)  # 3. G through D on 2 x batch noise vectors
        bce(discriminator(generator(torch.randn(2 * batch, 100, 1, 1))), ones2).backward()
        opt_g.step()

    for _ in range(steps):  # warm-up, as the TensorFlow cases trace first
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        times.append(time.perf_counter() - start)
    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < 2.0:
        a @ b
        count += 1
    peak = 2 * n ** 3 * count / (time.perf_counter() - start) / 1e9
    parameters = sum(p.numel() for net in (generator, discriminator) for p in net.parameters())
    return {"images_per_s": batch * steps / min(times), "peak_gflops": peak, "torch": torch.__version__,
            "threads": torch.get_num_threads(), "parameters": int(parameters)}


def _run_case(case: str, steps: int, batch: int, isa: str) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", **ISA_ENV[isa]}
    out = subprocess.run([sys.executable, __file__, "--case", case, str(steps), str(batch)], env=env,
                         capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{case} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10, help="steps per timed call (default 10)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--isa", choices=tuple(ISA_ENV), default="native")
    args = parser.parse_args(argv)
    for name in ("rounds", "steps", "batch"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    try:
        import importlib.util

        has_torch = importlib.util.find_spec("torch") is not None
    except ValueError:
        has_torch = False
    cases = CASES if has_torch else CASES[:2]
    if not has_torch:
        print("PyTorch is not installed (make bench installs it): timing the TensorFlow cases only", flush=True)
    rounds, flops = [], None
    for r in range(args.rounds):
        row = {}
        for case in cases:
            row[case] = _run_case(case, args.steps, args.batch, args.isa)
            flops = row[case].get("flops_per_image", flops)
        rounds.append(row)
        line = ", ".join(f"{c} {row[c]['images_per_s']:.1f} images/s" for c in cases)
        print(f"round {r + 1}: {line}", flush=True)

    def median(values):
        values = sorted(values)
        return values[len(values) // 2]

    summary = {"benchmark": "torch_twin", "cpu_flags": speed_flags(), "isa": args.isa, "cores": os.cpu_count(),
               "batch": args.batch, "flops_per_image": flops, "rounds": rounds}
    # the yardstick: the fastest fp32 matmul any process of this run measured (TensorFlow's and
    # PyTorch's differ by up to 1.3x here; a framework's own slower one would flatter its step)
    peak = max(row[case]["peak_gflops"] for row in rounds for case in cases)
    summary["peak_gflops"] = peak
    for case in cases:
        rates = [row[case]["images_per_s"] for row in rounds]
        summary[case] = {"median_images_per_s": median(rates), "median_gflops": median(rates) * flops / 1e9,
                         "peak_fraction": median(rates) * flops / 1e9 / peak,
                         "own_matmul_gflops": median([row[case]["peak_gflops"] for row in rounds])}
        print(f"{case}: median {median(rates):.1f} images/s = {median(rates) * flops / 1e9:.0f} GFLOP/s, "
              f"{summary[case]['peak_fraction']:.2f} of the fp32 matmul peak ({peak:.0f} GFLOP/s: the fastest "
              f"2048^2 matmul of the run; its own framework's: {summary[case]['own_matmul_gflops']:.0f})")
    summary["parameters"] = {case: rounds[0][case]["parameters"] for case in cases}
    if len(set(summary["parameters"].values())) > 1:
        print(f"note: the networks' parameter counts differ: {summary['parameters']}")
    summary["phases_over_keras"] = median([row["tf-phases"]["images_per_s"] / row["tf-keras"]["images_per_s"]
                                           for row in rounds])
    if has_torch:
        for case in CASES[:2]:
            summary[f"{case}_over_torch"] = median([row[case]["images_per_s"] / row["torch"]["images_per_s"]
                                                    for row in rounds])
        summary["torch_version"] = rounds[0]["torch"]["torch"]
    print(f"CPU flags: {summary['cpu_flags']} (kernels capped at: {args.isa}); {summary['cores']} cores; median "
          f"ratios of neighbours: phases / keras {summary['phases_over_keras']:.2f}"
          + (f", keras / torch {summary['tf-keras_over_torch']:.2f}, phases / torch "
             f"{summary['tf-phases_over_torch']:.2f}" if has_torch else ""))
    print(json.dumps(summary))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--case"]:
        case, steps, batch = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        result = _torch_case(steps, batch) if case == "torch" else _tf_case(case.split("-")[1], steps, batch)
        print(json.dumps(result))
    else:
        main()
