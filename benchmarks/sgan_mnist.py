"""The SGAN reproduction of Salimans et al. 2016 (section 5, MNIST, 100 labels): the ``full`` preset
trained through the run loop on the real MNIST, one run per label seed, and one table.

    python benchmarks/sgan_mnist.py --data-dir ../shared/datasets --seeds 0 1 2 --epochs 15
    python benchmarks/sgan_mnist.py --validation 10000 --seeds 0 --epochs 15   # choosing settings
    python benchmarks/sgan_mnist.py --sweep 2 5 10 20 all --epochs 2           # notebook 03's sweep

``--validation N`` trains on the first 60,000 - N training images and reports the accuracy on the
last N, every epoch (the protocol: settings are chosen there). Without it the runs train on all
60,000 and look at the test set once, at the end (no per-epoch test accuracy). The table: accuracy
per seed (D's averaged weights, the figure the preset reports, and D's own), mean and sample std,
the paper's 99.07% (0.93% error) beside it, minutes of training, and the CPU's flags. The results
also go to ``<root>/sgan_mnist/<name>/results.json``. ``--sweep`` trains one SGAN and its baseline per
number of labels per class (``all``: every label; seed ``--seeds[0]``) and prints test accuracy
against labels; ``--plot FILE.png`` draws it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's ganhelpers, installed or not

import numpy as np  # noqa: E402

from ganhelpers import sgan  # noqa: E402
from ganhelpers.precision import speed_flags  # noqa: E402

PAPER_ACCURACY = 1.0 - 0.0093  # Salimans et al. 2016, table 1: 93 +- 6.5 errors per 10,000 with 100 labels


def config_for(epochs: int, validation: int, data_dir: str | None, average_decay: float | None,
               keep_checkpoints: int | None = None) -> dict:
    config = sgan.sgan_config("full")
    if keep_checkpoints is not None:  # every checkpoint of a long run, for --checkpoint-epoch to choose from
        config["training"]["keep_checkpoints"] = keep_checkpoints
    config["data"]["validation"] = validation
    if data_dir:
        # absolute: a run resumed from another folder, or with ../x for /y/x, names the same file
        # (a different data.path is a change of data, which resuming refuses)
        config["data"]["path"] = str(Path(data_dir).resolve() / "mnist.npz")
    config["training"]["epochs"] = epochs
    config["sgan"]["evaluate_each_epoch"] = bool(validation)  # the test set: once, at the end
    if average_decay is not None:
        config["sgan"]["average_decay"] = average_decay
    return config


def table(summary: dict, split: str) -> str:
    """Per seed: D's own weights, D's weight average (the preset reports the one its
    ``sgan.evaluate_average`` names), the baseline on the same labels, minutes; mean +- sample std."""
    own, avg = summary[f"sgan_{split}_accuracy_own_weights"], summary[f"sgan_{split}_accuracy_averaged"]
    base = summary[f"baseline_{split}_accuracy"]
    std = (lambda v: float(np.std(v, ddof=1))) if len(own) > 1 else (lambda v: 0.0)
    rows = [f"| seed | SGAN {split} accuracy, D's own weights | D's weight average | baseline (same labels) | "
            "minutes |", "|---|---|---|---|---|"]
    for s, o, a, b, t in zip(summary["seeds"], own, avg, base, summary["train_seconds"], strict=True):
        rows.append(f"| {s} | {o:.2%} | {a:.2%} | {b:.2%} | {t / 60:.1f} |")
    rows.append(f"| mean +- std | {np.mean(own):.2%} +- {std(own):.2%} | {np.mean(avg):.2%} +- {std(avg):.2%} | "
                f"{np.mean(base):.2%} +- {std(base):.2%} | {sum(summary['train_seconds']) / 60:.1f} total |")
    rows.append(f"| Salimans et al. 2016 (test, 100 labels, 300 epochs) | {PAPER_ACCURACY:.2%} | | | |")
    return "\n".join(rows)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="label seeds (config seed)")
    parser.add_argument("--epochs", type=int, default=15, help="epochs of 600 steps (the paper: 300)")
    parser.add_argument("--validation", type=int, default=0, help="last N training images as the evaluation split")
    parser.add_argument("--data-dir", default=None, help="a folder holding mnist.npz (default: Keras' download)")
    parser.add_argument("--average-decay", type=float, default=None, help="D's weight average (preset: 0.999)")
    parser.add_argument("--keep-checkpoints", type=int, default=None,
                        help="checkpoints each run keeps (one every 5 epochs; preset: 3)")
    parser.add_argument("--root", default="model_data", help="where the run folders go")
    parser.add_argument("--name", default=None, help="run name prefix (default: test or validation)")
    parser.add_argument("--sweep", nargs="+", default=None, help="labels per class to sweep, 'all' = every label")
    parser.add_argument("--collect", action="store_true", help="train nothing: the table of runs already trained")
    parser.add_argument("--checkpoint-epoch", type=int, default=None,
                        help="with --collect: evaluate each seed's checkpoint saved after this many epochs (the "
                             "budget chosen on validation) instead of the end of the run")
    parser.add_argument("--plot", default=None, help="with --sweep: save the accuracy-vs-labels plot here")
    parser.add_argument("--curve", default=None,
                        help="with --validation: save the first seed's accuracy and feature-matching loss per "
                             "epoch here (a .png)")
    args = parser.parse_args(argv)

    if args.keep_checkpoints is not None and args.keep_checkpoints < 1:
        parser.error(f"--keep-checkpoints must be at least 1, got {args.keep_checkpoints}")
    if args.epochs < 1:
        parser.error(f"--epochs must be at least 1, got {args.epochs}")
    if not 0 <= args.validation < 60000:
        parser.error(f"--validation must lie in [0, 60000), got {args.validation}")
    if args.checkpoint_epoch is not None and not 0 < args.checkpoint_epoch <= args.epochs:
        parser.error(f"--checkpoint-epoch must lie in [1, --epochs={args.epochs}], got {args.checkpoint_epoch}")
    config = config_for(args.epochs, args.validation, args.data_dir, args.average_decay, args.keep_checkpoints)
    split = sgan.evaluation_split(config)
    name = args.name or split
    if args.sweep:
        return sweep(config, [None if n == "all" else int(n) for n in args.sweep], args, split)
    start = time.perf_counter()
    if not args.collect:
        sgan.run_seeds(config, seeds=args.seeds, root=args.root, run_name=name, tensorboard=False, verbose=2)
    summary = collect(Path(args.root) / config["experiment"], name, args.seeds, split)
    if args.checkpoint_epoch is not None:
        at_epoch(summary, config, Path(args.root) / config["experiment"], name, args.checkpoint_epoch, split)
    has_curve = bool(summary["per_epoch"][0])  # validation runs record one figure per epoch
    print(f"\nSGAN on MNIST, 100 labels, {args.epochs} epochs of {60000 - args.validation} images / 100, {split} "
          f"split ({time.perf_counter() - start:.0f} s wall here); CPU flags: {speed_flags()}; "
          f"{os.cpu_count()} cores\n")
    print(table(summary, split))
    if has_curve:
        print(f"\n{split} accuracy per epoch (D's own weights), seed {args.seeds[0]}: "
              + " ".join(f"{a:.4f}" for a in summary["per_epoch"][0]))
    if args.curve and has_curve:
        run_dir = Path(args.root) / config["experiment"] / f"{name}_seed{args.seeds[0]}"
        plot_curve(run_dir, split, (60000 - args.validation) // config["data"]["batch_size"], args.curve)
        print(f"curve: {args.curve}")
    # the last line, for benchmarks/reproduce.py --sgan: the chosen setting's figure as JSON (the weights
    # the preset's sgan.evaluate_average names: chosen on validation)
    averaged = bool(config["sgan"].get("evaluate_average"))
    chosen = summary[f"sgan_{split}_accuracy_{'averaged' if averaged else 'own_weights'}"]
    print(json.dumps({f"{split}_accuracy": float(np.mean(chosen)),
                      f"{split}_accuracy_std": float(np.std(chosen, ddof=1)) if len(chosen) > 1 else None,
                      "weights": "average" if averaged else "own",
                      "minutes": sum(summary["train_seconds"]) / 60, "num_labels": 100, "seeds": list(args.seeds)}))
    return summary


def epoch_means(losses_csv: Path, column: str, steps_per_epoch: int) -> list[float]:
    """The mean of ``column`` of a run's ``samples/losses.csv`` over each whole epoch's logged rows."""
    import csv

    rows = list(csv.DictReader(losses_csv.open()))
    means, epoch = [], 1
    while True:
        values = [float(r[column]) for r in rows
                  if (epoch - 1) * steps_per_epoch < int(r["step"]) <= epoch * steps_per_epoch]
        if not values or int(rows[-1]["step"]) < epoch * steps_per_epoch:
            return means
        means.append(float(np.mean(values)))
        epoch += 1


def plot_curve(run_dir: Path, split: str, steps_per_epoch: int, path: str) -> None:
    """Accuracy per epoch (D's own weights and its average) over the feature-matching loss per epoch
    (its epoch mean, log scale: a spike is where it jumps) of one validation run."""
    import matplotlib

    matplotlib.use("Agg")  # a script, not a library: no display here
    import matplotlib.pyplot as plt

    r = json.loads((run_dir / "results.json").read_text())
    own, avg = r[f"{split}_accuracy_per_epoch"], r.get(f"{split}_accuracy_averaged_per_epoch", [])
    fm = epoch_means(run_dir / "samples" / "losses.csv", "g_loss", steps_per_epoch)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 5), dpi=100, sharex=True)
    epochs = np.arange(1, len(own) + 1)
    top.plot(epochs, [100 * a for a in own], marker=".", label="D's own weights")
    if avg:
        top.plot(epochs[:len(avg)], [100 * a for a in avg], marker=".", label="D's weight average")
    top.axhline(100 * PAPER_ACCURACY, color="k", ls="--", lw=1, label="Salimans et al. 2016 (test, 300 epochs)")
    top.set_ylabel(f"{split} accuracy %"), top.set_ylim(70, 100), top.grid(alpha=0.3), top.legend(loc="lower right")
    bottom.semilogy(np.arange(1, len(fm) + 1), fm, marker=".", color="C3")
    bottom.set_ylabel("feature-matching loss\n(epoch mean)"), bottom.set_xlabel(f"epoch ({steps_per_epoch} steps)")
    bottom.grid(alpha=0.3)
    top.set_title(f"SGAN on MNIST, 100 labels, {run_dir.name}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def at_epoch(summary: dict, config: dict, experiment_dir: Path, name: str, epoch: int, split: str) -> None:
    """Replace the SGAN figures of ``summary`` by those of each seed's checkpoint after ``epoch`` epochs
    (``ckpt-<epoch x steps per epoch>``: the run loop keeps one every ``checkpoint_every_epochs``), each
    evaluated once on the run's evaluation split; the time becomes the run's time x epoch / epochs."""
    import tensorflow as tf

    raw = sgan.load_data(config)
    if config["data"].get("validation"):
        raw = sgan.split_validation(raw, config["data"]["validation"])
    per_epoch = (60000 - int(config["data"].get("validation") or 0)) // config["data"]["batch_size"]
    for i, s in enumerate(summary["seeds"]):
        model = sgan.build_sgan(dict(config, seed=s))
        path = experiment_dir / f"{name}_seed{s}" / "checkpoints" / f"ckpt-{epoch * per_epoch}"
        if not Path(f"{path}.index").is_file():
            raise FileNotFoundError(f"no checkpoint {path}: the runs keep one every "
                                    f"{config['training']['checkpoint_every_epochs']} epochs")
        tf.train.Checkpoint(**model.checkpoint_items()).restore(str(path)).expect_partial()
        summary[f"sgan_{split}_accuracy_own_weights"][i] = sgan.accuracy(model.classifier, raw["x_test"], raw["y_test"])
        with model.use_averaged_weights() as averaged:
            summary[f"sgan_{split}_accuracy_averaged"][i] = sgan.accuracy(averaged, raw["x_test"], raw["y_test"])
        summary["train_seconds"][i] *= epoch / config["training"]["epochs"]


def collect(experiment_dir: Path, name: str, seeds, split: str) -> dict:
    """The per-seed figures from each run's ``results.json`` (runs ``<name>_seed<k>``, trained here or
    by parallel invocations with one seed each)."""
    summary = {"seeds": list(seeds), "per_epoch": []}
    for s in seeds:
        r = json.loads((experiment_dir / f"{name}_seed{s}" / "results.json").read_text())
        for k in (f"sgan_{split}_accuracy_averaged", f"sgan_{split}_accuracy_own_weights",
                  f"baseline_{split}_accuracy", "train_seconds"):
            summary.setdefault(k, []).append(r[k])
        summary["per_epoch"].append(r.get(f"{split}_accuracy_per_epoch", []))
    return summary


def sweep(config: dict, per_class: list, args, split: str) -> list[dict]:
    config = dict(config, seed=args.seeds[0])
    start = time.perf_counter()
    rows = sgan.label_sweep(config, per_class, root=args.root, run_prefix=args.name or "sweep", epochs=args.epochs,
                            tensorboard=False, verbose=2)
    print(f"\nSGAN vs the supervised baseline on the same labels, MNIST, {args.epochs} epochs each (SGAN and "
          f"baseline), seed {args.seeds[0]}, {split} split ({time.perf_counter() - start:.0f} s wall); CPU flags: "
          f"{speed_flags()}; {os.cpu_count()} cores\n")
    print(f"| labels | SGAN {split} accuracy | baseline | minutes (SGAN) |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['num_labels']} | {r[f'sgan_{split}_accuracy']:.2%} | {r[f'baseline_{split}_accuracy']:.2%} | "
              f"{r['train_seconds'] / 60:.1f} |")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")  # a script, not a library: no display here
        import matplotlib.pyplot as plt

        n = [r["num_labels"] for r in rows]
        fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
        ax.semilogx(n, [100 * r[f"sgan_{split}_accuracy"] for r in rows], marker="o", label="SGAN (Salimans et al.)")
        ax.semilogx(n, [100 * r[f"baseline_{split}_accuracy"] for r in rows], marker="s",
                    label="baseline (labels only)")
        ax.set_xlabel("labelled images"), ax.set_ylabel(f"{split} accuracy %")
        ax.set_title(f"MNIST, {args.epochs} epochs per run"), ax.grid(alpha=0.3), ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot)
        print(f"plot: {args.plot}")
    return rows


if __name__ == "__main__":
    main()
