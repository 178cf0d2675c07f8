"""The command line, all of it: ``python -m ganhelpers train | sample | gif | fid | eval | demo``
(``--help`` on each): every subcommand's parser and printing (the metric and data modules hold no
argparse and print nothing). ``python -m ganhelpers`` runs :func:`main` (``ganhelpers/__main__.py``).

Every command takes the run folder of every model: ``train`` records the model in config.yaml,
and ``sample``, ``gif`` and ``fid`` rebuild that model from it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import numpy as np

from .session import import_tensorflow

import_tensorflow()  # before .run imports it: TensorFlow's start-up lines stay off the terminal, others show

from .configs import option_number as _number  # noqa: E402
from .metrics.compute import (  # noqa: E402
    FEATURE_METRICS,
    IMAGE_METRICS,
    compute_metrics,
    expand_metric_names,
    load_npz,
)
from .metrics.prdc import PR_METRICS  # noqa: E402
from .run import model_names  # noqa: E402

DEFAULT_RUN = "default"


def _print_run(run, kind_name: str) -> None:
    print(f"run folder:  {run.dir}")
    print(f"TensorBoard: tensorboard --logdir {run.logs}")
    print(f"resume:      python -m ganhelpers train {kind_name} --run {run.name} --root {run.dir.parent.parent}")


def _train(args) -> int:
    from .experiment import DEFAULT_ROOT, open_run
    from .run import model_kind, set_value, train

    strategy = None
    if args.strategy or args.devices:
        from .distribute import make_strategy  # before TensorFlow runs anything: it may split the CPU

        try:
            strategy = make_strategy(args.strategy, args.devices)
        except (ValueError, RuntimeError) as err:
            raise SystemExit(f"error: --strategy/--devices: {err}") from None
    kind = model_kind(args.model)
    if args.preset not in kind.presets:
        raise SystemExit(f"{args.model} has no preset {args.preset!r}; presets: {', '.join(kind.presets)}")
    if args.variant is not None and not kind.variants:
        raise SystemExit(f"--variant is for the dog experiment (dogs); {args.model} has none")
    if args.variant is not None and args.variant not in kind.variants:
        raise SystemExit(f"unknown variant {args.variant!r}; variants: {', '.join(kind.variants)}")
    config = kind.config(args.preset, variant=args.variant) if kind.variants else kind.config(args.preset)
    for assignment in args.set or ():
        try:
            set_value(config, assignment)
        except ValueError as err:
            raise SystemExit(f"error: {err}") from None
    if args.precision:
        config.setdefault("training", {})["precision"] = args.precision
    from .configs import ConfigError, validate_config

    try:
        validate_config(config)
    except ConfigError as err:
        raise SystemExit(f"error: {err} (from --preset {args.preset} and --set)") from None
    run_name = args.run or (f"{DEFAULT_RUN}-{config['variant']}" if kind.variants else DEFAULT_RUN)
    root = Path(args.root) if args.root else DEFAULT_ROOT
    from .distribute import is_chief, worker_name

    chief = strategy is None or is_chief(strategy)
    run = None
    if chief:  # another worker of a multi-worker run writes nothing in the run folder (run.train)
        # refuses a changed model
        run = open_run(kind.experiment(config), run_name, config, root=root, fresh=args.fresh)
        _print_run(run, kind.name)
    result = train(config, run_name, run=run, root=root, fresh=args.fresh, steps=args.steps, data_dir=args.data_dir,
                   download=not args.no_download, verbose=2 if args.quiet else "auto", strategy=strategy)
    if not chief:
        print(f"{worker_name(strategy)}: trained to step {result.results['step']} with the others; the chief wrote "
              f"the run folder {result.run.dir}")
        return 0
    r = result.results
    if result.nothing_to_train:
        print(f"nothing to train: step {r['step']} of {result.total_steps} already done; "
              "a new --run or a larger --steps trains more")
    print(f"trained to step {r['step']} (epoch {r['epoch']}) in {r['train_seconds']:.0f} s in all"
          + (f" on {r['replicas']} replicas ({r['strategy']})" if r.get("replicas", 1) > 1 else ""))
    _print_run(result.run, kind.name)
    return 0


def _demo(args) -> int:
    from .callbacks import gif_path
    from .dcgan import dcgan_config
    from .run import train

    config = dcgan_config("demo")
    if args.precision:
        config["training"]["precision"] = args.precision
    model, run, _ = train(config, args.run, steps=args.steps, root=args.root, verbose=2 if args.quiet else "auto")
    if not args.no_check:
        from .evaluate import learning_check

        report = learning_check(model, run=run)  # into results.json (learning_check) and TensorBoard
        print(report["summary"])
    print(f"run folder: {run.dir}")
    print(f"GIF:        {gif_path(run)}")
    print(f"losses:     {run.samples / 'losses.png'}")
    print(f"TensorBoard: tensorboard --logdir {run.logs}")
    return 0


def _sample(args) -> int:
    from . import images
    from .run import restore_model

    run_dir = Path(args.run_dir)
    model = restore_model(run_dir)  # refuses links in the run folder, damaged configs, foreign indexes
    out = Path(args.out) if args.out else run_dir / "samples" / "single"
    out.mkdir(parents=True, exist_ok=True)
    batch = model.sample(args.n, seed=args.seed)
    for i, img in enumerate(batch):
        images.save_png(out / f"sample_{i:05d}.png", img)
    print(f"wrote {args.n} images of step {int(model.step.numpy())} (seed {args.seed}) to {out}")
    return 0


def _gif(args) -> int:
    from .callbacks import latent_walk, write_gif
    from .experiment import Run, check_run_folder
    from .run import restore_model

    run_dir = Path(args.run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise SystemExit(f"{run_dir} is not a run folder (no config.yaml): pass model_data/<experiment>/<run>")
    check_run_folder(run_dir)
    run = Run(dir=run_dir, experiment=run_dir.parent.name, name=run_dir.name)
    if args.walk:
        model = restore_model(run_dir)
        out = Path(args.out) if args.out else run.gifs / f"{run.experiment}-{run.name}-walk-seed{args.seed}.gif"
        path = latent_walk(model, out, frames=args.frames, seed=args.seed, fps=args.fps)
        print(f"wrote {path} ({args.frames} frames of a latent walk at step {int(model.step.numpy())})")
        return 0
    if not list(run.tmp.glob("step_*.png")):
        raise SystemExit(f"{run.tmp} holds no frames (step_*.png): train the run first")
    print(f"wrote {write_gif(run, fps=args.fps, max_frames=args.max_frames)}")
    return 0


def _fid(args) -> int:
    from .metrics.fid import fid
    from .metrics.inception import inception_extractor
    from .run import is_run_folder, restore_model

    sources = []
    for path in (args.path_a, args.path_b):
        if is_run_folder(path):
            model = restore_model(path)
            print(f"{path}: {args.n} samples from its generator at step {int(model.step.numpy())}")
            sources.append(model.sample(args.n, seed=0))
        else:
            sources.append(path)
    if all(isinstance(s, str) for s in sources):
        return fid_paths(args)
    extractor = inception_extractor(args.weights)
    print(f"extractor: {extractor.name} {extractor.note}".rstrip())
    value = fid(sources[0], sources[1], extractor=extractor, batch_size=args.batch, progress=True)
    print(f"FID: {value:.6g} {extractor.note}".rstrip())
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .run import model_kind

    parser = argparse.ArgumentParser(
        prog="python -m ganhelpers", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train, sample, animate and measure the GANs of ganhelpers: every command takes the run\n"
                    "folder of every model (--help on each).")
    sub = parser.add_subparsers(dest="command", required=True)

    lines = []
    for name in model_names():
        kind = model_kind(name)
        extra = f"; variants: {', '.join(kind.variants)}" if kind.variants else ""
        lines.append(f"  {name:8s} {kind.description}\n           presets: {', '.join(kind.presets)}{extra}")
    p = sub.add_parser("train", help="train a model into model_data/<experiment>/<run> (the same run resumes)",
                       description="Train MODEL into a run folder; re-running the same run resumes it.\n\nmodels:\n"
                       + "\n".join(lines), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", choices=model_names(), metavar="MODEL", help=f"one of {', '.join(model_names())}")
    p.add_argument("--preset", default="smoke", help="a preset of the model (default: smoke, a few steps)")
    p.add_argument("--variant", default=None, help="dogs only: the variant (default: dcgan1)")
    p.add_argument("--run", default=None, help="run name; the same name resumes (default: default)")
    p.add_argument("--root", default=None, help="model_data folder (default: $GANHELPERS_MODEL_DATA or ./model_data)")
    p.add_argument("--steps", type=_number(int, 0, False, "--steps"), default=None,
                   help="total train steps (default: the preset's budget)")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                   help="change a config value, parsed as YAML (repeatable): --set training.d_lr=1e-4")
    p.add_argument("--fresh", action="store_true", help="delete the run's checkpoints and logs and start again")
    p.add_argument("--precision", default=None, help="float32 (default) or mixed")
    p.add_argument("--data-dir", default=None, help="where datasets are downloaded and cached")
    p.add_argument("--no-download", action="store_true", help="fail instead of downloading a missing dataset")
    p.add_argument("--quiet", action="store_true", help="one line per epoch instead of a progress bar")
    p.add_argument("--devices", type=_number(int, 1, False, "--devices"), default=None,
                   help="train on N devices (MirroredStrategy): N GPUs, or N logical CPU devices without a GPU")
    p.add_argument("--strategy", choices=("default", "mirrored", "tpu", "multiworker"), default=None,
                   help="tf.distribute strategy (default: mirrored when --devices > 1, else one device); "
                   "tpu: a Colab TPU (untested on hardware); multiworker: several machines, each running this "
                   "command with its own TF_CONFIG (README: several machines)")
    p.set_defaults(fn=_train)

    p = sub.add_parser("demo", help="train a DCGAN on the offline digits (a few minutes on CPU)")
    p.add_argument("--run", default="demo", help="run name; the same name resumes (default: demo)")
    p.add_argument("--steps", type=_number(int, 0, False, "--steps"), default=None,
                   help="total train steps (default: the preset's epochs)")
    p.add_argument("--root", default=None, help="model_data folder (default: ./model_data)")
    p.add_argument("--precision", default=None, help="float32 (default) or mixed")
    p.add_argument("--quiet", action="store_true", help="one line per epoch instead of a progress bar")
    p.add_argument("--no-check", action="store_true", help="skip the learning check (a digit classifier "
                   "trained on the real digits judging 500 samples)")
    p.set_defaults(fn=_demo)

    p = sub.add_parser("sample", help="write N single PNGs from a run's newest checkpoint (any model)")
    p.add_argument("run_dir")
    p.add_argument("-n", type=_number(int, 0, True, "-n"), default=16, help="how many images (default 16)")
    p.add_argument("-o", "--out", default=None, help="output folder (default: RUN_DIR/samples/single)")
    p.add_argument("--seed", type=int, default=0, help="noise seed: the same seed draws the same images (default 0)")
    p.set_defaults(fn=_sample)

    p = sub.add_parser("gif", help="regenerate a run's GIF from its tmp/ frames, or draw a latent walk")
    p.add_argument("run_dir")
    p.add_argument("--fps", type=_number(float, 0, True, "--fps"), default=5.0, help="frames per second (default 5)")
    p.add_argument("--max-frames", type=_number(int, 2, False, "--max-frames"), default=100,
                   help="evenly thinned to at most this many (default 100)")
    p.add_argument("--walk", action="store_true", help="a latent walk from the newest checkpoint instead")
    p.add_argument("--frames", type=_number(int, 0, True, "--frames"), default=60,
                   help="frames of the walk (default 60)")
    p.add_argument("--seed", type=int, default=0, help="the walk's noise seed (default 0)")
    p.add_argument("-o", "--out", default=None, help="the walk's GIF (default: RUN_DIR/gifs/...-walk-seedS.gif)")
    p.set_defaults(fn=_gif)

    p = sub.add_parser("fid", help="FID between image folders, .npz statistics or run folders")
    p.add_argument("path_a", help="a folder of images, an .npz with mu and sigma, or a run folder")
    p.add_argument("path_b", help="a folder of images, an .npz with mu and sigma, or a run folder")
    p.add_argument("--weights", default="imagenet",
                   help="imagenet (Keras InceptionV3), none (random: plumbing only), or a file: "
                        "classify_image_graph_def.pb / inception-2015-12-05.tgz (published-comparable FID) "
                        "or Keras InceptionV3 weights (default: imagenet)")
    p.add_argument("--batch", type=_number(int, 0, True, "--batch"), default=50, help="images per batch (default: 50)")
    p.add_argument("-n", type=_number(int, 1, True, "-n"), default=1000,
                   help="samples drawn from a run folder's generator (default 1000)")
    p.set_defaults(fn=_fid)


    add_eval_parser(sub)  # eval REAL FAKE: FID, KID, precision/recall, SWD, MS-SSIM
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    # The CLI is an application: it sets up logging for the ganhelpers logger while it runs (library
    # code does not), and puts it back as it was when it returns (main() called from Python).
    pkg = logging.getLogger("ganhelpers")
    saved = (pkg.level, pkg.propagate)
    handler = None
    if not pkg.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        pkg.addHandler(handler)
        pkg.setLevel(logging.INFO)
        pkg.propagate = False  # TensorFlow may have given the root logger a handler: print once
    try:
        return _run(args)
    finally:
        if handler is not None:
            pkg.removeHandler(handler)
            pkg.setLevel(saved[0])
            pkg.propagate = saved[1]


def _run(args) -> int:
    from .callbacks import UnreadableCheckpoints, UnsafeCheckpointIndex
    from .configs import ConfigError
    from .data import ArchiveError, DownloadError
    from .experiment import ConfigMismatch, DamagedRunFile, RunLocked, UnsafeRunFolder
    from .metrics.inception import UnsafeGraph
    from .run import DiskFull, HistoryWithoutCheckpoint, TrainingInterrupted, WorkerLost

    try:
        return args.fn(args)
    except TrainingInterrupted as err:
        print(f"\n{err}", file=sys.stderr)
        return 130  # what a shell reports for Ctrl-C
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except (ConfigMismatch, RunLocked, UnreadableCheckpoints, UnsafeCheckpointIndex, UnsafeRunFolder, DamagedRunFile,
            HistoryWithoutCheckpoint, ConfigError, DiskFull, DownloadError, ArchiveError, UnsafeGraph,
            WorkerLost) as err:
        raise SystemExit(f"error: {err}") from None
    except (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError) as err:
        # bad input named by the code that found it (an empty folder, a wrong path, mixed image sizes):
        # one line, not a traceback; GANHELPERS_TRACEBACK=1 shows where it came from
        if os.environ.get("GANHELPERS_TRACEBACK"):
            raise
        raise SystemExit(f"error: {err} (GANHELPERS_TRACEBACK=1 shows the traceback)") from None



# -- python -m ganhelpers fid PATH_A PATH_B ------------------------------------------------------

def fid_paths(args) -> int:
    """``python -m ganhelpers fid PATH_A PATH_B [--weights imagenet|none|FILE] [--batch B]`` between two
    folders of images or ``.npz`` statistics (run folders are sampled by :func:`_fid`)."""
    from .metrics.fid import fid
    from .metrics.inception import inception_extractor

    for path in (args.path_a, args.path_b):
        if not Path(path).exists():
            raise SystemExit(f"{path} does not exist: pass a folder of images or an .npz of statistics")
    extractor = None
    needs_images = not (str(args.path_a).endswith(".npz") and str(args.path_b).endswith(".npz"))
    if needs_images:
        extractor = inception_extractor(args.weights)
        print(f"extractor: {extractor.name} {extractor.note}".rstrip())
    value = fid(args.path_a, args.path_b, extractor=extractor, batch_size=args.batch, progress=True)
    note = extractor.note if extractor is not None else ""
    print(f"FID: {value:.6g} {note}".rstrip())
    return 0


# -- python -m ganhelpers eval REAL FAKE ------------------------------------------------------

EVAL_METRICS = ("fid", "kid", "pr", "swd", "msssim")


def add_eval_parser(subparsers):
    """Register ``eval REAL FAKE [--features inception|digits|none] [--metrics fid kid pr swd msssim]
    [-n N]`` on an ``argparse`` sub-parser collection; returns the sub-parser."""
    from .configs import option_number

    p = subparsers.add_parser(
        "eval", help="FID, KID, precision/recall, SWD, MS-SSIM between two image sources",
        description="Metrics between REAL and FAKE. Each is a folder of images (one size), a run folder "
                    "(config.yaml + checkpoints/: draws N samples from its generator, seed 0), or an .npz: "
                    "'images' (every metric), 'features' of the chosen network (fid, kid, pr) or FID "
                    "statistics 'mu'/'sigma' (fid only). Prints one line per metric.")
    p.add_argument("real", help="folder of images, run folder, or .npz (images / features / mu+sigma)")
    p.add_argument("fake", help="folder of images, run folder, or .npz (images / features / mu+sigma)")
    p.add_argument("--features", choices=("inception", "digits", "none"), default="inception",
                   help="feature network: inception (ImageNet InceptionV3; needs its download), digits (the "
                        "digit classifier's penultimate layer; offline, for digit-like data), none (random "
                        "InceptionV3: plumbing only) (default: inception)")
    p.add_argument("--data-dir", default=None,
                   help="data folder whose models/ holds the cached digit classifier of --features digits "
                        "(trained there once if missing; default: $GANHELPERS_DATA or ~/.keras/datasets)")
    p.add_argument("--metrics", nargs="+", choices=EVAL_METRICS, default=list(EVAL_METRICS),
                   help="pr = precision, recall, density, coverage (default: all)")
    p.add_argument("-n", "--num-samples", type=option_number(int, 1, True, "-n"), default=None,
                   help="samples drawn from a run folder (default 1000); a folder or .npz with more "
                        "than N images/rows gives N of them, chosen at random (seeded) (default: all)")
    p.add_argument("--k", type=option_number(int, 0, True, "--k"), default=3,
                   help="neighbours of the k-NN manifolds (default: 3)")
    p.add_argument("--kid-subsets", type=option_number(int, 0, True, "--kid-subsets"), default=100,
                   help="KID: random subsets (default: 100)")
    p.add_argument("--kid-subset-size", type=option_number(int, 1, True, "--kid-subset-size"), default=None,
                   help="KID: rows per subset (default: 1000, or half the smaller side when that is less, "
                        "so the spread over subsets means something)")
    p.add_argument("--seed", type=int, default=0, help="seed of subsets, pairs, patches and run samples")
    p.add_argument("--batch", type=option_number(int, 0, True, "--batch"), default=100,
                   help="images per feature batch (default: 100)")
    p.set_defaults(fn=eval_cli)
    return p


def _folder_images(folder: Path) -> np.ndarray:
    """uint8 (N, H, W, C) of every readable image under ``folder``, decoded by the loaders' checked
    reader (:func:`ganhelpers.data.read_image`: decompression bombs and unreadable files are skipped
    with one warning naming them); mixed sizes are an error (1 channel when every file is
    grayscale, else RGB)."""
    from .data import image_header, list_images, read_image, warn_skipped

    paths = list_images(folder)
    headers, bad = {}, []
    for p in paths:
        try:
            headers[p] = image_header(p)
        except Exception as err:  # noqa: BLE001 - any decoder error means "skip this file"
            bad.append(f"{p} ({type(err).__name__}: {err})")
    sizes = {(w, h) for w, h, _ in headers.values()}
    if len(sizes) > 1:
        shown = ", ".join(f"{w}x{h}" for w, h in sorted(sizes)[:4])
        raise ValueError(f"eval: images under {folder} have mixed sizes ({shown}, ...): SWD and MS-SSIM compare "
                         "pixels at one size (at least 16x16 for SWD, 11x11 for MS-SSIM): resize them first")
    channels = 1 if {mode for _, _, mode in headers.values()} <= {"L", "1", "I", "I;16", "F"} else 3
    out = []
    for p in headers:
        try:
            out.append(read_image(p, channels))
        except Exception as err:  # noqa: BLE001 - a header that read but pixels that do not
            bad.append(f"{p} ({type(err).__name__}: {err})")
    warn_skipped(bad, len(paths))
    if not out:
        raise ValueError(f"eval: none of the {len(paths)} image files under {folder} could be read (first: {bad[0]})")
    return np.stack(out)


def _at_most(arr: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """``arr`` itself, or ``n`` of its rows chosen at random (seeded; files are often sorted by class)."""
    if not n or len(arr) <= n:
        return arr
    return arr[np.sort(np.random.default_rng(seed).choice(len(arr), n, replace=False))]


def _load_source(path: str, n: int | None, seed: int) -> dict:
    """{"kind", "images"|"features"|"mu"+"sigma", "extractor", "count"} of one CLI argument."""
    p = Path(path)
    if not p.exists():
        raise SystemExit(f"{path} does not exist: pass an image folder, a run folder or an .npz")
    if p.suffix == ".npz":
        try:
            z = load_npz(p)
        except ValueError as err:
            raise SystemExit(f"error: {err}") from None
        for key in ("images", "features"):
            if key in z:
                arr = _at_most(z[key], n, seed)
                return {"kind": f"npz of {key}", key: arr, "extractor": z["extractor"], "count": len(arr)}
        return {"kind": "npz of FID statistics", "mu": z["mu"], "sigma": z["sigma"], "extractor": z["extractor"],
                "count": int(z.get("num_images", -1))}
    from .run import is_run_folder, restore_model

    if is_run_folder(p):
        model = restore_model(p)
        count = n or 1000
        return {"kind": "run", "images": np.asarray(model.sample(count, seed=seed), np.float32), "count": count}
    images = _at_most(_folder_images(p), n, seed)
    return {"kind": "folder", "images": images, "count": len(images)}


def _features_of(source: dict, extractor, batch: int, side: str) -> np.ndarray | None:
    from .metrics.features import extract

    if "features" in source:
        if source["extractor"] not in (None, extractor.name):
            raise SystemExit(f"{side} features come from {source['extractor']}, not {extractor.name}: pass "
                             "--features for that network, or images")
        return source["features"]
    if "images" in source:
        return extract(source["images"], extractor, batch)
    return None


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def eval_cli(args) -> int:
    """``python -m ganhelpers eval``: prints a header naming the network and sample counts, then one
    line per metric (``FID: 12.34``, ``KID: 0.0123 ± 0.0011``, ``precision: 0.812``, ``recall: 0.640``,
    ``density: ...``, ``coverage: ...``, ``SWD: 32px 1.2e-3, 16px ..., mean ...``, ``MS-SSIM: ...``)."""
    from .metrics.features import describe, feature_extractor

    names = expand_metric_names(args.metrics)
    real = _load_source(args.real, args.num_samples, args.seed)
    fake = _load_source(args.fake, args.num_samples, args.seed)
    feature_names = [m for m in names if m in FEATURE_METRICS]
    only_stats = all("images" not in s and "features" not in s for s in (real, fake))
    for side, src in (("REAL", real), ("FAKE", fake)):
        if "mu" in src and any(m != "fid" for m in names):
            others = ", ".join(m for m in names if m != "fid")
            raise SystemExit(f"{side} is an .npz of FID statistics (mu, sigma): only fid can use it, not {others}; "
                             "pass --metrics fid, or images / an .npz of features")
        if "images" not in src and any(m in IMAGE_METRICS for m in names):
            raise SystemExit(f"{side} ({src['kind']}) has no images: SWD and MS-SSIM need pixels; drop them "
                             "with --metrics, or pass an image folder, a run folder or an .npz of images")
    extractor = None
    if feature_names and not only_stats:
        extractor = feature_extractor(args.features, data_dir=getattr(args, "data_dir", None))
    real_features = _features_of(real, extractor, args.batch, "REAL") if extractor else None
    fake_features = _features_of(fake, extractor, args.batch, "FAKE") if extractor else None
    stats = {side: (src["mu"], src["sigma"]) for side, src in (("real", real), ("fake", fake)) if "mu" in src}
    made_by = {src["extractor"] for src in (real, fake) if "mu" in src and src["extractor"]}
    if extractor is not None:
        made_by.add(extractor.name)
    if stats and len(made_by) > 1:
        raise SystemExit(f"FID statistics and features come from different networks ({', '.join(sorted(made_by))}): "
                         "their FID would mean nothing; use one network for both sides")
    network = describe(extractor) if extractor else (real.get("extractor") or "statistics from the .npz files")
    print(f"network: {network if feature_names else 'none (pixel metrics only)'}; real: {real['count']} "
          f"({real['kind']} {args.real}), fake: {fake['count']} ({fake['kind']} {args.fake})")
    smaller = min(len(f) for f in (real_features, fake_features)) if real_features is not None and \
        fake_features is not None else 0
    subset = args.kid_subset_size or max(2, min(1000, smaller // 2))
    values = compute_metrics(names, real_features, fake_features, real.get("images"), fake.get("images"),
                             real_stats=stats.get("real"), fake_stats=stats.get("fake"), k=args.k, seed=args.seed,
                             kid_subsets=args.kid_subsets, kid_subset_size=subset)
    note = f" {extractor.note}" if extractor is not None and extractor.note else ""
    for name in names:
        v = values[name]
        if name == "fid":
            print(f"FID: {v:.2f}{note}")
        elif name == "kid":
            print(f"KID: {_fmt(v)} ± {_fmt(values['kid_std'])} ({args.kid_subsets} subsets of {subset}){note}")
        elif name in PR_METRICS:
            print(f"{name}: {v:.3f} (k={args.k}){note}")
        elif name == "swd":
            levels = ", ".join(f"{s}px {_fmt(d)}" for s, d in values["swd_levels"].items())
            print(f"SWD: {levels}, mean {_fmt(v)} (x1e3: {v * 1e3:.3g})")
        elif name == "msssim":
            ref = f"; real images: {values['msssim_real']:.3f}" if "msssim_real" in values else ""
            print(f"MS-SSIM: {v:.3f} (fake, mean of random pairs{ref})")
    return 0
