"""The metric commands' parsers and printing: ``python -m ganhelpers eval REAL FAKE`` (any set of
metrics between image folders, run folders and ``.npz`` files) and the folder/statistics case of
``python -m ganhelpers fid``. The metric modules (:mod:`ganhelpers.metrics`) hold no argparse and
print nothing; :mod:`ganhelpers.__main__` registers these commands.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .metrics.compute import FEATURE_METRICS, IMAGE_METRICS, compute_metrics, expand_metric_names, load_npz
from .metrics.prdc import PR_METRICS

# -- python -m ganhelpers fid PATH_A PATH_B ------------------------------------------------------

def fid_paths(args) -> int:
    """``python -m ganhelpers fid PATH_A PATH_B [--weights imagenet|none|FILE] [--batch B]`` between two
    folders of images or ``.npz`` statistics (run folders are sampled by ``__main__``'s ``fid``)."""
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
