"""Command line: ``python -m ganhelpers demo | sample | gif ...`` (``--help`` on each)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def _demo(args) -> int:
    from .configs import dcgan_config
    from .training import train_dcgan

    config = dcgan_config("demo")
    if args.precision:
        config["training"]["precision"] = args.precision
    model, run, _ = train_dcgan(config, steps=args.steps, root=args.root, run_name=args.run,
                                verbose=2 if args.quiet else "auto")
    if not args.no_check:
        from .evaluate import digit_classifier, digit_report

        classifier, accuracy = digit_classifier(config["data"]["image_size"], config["data"]["channels"])
        report = digit_report(classifier, model.generate(500))
        run.update_results({"step": int(model.step.numpy()), "digit_report": report,
                            "classifier_holdout_accuracy": accuracy})
        print(f"learning check: {report['confident_fraction']:.0%} of {report['num_images']} samples are "
              f"digits to a classifier (p >= {report['threshold']}; it scores {accuracy:.1%} on held-out "
              f"real digits), covering {report['classes_covered']}/10 classes")
    print(f"run folder: {run.dir}")
    print(f"GIF:        {run.gifs / (run.experiment + '.gif')}")
    print(f"losses:     {run.samples / 'losses.png'}")
    print(f"TensorBoard: tensorboard --logdir {run.logs}")
    return 0


def _restore_generator(run_dir: Path):
    """The run's DCGAN with the newest checkpoint restored."""
    import tensorflow as tf

    from .callbacks import restore_latest
    from .experiment import load_config
    from .models import build_dcgan

    config = load_config(run_dir / "config.yaml")
    model = build_dcgan(config)
    model.build_optimizers()
    ckpt = tf.train.Checkpoint(**model.checkpoint_items())
    manager = tf.train.CheckpointManager(ckpt, str(run_dir / "checkpoints"), max_to_keep=None)
    path = restore_latest(ckpt, manager)
    if path is None:
        raise SystemExit(f"no readable checkpoint in {run_dir / 'checkpoints'}: train the run first")
    return model, path


def _sample(args) -> int:
    from . import images

    run_dir = Path(args.run_dir)
    model, path = _restore_generator(run_dir)
    out = Path(args.out) if args.out else run_dir / "samples" / "single"
    out.mkdir(parents=True, exist_ok=True)
    batch = model.generate(args.n)
    for i, img in enumerate(batch):
        images.save_png(out / f"sample_{i:05d}.png", img)
    print(f"wrote {args.n} images from {path} to {out}")
    return 0


def _gif(args) -> int:
    from .callbacks import write_gif
    from .experiment import Run

    run_dir = Path(args.run_dir)
    if not (run_dir / "tmp").is_dir():
        raise SystemExit(f"{run_dir} is not a run folder (no tmp/ with frames)")
    run = Run(dir=run_dir, experiment=run_dir.parent.name, name=run_dir.name)
    print(f"wrote {write_gif(run, fps=args.fps)}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ganhelpers", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="train a DCGAN on the offline digits (a few minutes on CPU)")
    p.add_argument("--run", default="demo", help="run name; the same name resumes (default: demo)")
    p.add_argument("--steps", type=int, default=None, help="total train steps (default: the preset's epochs)")
    p.add_argument("--root", default=None, help="model_data folder (default: ./model_data)")
    p.add_argument("--precision", default=None, help="float32 (default) or mixed")
    p.add_argument("--quiet", action="store_true", help="one line per epoch instead of a progress bar")
    p.add_argument("--no-check", action="store_true", help="skip the learning check (a digit classifier "
                   "trained on the real digits judging 500 samples)")
    p.set_defaults(fn=_demo)

    p = sub.add_parser("sample", help="write N single PNGs from a run's newest checkpoint")
    p.add_argument("run_dir")
    p.add_argument("-n", type=int, default=16)
    p.add_argument("-o", "--out", default=None, help="output folder (default: RUN_DIR/samples/single)")
    p.set_defaults(fn=_sample)

    p = sub.add_parser("gif", help="regenerate a run's GIF from its tmp/ frames")
    p.add_argument("run_dir")
    p.add_argument("--fps", type=float, default=5.0)
    p.set_defaults(fn=_gif)

    p = sub.add_parser("fid", help="FID between two image folders or .npz statistics files")
    p.add_argument("path_a", help="a folder of images or an .npz with mu and sigma")
    p.add_argument("path_b", help="a folder of images or an .npz with mu and sigma")
    p.add_argument("--weights", default="imagenet",
                   help="imagenet (Keras InceptionV3), none (random: plumbing only), or a file: "
                        "classify_image_graph_def.pb / inception-2015-12-05.tgz (published-comparable FID) "
                        "or Keras InceptionV3 weights (default: imagenet)")
    p.add_argument("--batch", type=int, default=50, help="images per batch (default: 50)")
    p.set_defaults(fn=lambda args: __import__("ganhelpers.fid", fromlist=["cli_main"]).cli_main(args))

    args = parser.parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    pkg = logging.getLogger("ganhelpers")
    pkg.addHandler(handler)
    pkg.setLevel(logging.INFO)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
