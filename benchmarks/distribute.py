"""The DCGAN step on 1 device, under ``MirroredStrategy`` on 2 logical CPU devices and under
``MultiWorkerMirroredStrategy`` on 2 loopback workers, side by side.

``python benchmarks/distribute.py [--rounds 3] [--steps 30]``: each round times the ``cpu`` preset's
DCGAN (32x32 digits, global batch 64) in fresh processes (logical devices are fixed when TensorFlow
starts), one after the other: one process on 1 device, one on 2 logical devices, then 2 worker
processes on 127.0.0.1 (each its own ``TF_CONFIG``; the chief's time counts), and prints images/s
and the ratios to 1 device. On a 2-core CPU expect no speed-up: the devices and the workers share
the same cores, so the figures are the cost of the machinery (the replicated step, the all-reduce,
for the workers over gRPC). A GPU figure stays unmeasured until a GPU runs it. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ganhelpers.precision import speed_flags  # noqa: E402  (TensorFlow-free: flags only)


def _one(devices: int, steps: int) -> float:
    """images/s of ``steps`` DCGAN steps; ``devices`` 0: this process is one of the loopback workers."""
    sys.path.insert(0, str(ROOT))
    from ganhelpers import distribute

    strategy = distribute.make_strategy("multiworker") if devices == 0 else distribute.make_strategy(devices=devices)
    from ganhelpers import data, dcgan

    config = dcgan.dcgan_config("cpu")
    batch = config["data"]["batch_size"]
    with strategy.scope():
        model = dcgan.build_dcgan(config)
    dataset = data.make_dataset(data.digits(config["data"]["image_size"])["images"], batch, repeat=True)
    model.fit(dataset, epochs=1, steps_per_epoch=5, verbose=0)  # trace and warm up
    start = time.perf_counter()
    model.fit(dataset, epochs=2, initial_epoch=1, steps_per_epoch=steps, verbose=0)
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    rows = []
    for r in range(args.rounds):
        rate = {}
        for devices in (1, 2):
            out = subprocess.run([sys.executable, __file__, "--one", str(devices), str(args.steps)], env=env,
                                 capture_output=True, text=True, check=True).stdout
            rate[devices] = float(out.strip().splitlines()[-1])
        rate["workers"] = _workers(env, args.steps)
        rows.append(rate)
        print(f"round {r + 1}: 1 device {rate[1]:.0f} images/s, 2 logical devices {rate[2]:.0f} images/s "
              f"(ratio {rate[2] / rate[1]:.2f}), 2 loopback workers {rate['workers']:.0f} images/s "
              f"(ratio {rate['workers'] / rate[1]:.2f})", flush=True)

    def median(key):
        ratios = sorted(row[key] / row[1] for row in rows)
        return ratios[len(ratios) // 2]

    print(f"CPU flags: {speed_flags()}; {os.cpu_count()} cores; median ratio to 1 device: 2 logical devices "
          f"{median(2):.2f}, 2 loopback workers {median('workers'):.2f}")
    print(json.dumps({"benchmark": "distribute", "cpu_flags": speed_flags(), "rounds": rows,
                      "median_ratio": median(2), "median_ratio_workers": median("workers")}))


def _workers(env: dict, steps: int) -> float:
    """The chief's images/s (global batch) with 2 worker processes on loopback ports."""
    import socket

    socks = [socket.socket() for _ in range(2)]
    for sock in socks:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in socks]
    for sock in socks:
        sock.close()
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = [subprocess.Popen([sys.executable, __file__, "--one", "0", str(steps)], text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL,
                              env={**env, "TF_CONFIG": json.dumps({"cluster": cluster,
                                                                   "task": {"type": "worker", "index": i}})})
             for i in range(2)]
    outs = [p.communicate(timeout=900)[0] for p in procs]
    if any(p.returncode for p in procs):
        raise RuntimeError(f"a worker failed: {outs}")
    return float(outs[0].strip().splitlines()[-1])


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        print(_one(int(sys.argv[2]), int(sys.argv[3])))
    else:
        main()
