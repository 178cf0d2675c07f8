"""Train the MNIST judge (``ganhelpers.evaluate.MNIST_JUDGE``) and write the copy that ships in the
package: ``ganhelpers/networks/mnist_judge_<hash>.weights.h5`` and its ``.json`` (test accuracy, spec,
sha256 of the weights).

    python tools/train_mnist_judge.py --data-dir ../shared/datasets            # train it (5 CPU minutes)
    python tools/train_mnist_judge.py --data-dir ../shared/datasets --cached   # ship this machine's cached one

``--cached`` takes the judge this machine trained earlier with the same ``train_mnist_judge`` and the
same spec (``<data dir>/models/mnist_judge_<hash>.keras``). Either way the written weights are loaded
back into a fresh network and scored on the 10,000 test images, and that score is the one recorded:
the record is the shipped network's own figure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None, help="folder holding mnist.npz (default: Keras' download)")
    p.add_argument("--cached", action="store_true", help="ship the judge this machine has cached instead of training")
    args = p.parse_args(argv)

    import keras
    import numpy as np

    from ganhelpers import data, evaluate

    spec = evaluate.MNIST_JUDGE
    if args.cached:
        cached = evaluate.mnist_judge_cache_path(None, spec)
        if not cached.is_file():
            raise SystemExit(f"no cached judge at {cached}: run without --cached to train one")
        model = keras.saving.load_model(cached, compile=False)
    else:
        model, _ = evaluate.train_mnist_judge(args.data_dir, spec, download=args.data_dir is None)
    out = evaluate.shipped_mnist_judge_path(spec)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(out)

    fresh = evaluate.mnist_judge_network(spec)
    fresh.load_weights(out)
    d = data.mnist_padded(args.data_dir, spec["image_size"], 1, download=args.data_dir is None)
    x = d["x_test"].astype("float32") / 127.5 - 1.0
    probs = np.concatenate([np.asarray(fresh(x[i:i + 500], training=False)) for i in range(0, len(x), 500)])
    accuracy = float((probs.argmax(axis=1) == d["y_test"]).mean())
    if accuracy < evaluate.MNIST_JUDGE_MIN_ACCURACY:
        out.unlink()
        raise SystemExit(f"the judge scores {accuracy:.2%}, below {evaluate.MNIST_JUDGE_MIN_ACCURACY:.0%}: not shipped")
    record = {"test_accuracy": accuracy, "spec": spec, "sha256": data.file_hash(out, "sha256"),
              "trained_by": "ganhelpers.evaluate.train_mnist_judge (tools/train_mnist_judge.py)"}
    evaluate.shipped_record_path(out).write_text(json.dumps(record, indent=1) + "\n")
    print(f"{out} ({out.stat().st_size / 1e6:.1f} MB): {accuracy:.2%} on the 10,000 MNIST test images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
