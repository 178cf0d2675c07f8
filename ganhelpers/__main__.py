"""Command line: ``python -m ganhelpers train | sample | gif | fid | eval | demo`` (``--help`` on each).

Every command takes the run folder of every model: ``train`` records the model in config.yaml,
and ``sample``, ``gif`` and ``fid`` rebuild that model from it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from .session import import_tensorflow

import_tensorflow()  # before .run imports it: TensorFlow's start-up lines stay off the terminal, others show

from .configs import option_number as _number  # noqa: E402
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
    from .cli import fid_paths
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

    parser = argparse.ArgumentParser(prog="python -m ganhelpers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
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

    from .cli import add_eval_parser

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


if __name__ == "__main__":
    sys.exit(main())
