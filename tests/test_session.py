"""ganhelpers.session, what every notebook's setup cell calls: the requirements a runtime lacks, the
folders chosen, TensorFlow's start-up lines kept out, ``%tensorboard`` found; and, in a student's kernel
(tests/notebooks.py), the setup cell as a student runs it."""

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from ganhelpers import session
from notebooks import NOTEBOOKS, Kernel, all_text, kernel_env, stream_text

NOISE = """WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1796134828.131777    8154 port.cc:153] oneDNN custom operations are on. You may see slightly different
I0000 00:00:1796134828.132322 8154 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
E0000 00:00:1796134828.2 8154 cuda_dnn.cc:8310] Unable to register cuDNN factory: Attempting to register factory
E0000 00:00:1796140530.978004 17078 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed call to \
cuInit: UNKNOWN ERROR (303)
"""


def test_tensorflows_start_up_lines_are_dropped_and_anything_else_is_kept():
    assert session.loud_lines(NOISE) == []
    real = "OSError: libcudart.so.12: cannot open shared object file"
    driver = "E0000 cuda_platform.cc:52] failed call to cuInit: CUDA_ERROR_SYSTEM_DRIVER_MISMATCH"
    assert session.loud_lines(driver) == [driver]  # a GPU whose driver is wrong is news: kept
    assert session.loud_lines(NOISE + real + "\n\n") == [real]


def test_missing_requirements_are_those_not_installed_or_outside_their_range(tmp_path):
    numpy = __import__("numpy").__version__
    req = tmp_path / "requirements.txt"
    req.write_text("# a comment\n-r other.txt\nnumpy>=1.0  # kept\nnumpy>=999\nno-such-package-zq>=1\n"
                   f"numpy=={numpy}\nscipy ; python_version < '3'\ntensorflow>=2.16,<3\n")
    assert session.missing_requirements(req) == ["numpy>=999", "no-such-package-zq>=1"]
    req.write_text("numpy>=1 >=2 ,,\n")
    with pytest.raises(ValueError, match=r"requirements.txt: cannot read the requirement 'numpy>=1 >=2 ,,'"):
        session.missing_requirements(req)


def test_install_missing_installs_only_what_is_missing_and_says_so(tmp_path, capsys):
    req = tmp_path / "requirements.txt"
    req.write_text("numpy>=1.0\nno-such-package-zq>=1\n")
    calls = []

    def pip(argv, **kw):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, "", "")

    assert session.install_missing(req, run=pip) == ["no-such-package-zq>=1"]
    assert calls == [[sys.executable, "-m", "pip", "install", "-q", "no-such-package-zq>=1"]]
    assert "installing what this runtime lacks: no-such-package-zq>=1" in capsys.readouterr().out
    req.write_text("numpy>=1.0\n")
    assert session.install_missing(req, run=pip) == [] and len(calls) == 1
    assert "this runtime already has everything requirements.txt asks for (tensorflow " in capsys.readouterr().out
    req.write_text("no-such-package-zq>=1\n")
    failing = lambda argv, **kw: subprocess.CompletedProcess(argv, 1, "", "ERROR: No matching distribution")
    with pytest.raises(RuntimeError, match="pip could not install no-such-package-zq>=1:\nERROR: No matching"):
        session.install_missing(req, run=failing)


def test_folders_prefer_the_notebook_then_the_command_lines_variables_then_drive_then_the_clone(monkeypatch):
    monkeypatch.delenv("GANHELPERS_MODEL_DATA", raising=False)
    monkeypatch.delenv("GANHELPERS_DATA", raising=False)
    home, repo = Path("/content/drive/MyDrive/ganhelpers"), Path("/r")
    assert session.folders(None, None, None, repo) == ("/r/model_data", str(Path.home() / ".keras" / "datasets"))
    assert session.folders(None, None, home, repo) == (f"{home}/model_data", f"{home}/datasets")
    monkeypatch.setenv("GANHELPERS_MODEL_DATA", "/runs")
    monkeypatch.setenv("GANHELPERS_DATA", "/data")
    assert session.folders(None, None, home, repo) == ("/runs", "/data")
    assert session.folders("mine", "here", home, repo) == ("mine", "here")


def test_tensorboard_is_found_beside_the_python_when_not_on_path(monkeypatch):
    monkeypatch.delenv("TENSORBOARD_BINARY", raising=False)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    beside = str(Path(sys.executable).parent / "tensorboard")
    assert session.tensorboard_binary() == beside and os.environ["TENSORBOARD_BINARY"] == beside
    monkeypatch.setenv("TENSORBOARD_BINARY", "/opt/tb")
    assert session.tensorboard_binary() == "/opt/tb"


@pytest.mark.notebook
def test_a_students_kernel_shows_fd2_and_the_setup_cell_keeps_tensorflow_quiet_uses_the_variables_and_tensorboard(
        tmp_path):
    """The kernel is a student's (it shows what is written to file descriptor 2, as Jupyter does); the
    setup cell leaves no TensorFlow line there, honours GANHELPERS_MODEL_DATA / GANHELPERS_DATA as
    the command line does and prints them; ``%tensorboard`` works with the environment's bin/ off PATH
    (a kernel started by ``make notebook``)."""
    name = "01_dcgan_birds.ipynb"
    setup = next(c.source for c in nbformat.read(NOTEBOOKS / name, 4).cells if "REPOSITORY = " in c.source)
    env = kernel_env(GANHELPERS_MODEL_DATA=tmp_path / "runs", GANHELPERS_DATA=tmp_path / "data", PATH="/usr/bin:/bin",
                     TENSORBOARD_BINARY=None)
    with Kernel(name, env=env) as k:
        probe = k.run("import os; os.write(2, b'written to fd 2\\n')")
        assert "written to fd 2" in stream_text(probe, "stderr")
        parameters = ("MODEL_DATA = DATA_DIR = None\nUSE_DRIVE = DRIVE_COPY = None\nMIXED_PRECISION = True\n"
                      "DEVICES = 1\n")
        cell = k.run(parameters + setup)
        assert stream_text(cell, "stderr") == ""
        out = stream_text(cell, "stdout")
        assert f"runs: {tmp_path / 'runs'}\ndatasets: {tmp_path / 'data'}\n" in out
        printed = all_text([k.run("print(MODEL_DATA, DATA_DIR)")]).split()
        assert printed == [str(tmp_path / "runs"), str(tmp_path / "data")]
        assert stream_text(k.run("import tensorflow as tf; tf.zeros(3).numpy()"), "stderr") == ""
        logs = tmp_path / "runs" / "logs"
        logs.mkdir(parents=True)
        board = k.run(f"%load_ext tensorboard\n%tensorboard --logdir '{logs}' --port 0")
        try:
            text = all_text([board])
            assert "Could not find" not in text and "ERROR" not in text, text
            html = "".join(o.get("data", {}).get("text/html", "") for o in board.outputs)
            assert "<iframe" in html or "localhost" in text, board.outputs
        finally:
            k.run("from tensorboard import manager\nimport os, signal\n"
                  f"[os.kill(i.pid, signal.SIGTERM) for i in manager.get_all() if i.logdir == {str(logs)!r}]")
