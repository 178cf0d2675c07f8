"""Several machines (MultiWorkerMirroredStrategy), stood in for by 2 worker processes on loopback ports.

Each worker is started the way the README says: the same command, its own ``TF_CONFIG`` (127.0.0.1
only, bounded in time). The first round runs the command line, loses worker 1 (SIGKILL) after the
chief's first checkpoints and expects the chief to stop with a clear error; the second round starts
both again through ``run.train`` (this file run as a script, printing what each worker holds) and
expects them to resume from the chief's checkpoint, finish the budget and hold the same weights.
"""

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

RESULT_TAG = "RESULT "
REPO = Path(__file__).resolve().parents[1]
STEPS = 56  # the smoke preset: 28 steps an epoch, 2 epochs; checkpoints every 10 steps


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _start(argv, index: int, ports, tmp: Path, log: Path) -> subprocess.Popen:
    tf_config = {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]}, "task": {"type": "worker", "index": index}}
    env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "TMPDIR": str(tmp), "TF_CPP_MIN_LOG_LEVEL": "2",
           "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.Popen([sys.executable, *argv], cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def _finish(procs, logs, timeout=300) -> list[str]:
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for q in procs:
                os.killpg(q.pid, signal.SIGKILL)
            pytest.fail("the workers did not finish in time:\n" + "\n".join(log.read_text()[-2000:] for log in logs))
    return [log.read_text() for log in logs]


def _digest(model) -> str:
    import numpy as np

    weights = model.generator.weights + model.discriminator.weights  # BatchNorm statistics too
    return hashlib.sha1(b"".join(np.asarray(w, np.float32).tobytes() for w in weights)).hexdigest()


def test_two_workers_train_one_run_survive_a_lost_worker_and_agree(tmp_path):
    from ganhelpers import run

    root, tmp = tmp_path / "model_data", tmp_path / "tmp"
    tmp.mkdir()
    run_dir = root / "dcgan_smoke" / "mw"
    argv = ["-m", "ganhelpers", "train", "dcgan", "--preset", "smoke", "--strategy", "multiworker", "--run", "mw",
            "--root", str(root), "--quiet", "--set", "training.epochs=2"]

    # round 1: the command line on both; worker 1 is killed once the chief has checkpoints
    ports, logs = _free_ports(2), [tmp_path / "w0.log", tmp_path / "w1.log"]
    procs = [_start(argv, i, ports, tmp, logs[i]) for i in range(2)]
    deadline = time.monotonic() + 240
    while not (run_dir / "checkpoints" / "ckpt-20.index").exists():
        assert time.monotonic() < deadline and procs[0].poll() is None, logs[0].read_text()[-3000:]
        time.sleep(0.2)
    os.killpg(procs[1].pid, signal.SIGKILL)
    chief_out, _ = _finish(procs, logs, timeout=180)
    assert procs[0].returncode == 1, chief_out[-3000:]
    assert "error: worker 0 lost its peers (UnavailableError" in chief_out
    assert f"resume from the chief's newest checkpoint in {run_dir / 'checkpoints'}" in chief_out
    assert "Traceback" not in chief_out
    kept = sorted(int(p.stem.split("-")[1]) for p in (run_dir / "checkpoints").glob("ckpt-*.index"))
    assert kept and 20 <= kept[-1] < STEPS
    round1_pids = {str(procs[0].pid)}
    killed_scratch = {p.name for p in tmp.glob("ganhelpers-*")}  # SIGKILL leaves the worker's scratch copy
    assert len(killed_scratch) == 1 and next(iter(killed_scratch)).startswith("ganhelpers-worker1-")

    # round 2: both again, through run.train (this file as a script): they resume and finish together
    ports = _free_ports(2)
    logs = [tmp_path / "r0.log", tmp_path / "r1.log"]
    procs = [_start([str(Path(__file__).resolve()), "worker", str(root)], i, ports, tmp, logs[i]) for i in range(2)]
    outs = _finish(procs, logs)
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-3000:] for o in outs)
    chief, other = (json.loads([ln for ln in o.splitlines() if ln.startswith(RESULT_TAG)][-1][len(RESULT_TAG):])
                    for o in outs)
    assert (chief["chief"], other["chief"]) == (True, False)
    for worker in (chief, other):
        assert worker["step"] == STEPS and worker["replicas"] == 2
        assert worker["strategy"] == "MultiWorkerMirroredStrategy"
        assert Path(worker["resumed_from"]).name == f"ckpt-{kept[-1]}"  # the chief's newest checkpoint
    assert chief["digest"] == other["digest"]  # every weight (synchronised BatchNorm statistics too), bit for bit
    assert other["run_dir"] == str(run_dir)

    # the chief wrote the run folder; the other worker wrote nothing there and left no scratch folder
    results = json.loads((run_dir / "results.json").read_text())
    assert results["step"] == STEPS and results["replicas"] == 2
    assert results["strategy"] == "MultiWorkerMirroredStrategy"
    assert _digest(run.restore_model(run_dir)) == chief["digest"]  # the chief's checkpoint holds them
    writers = {p.name.split(".")[-3] for p in (run_dir / "logs").rglob("events.out.tfevents.*")}
    assert writers == round1_pids | {str(procs[0].pid)}, writers  # events.out.tfevents.TIME.HOST.PID.N.v2
    assert {p.name for p in tmp.glob("ganhelpers-*")} == killed_scratch  # round 2 removed its own


