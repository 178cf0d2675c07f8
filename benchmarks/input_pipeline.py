"""Input pipeline vs train step: images/s from a folder of JPEGs through ``ganhelpers.data`` against the
DCGAN train step's consumption, measured in the same run.

Two input figures, because ``data.image_folder`` decodes once and then serves batches from memory:

* cold: ``data.load_folder`` decoding every JPEG (Pillow, thread pool, draft-mode downscale, crop,
  Lanczos resize) = the first epoch (later epochs and runs read the .npz cache);
* warm: ``data.make_dataset`` iterated (shuffle, batch, scale to [-1, 1], prefetch) = every epoch.

The folder holds ``--num`` synthetic 500x375 JPEGs (the typical CUB-200 photo size), written once
to a temporary directory. Ratios > 1 mean the input pipeline outruns the train step.

    python benchmarks/input_pipeline.py --num 512 --batch 64
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from train_step import time_dcgan  # noqa: E402

from ganhelpers import data  # noqa: E402


def write_jpegs(folder: Path, num: int, size=(500, 375), seed: int = 0) -> None:
    """``num`` smooth random RGB photos-like JPEGs (quality 90) in ``folder``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size[1], 0:size[0]] / max(size)
    for i in range(num):
        f = rng.uniform(2, 12, 3)
        img = 127.5 * (1 + np.stack([np.sin(f[c] * (xx + yy * (c + 1)) + rng.uniform(0, 6)) for c in range(3)], -1))
        img = img + rng.normal(0, 12, img.shape)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"img_{i:05d}.jpg", quality=90)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num", type=int, default=512, help="JPEG files in the folder")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--epochs", type=int, default=5, help="warm epochs to iterate")
    p.add_argument("--steps", type=int, default=2, help="timed train steps")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_jpegs(folder, args.num)
        start = time.perf_counter()
        images = data.load_folder(folder, image_size=64, channels=3, crop="center", cache=False)
        cold = len(images) / (time.perf_counter() - start)

    dataset = data.make_dataset(images, args.batch, repeat=True)
    iterator = iter(dataset)
    next(iterator)
    batches = args.epochs * (len(images) // args.batch)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    warm = batches * args.batch / (time.perf_counter() - start)

    step, _ = time_dcgan(args.batch, "float32", False, args.steps)
    print(f"train step (dcgan64 full, batch {args.batch}, float32): {step:.2f} images/s")
    print(f"input cold (decode {args.num} JPEGs 500x375 -> 64x64): {cold:.0f} images/s; ratio to train step "
          f"{cold / step:.1f}")
    print(f"input warm (make_dataset from memory, batch {args.batch}): {warm:.0f} images/s; ratio to train step "
          f"{warm / step:.1f}")


if __name__ == "__main__":
    main()
