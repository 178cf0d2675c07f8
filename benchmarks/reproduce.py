"""The mnist table: every generator's ``mnist`` preset trained on the real MNIST, judged, and timed.

    python benchmarks/reproduce.py --data-dir ../shared/datasets             # all of them
    python benchmarks/reproduce.py --data-dir ../shared/datasets --only real dcgan wgan-gp
    python benchmarks/reproduce.py --data-dir ../shared/datasets --sgan      # + benchmarks/sgan_mnist.py

``--data-dir`` is the folder holding ``mnist.npz`` (without it, Keras' file is downloaded into
``~/.keras/datasets``). Each generator (DCGAN, WGAN, WGAN-GP, PGGAN, and each dog variant of
``dogs.MNIST_VARIANTS``) trains its ``mnist`` preset through ``ganhelpers.run.train``; then
:func:`ganhelpers.evaluate.mnist_learning_check` judges 1,000 samples (seed 0): the share the MNIST
judge (a CNN trained on the 60,000 training images, >= 99% on the test set) classifies with
p >= 0.9 (bar: 80%), how many classes hold between 5% and 20% of the samples (bar: 10/10), and KID
against the 10,000 test images on the judge's features (mean ± std over 100 subsets of 1,000; its
scale is the features', 128-d ReLU activations with norms near 30, so the first row, 1,000 real
training digits, shows its floor).
Minutes are the runs' ``train_seconds`` (the wall clock of ``fit``, tracing and callbacks included;
summed over resumes, so an interrupted benchmark run again continues). A sample grid per model goes
to ``docs/mnist_<model>.png``. None of the generators' papers reports a figure on MNIST samples: the
paper column is filled for the SGAN reproduction only (Salimans et al. 2016: 0.93% test error with
100 labels), from ``benchmarks/sgan_mnist.py`` when it exists (``--sgan``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from ganhelpers import dogs, evaluate, images  # noqa: E402
from ganhelpers.precision import speed_flags  # noqa: E402
from ganhelpers.run import model_kind, restore_model, train  # noqa: E402

GENERATORS = ("dcgan", "wgan", "wgan-gp", "pggan", "dogs")


def judge_row(label: str, model, minutes: float, data_dir, docs: Path | None, grid_name: str, extra: str = "") -> dict:
    """Judge 1,000 samples of ``model``; write its grid; return the table row."""
    samples = model.sample(1000, seed=0)
    report = evaluate.mnist_learning_check(samples, data_dir=data_dir)
    if docs is not None:
        images.save_grid(docs / f"mnist_{grid_name}.png", samples[:64], ncols=8)
    print(report["summary"], flush=True)
    return {"model": label, "confident": report["confident_fraction"], "in_range": report["classes_in_range"],
            "kid": report["kid"], "kid_std": report["kid_std"], "passes": report["passes"],
            "shares": report["class_shares"], "minutes": minutes, "paper": "—", "extra": extra}


def reference_row(data_dir) -> dict:
    """The judge on 1,000 real training digits (the first): the figures a perfect generator would get,
    KID's floor at 1,000 samples on the judge's features among them."""
    from ganhelpers.data import mnist_padded

    real = mnist_padded(data_dir, 32, 1)["x_train"][:1000].astype("float32") / 127.5 - 1.0
    report = evaluate.mnist_learning_check(real, data_dir=data_dir)
    print(report["summary"], flush=True)
    return {"model": "real MNIST training digits", "confident": report["confident_fraction"],
            "in_range": report["classes_in_range"], "kid": report["kid"], "kid_std": report["kid_std"],
            "passes": report["passes"], "shares": report["class_shares"], "minutes": None, "paper": "—",
            "extra": "reference: the first 1,000 training images"}


def run_generator(name: str, root: Path, data_dir, docs: Path | None) -> list[dict]:
    if name == "dogs":
        rows = []
        table = dogs.run_comparison(dogs.MNIST_VARIANTS, "mnist", comparison="mnist", root=root, data_dir=data_dir,
                                    download=data_dir is None, verbose=2)
        for r in table:
            model = restore_model(Path(r["run_dir"]))
            rows.append(judge_row(f"dogs {r['variant']}", model, r["train_seconds"] / 60, data_dir, docs,
                                  f"dogs_{r['variant']}", extra=f"rank {r['rank']} by {table.by.upper()} "
                                  f"{r.get(table.by) if r.get(table.by) is None else format(r[table.by], '.4g')}"))
        return rows
    config = model_kind(name).config("mnist")
    result = train(config, "mnist", root=root, data_dir=data_dir, download=data_dir is None, verbose=2)
    minutes = result.results["train_seconds"] / 60
    return [judge_row(name, result.model, minutes, data_dir, docs, name,
                      extra=f"{result.results['step']} steps")]


def run_sgan(data_dir) -> list[dict]:
    """The SGAN reproduction's own benchmark, when it exists: its last stdout line is JSON with
    ``test_accuracy`` (and optionally ``test_accuracy_std``, ``minutes``, ``num_labels``)."""
    script = HERE / "sgan_mnist.py"
    if not script.is_file():
        print(f"{script.name} not found: no SGAN row", flush=True)
        return []
    args = [sys.executable, str(script)] + (["--data-dir", str(data_dir)] if data_dir else [])
    out = subprocess.run(args, capture_output=True, text=True, check=False)
    print(out.stdout[-2000:], out.stderr[-2000:], sep="\n", flush=True)
    try:
        r = json.loads(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return [{"model": "sgan", "text": f"{script.name} gave no JSON line (exit {out.returncode})"}]
    acc = f"test accuracy {100 * r['test_accuracy']:.2f}%" + (
        f" ± {100 * r['test_accuracy_std']:.2f}" if r.get("test_accuracy_std") is not None else "")
    return [{"model": "sgan", "text": f"{acc} ({r.get('num_labels', 100)} labels)",
             "minutes": r.get("minutes"), "paper": "99.07% (0.93% error, 100 labels)"}]


def markdown(rows: list[dict]) -> str:
    lines = ["| model | % of 1,000 samples with p ≥ 0.9 | classes within 5%-20% | KID vs test set (± std) "
             "| passes | minutes | paper | notes |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        minutes = "—" if r.get("minutes") is None else f"{r['minutes']:.1f}"
        if "text" in r:
            lines.append(f"| {r['model']} | {r['text']} | | | | {minutes} | {r.get('paper', '—')} | |")
            continue
        shares = f"{r['in_range']}/10 (min {100 * min(r['shares']):.1f}%, max {100 * max(r['shares']):.1f}%)"
        lines.append(f"| {r['model']} | {100 * r['confident']:.1f}% | {shares} | {r['kid']:.4f} ± {r['kid_std']:.4f} | "
                     f"{'yes' if r['passes'] else 'no'} | {minutes} | {r['paper']} | {r['extra']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None, help="folder holding mnist.npz (default: download with Keras)")
    p.add_argument("--only", nargs="+", choices=("real",) + GENERATORS, default=None,
                   help="some rows only ('real': the reference row of real training digits)")
    p.add_argument("--sgan", action="store_true", help="also run benchmarks/sgan_mnist.py (the SGAN reproduction)")
    p.add_argument("--root", default=None, help="model_data folder for the runs (default: a temporary one)")
    p.add_argument("--docs", default=str(HERE.parent / "docs"), help="where the sample grids go ('' for none)")
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = p.parse_args(argv)
    root = Path(args.root) if args.root else Path(tempfile.mkdtemp(prefix="reproduce-"))
    docs = Path(args.docs) if args.docs else None
    _, accuracy = evaluate.mnist_judge(args.data_dir)
    print(f"CPU flags: {speed_flags()}; {os.cpu_count()} cores; MNIST judge {accuracy:.2%} on the test set; "
          f"runs under {root}", flush=True)
    rows = [reference_row(args.data_dir)] if not args.only or "real" in args.only else []
    for name in GENERATORS:
        if args.only and name not in args.only:
            continue
        rows += run_generator(name, root, args.data_dir, docs)
        print(markdown(rows[-1:]).splitlines()[-1], flush=True)
    if args.sgan:
        rows += run_sgan(args.data_dir)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    print(f"\nCPU flags: {speed_flags()}; {os.cpu_count()} cores; MNIST judge {accuracy:.2%} on the test set")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