@pytest.mark.parametrize("tf_config, message", [
    (None, "--strategy multiworker needs TF_CONFIG in the environment of every worker"),
    ("{cluster", "TF_CONFIG is not JSON"),
    ('{"cluster": {}, "task": {"type": "worker", "index": 0}}', "TF_CONFIG has no cluster.worker list"),
    ('{"cluster": {"worker": ["127.0.0.1"]}, "task": {"type": "worker", "index": 0}}',
     "TF_CONFIG cluster.worker must be a list of 'host:port' strings"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "ps", "index": 0}}',
     "TF_CONFIG task.type must name one of the cluster's roles (worker)"),
    ('{"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 2}}',
     "TF_CONFIG task.index must be 0..1 (the worker list has 2), got 2"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": -1}}',
     "TF_CONFIG task.index must be 0..0 (the worker list has 1), got -1"),
])
def test_multiworker_without_a_valid_tf_config_is_a_clear_error(tf_config, message, tmp_path, monkeypatch):
    from ganhelpers.cli import main

    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(SystemExit) as raised:
        main(["train", "dcgan", "--root", str(tmp_path), "--strategy", "multiworker"])
    assert str(raised.value).startswith("error: --strategy/--devices: ") and message in str(raised.value)
    assert not any(tmp_path.iterdir())  # nothing written


def test_multiworker_on_a_cpu_takes_one_device_per_worker(tmp_path, monkeypatch):
    from ganhelpers.cli import main

    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 0}}')
    with pytest.raises(SystemExit, match="one replica per worker on a CPU, not devices=2: start more workers"):
        main(["train", "dcgan", "--root", str(tmp_path), "--strategy", "multiworker", "--devices", "2"])


def _worker(root: str) -> None:
    """One worker of round 2: the notebook's path (``run.train`` with the strategy)."""
    from ganhelpers import distribute

    strategy = distribute.make_strategy("multiworker")  # first: before TensorFlow runs anything
    from ganhelpers import dcgan, run

    config = dcgan.dcgan_config("smoke")
    config["training"]["epochs"] = 2
    result = run.train(config, "mw", root=root, strategy=strategy, verbose=0)
    print(RESULT_TAG + json.dumps({**{k: result.results[k] for k in ("step", "replicas", "strategy", "resumed_from")},
                                   "chief": distribute.is_chief(strategy), "digest": _digest(result.model),
                                   "run_dir": str(result.run.dir)}), flush=True)


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    _worker(sys.argv[2])
