"""The workshop table: every notebook's ``cpu`` preset trained on this machine, with its learning
figure and its minutes.

    python benchmarks/workshop.py                       # all of them (about an hour on 2 cores)
    python benchmarks/workshop.py --only dcgan sgan     # some of them
    python benchmarks/workshop.py --isa avx2            # TensorFlow's kernels capped at AVX2

``--isa avx2`` sets ``ONEDNN_MAX_CPU_ISA=AVX2`` before TensorFlow loads (the script starts itself
again with it): on an AVX-512 machine an approximation of an AVX2-only laptop (the same cores; the
kernels' code path is what differs), not a measurement on one; the cap is printed with the flags.

Learning figures: for the generators (DCGAN, WGAN, WGAN-GP, PGGAN) the demo's check, a digit
classifier trained on the real digits (held-out accuracy printed) judging 500 samples: the share
it recognises with p >= 0.9 and how many of the 10 classes those cover; for the SGAN its test
accuracy against the supervised baseline on the same 50 labels; for the dog variants their ranking
by FID on the digit classifier's features. Each row also writes a sample grid to
``docs/workshop_<model>.png`` (``--docs``). Minutes are the runs' ``train_seconds`` (the wall clock
of ``fit``: tracing and callbacks included, summed over resumes, so an interrupted benchmark run
again continues); the CPU flags that matter are printed with them.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if "--isa" in sys.argv[1:-1] and sys.argv[sys.argv.index("--isa") + 1] == "avx2" \
        and os.environ.get("ONEDNN_MAX_CPU_ISA") != "AVX2":  # before TensorFlow loads: start again with the cap
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"})
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ganhelpers import dogs, evaluate, images  # noqa: E402
from ganhelpers.precision import speed_flags  # noqa: E402
from ganhelpers.run import model_kind, train  # noqa: E402

ROWS = (("01 DCGAN", "dcgan"), ("02 WGAN (clipping)", "wgan"), ("02 WGAN-GP", "wgan-gp"), ("03 SGAN", "sgan"),
        ("04 PGGAN", "pggan"), ("05 dog variants", "dogs"))


def digit_check(model, classifier) -> str:
    report = evaluate.digit_report(classifier, model.sample(500, seed=0))
    return (f"{report['confident_fraction']:.0%} of 500 samples recognised (p >= 0.9), "
            f"{report['classes_covered']}/10 classes")


def run_one(model_name: str, root: Path, docs: Path | None, classifier) -> tuple[str, float]:
    if model_name == "dogs":
        table = dogs.run_comparison(dogs.CPU_VARIANTS, "cpu", comparison="workshop", root=root, verbose=2)
        minutes = sum(r["train_seconds"] for r in table) / 60
        by = table.by  # the cpu preset's rank_by: KID (500 samples: FID is biased there)
        figure = f"ranked by {by.upper()} ({table[0].get('metrics_network') or table[0].get('fid_extractor')}): " + \
            ", ".join(f"{r['rank']}. {r['variant']} {r[by]:.4g}" for r in table)
        from ganhelpers.run import restore_model

        model = restore_model(Path(table[0]["run_dir"]))  # the best-ranked variant's generator
    else:
        config = model_kind(model_name).config("cpu")
        result = train(config, "workshop", root=root, verbose=2)
        # train_seconds adds up over resumes (an interrupted benchmark continues where it stopped)
        minutes = result.results["train_seconds"] / 60
        model = result.model
        if model_name == "sgan":
            r = result.results
            figure = (f"test accuracy {r['sgan_test_accuracy']:.1%} vs baseline {r['baseline_test_accuracy']:.1%} "
                      f"({r['num_labels']} labels)")
        else:
            figure = digit_check(model, classifier)
    if docs is not None:
        images.save_grid(docs / f"workshop_{model_name}.png", model.sample(36, seed=0), ncols=6)
    return figure, minutes


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", choices=[m for _, m in ROWS], default=None)
    p.add_argument("--root", default=None, help="model_data folder for the runs (default: a temporary one)")
    p.add_argument("--docs", default=str(Path(__file__).resolve().parents[1] / "docs"),
                   help="where the sample grids go ('' for none)")
    p.add_argument("--isa", choices=("native", "avx2"), default="native",
                   help="avx2: cap TensorFlow's oneDNN kernels at AVX2 (an AVX2 laptop's code path)")
    args = p.parse_args(argv)
    root = Path(args.root) if args.root else Path(tempfile.mkdtemp(prefix="workshop-"))
    docs = Path(args.docs) if args.docs else None
    classifier, accuracy = evaluate.cached_digit_classifier(None, 32, 1)
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "none")
    print(f"CPU flags: {speed_flags()} (oneDNN capped at: {cap}); {os.cpu_count()} cores; digit classifier held-out "
          f"accuracy {accuracy:.1%}")
    lines = ["| notebook | `cpu` preset learns | minutes |", "|---|---|---|"]
    for label, name in ROWS:
        if args.only and name not in args.only:
            continue
        figure, minutes = run_one(name, root, docs, classifier)
        lines.append(f"| {label} | {figure} | {minutes:.1f} |")
        print(lines[-1], flush=True)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
