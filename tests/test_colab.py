"""Colab, simulated (tests/colab.py): both ways a student opens a notebook there, each run as Colab
runs it (a kernel that imported ``google.colab`` at start, ``/content`` as the working folder,
ganhelpers not installed), then a disconnect (``/content`` wiped, a new runtime, a new kernel) and
Run all again with the same ``RUN_NAME``, which continues from the checkpoint on Drive.

- From Google Drive: a copy of the repository two folders deep under MyDrive, with spaces in its
  folders' names; nothing edited, no GitHub name.
- From GitHub: the repository published under a name (``tools/set_repository.py``), git's
  ``url.<base>.insteadOf`` pointing that GitHub URL at a local clone, the notebook's
  ``%pip install`` run as written (offline: pip may use no index).
- With the placeholder name and no copy on Drive: one error that names both ways.
"""

import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest
from colab import CONTENT, colab_env, colab_kernel, installed_ganhelpers, repository_copy, student_env, wipe_content
from nbclient.exceptions import CellExecutionError

from notebooks import Kernel, all_text, check_outputs, results, stream_text

pytestmark = pytest.mark.notebook

MYDRIVE = CONTENT / "drive" / "MyDrive"


@pytest.fixture
def content():
    """``/content`` for one test: created here, removed afterwards; never one that existed before."""
    if CONTENT.exists() or CONTENT.is_symlink():
        pytest.skip("/content exists on this machine: the simulated Colab does not touch a folder it did not make")
    try:
        CONTENT.mkdir()
    except OSError as e:
        pytest.skip(f"cannot create /content ({e}): the simulated Colab needs it as its working folder")
    try:
        yield CONTENT
    finally:
        shutil.rmtree(CONTENT, ignore_errors=True)


@pytest.fixture
def colab(tmp_path, monkeypatch, content):
    """A factory of Colab runtimes: ``colab()`` is a fresh environment (no ganhelpers) and the name of
    a kernel spec running it; the stand-in Drive is ``tmp_path / "drive"``."""
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    drive = tmp_path / "drive"
    drive.mkdir()
    count = iter(range(1, 100))

    def runtime():
        n = next(count)
        python = student_env(tmp_path / f"runtime{n}")
        return python, colab_kernel(tmp_path / "jupyter", python, name=f"colab-standin-{n}")

    runtime.drive = drive
    return runtime


def setup_output(cells) -> str:
    return next(stream_text(c, "stdout") for c in cells if "REPOSITORY = " in c.source)


def test_from_google_drive_a_copy_in_a_folder_with_spaces_runs_then_resumes_after_a_disconnect(colab, tmp_path):
    copy = repository_copy(colab.drive / "GAN course 2026" / "ganhelpers (main)")
    notebook = copy / "notebooks" / "01_dcgan_birds.ipynb"
    shown_copy = MYDRIVE / "GAN course 2026" / "ganhelpers (main)"
    run_dir = colab.drive / "ganhelpers" / "model_data" / "dcgan_smoke" / "class"

    python, kernel = colab()
    with Kernel(notebook.name, path=notebook, cwd=CONTENT, env=colab_env(colab.drive), kernel_name=kernel) as k:
        where = all_text([k.run("import os, sys; print(os.getcwd(), 'google.colab' in sys.modules)")]).split()
        assert where == ["/content", "True"]
        assert "ModuleNotFoundError" in all_text([k.run("try:\n    import ganhelpers\nexcept ImportError as e:\n"
                                                        "    print(type(e).__name__)")])
        cells = k.run_all(PRESET="smoke", RUN_NAME="class", STEPS=10)
        check_outputs(cells)
        out = setup_output(cells)
        assert "Mounted at /content/drive" in out
        assert f"ganhelpers from Google Drive: {shown_copy}\n" in out
        assert re.search(r"requirements: this runtime already has everything requirements.txt asks for "
                         r"\(tensorflow \d", out), out
        assert f"runs: {MYDRIVE / 'ganhelpers' / 'model_data'}\n" in out
        assert f"datasets: {MYDRIVE / 'ganhelpers' / 'datasets'}\n" in out
        imported = all_text([k.run("import ganhelpers; print(ganhelpers.__file__)")]).strip()
        assert imported == str(shown_copy / "ganhelpers" / "__init__.py")
    assert results(run_dir)["step"] == 10
    assert not installed_ganhelpers(python)  # used from Drive, not installed
    assert not any(copy.joinpath("model_data").glob("*"))  # runs live in MyDrive/ganhelpers, beside the copy

    wipe_content()  # a disconnect: the VM's disk is gone, Drive is not; a new runtime, a new kernel
    _, kernel = colab()
    with Kernel(notebook.name, path=notebook, cwd=CONTENT, env=colab_env(colab.drive), kernel_name=kernel) as k:
        cells = k.run_all(PRESET="smoke", RUN_NAME="class")
        check_outputs(cells)
    second = results(run_dir)
    assert second["step"] == 28 and Path(second["resumed_from"]).name == "ckpt-10"


def test_drive_copy_names_the_copy_and_a_wrong_one_is_a_clear_error(colab):
    for name in ("first copy", "old/second copy"):
        repository_copy(colab.drive / name)
    notebook = colab.drive / "first copy" / "notebooks" / "04_pggan_fade_in.ipynb"
    _, kernel = colab()
    setup = next(c.source for c in nbformat.read(notebook, 4).cells if "REPOSITORY = " in c.source)
    params = 'MODEL_DATA = DATA_DIR = None\nUSE_DRIVE = True\nMIXED_PRECISION = False\nDEVICES = 1\n'
    with Kernel(notebook.name, path=notebook, cwd=CONTENT, env=colab_env(colab.drive), kernel_name=kernel) as k:
        out = all_text([k.run(params + 'DRIVE_COPY = "old/second copy"\n' + setup)])
        assert f"ganhelpers from Google Drive: {MYDRIVE / 'old' / 'second copy'}\n" in out
        assert all_text([k.run("import ganhelpers; print(ganhelpers.__file__)")]).strip() == \
            str(MYDRIVE / "old" / "second copy" / "ganhelpers" / "__init__.py")
    _, kernel = colab()
    with Kernel(notebook.name, path=notebook, cwd=CONTENT, env=colab_env(colab.drive), kernel_name=kernel) as k:
        out = all_text([k.run(params + "DRIVE_COPY = None\n" + setup)])
        assert re.search(r"ganhelpers from Google Drive: /content/drive/MyDrive/(first copy|old/second copy) "
                         r"\(newest of 2 copies; DRIVE_COPY chooses\)", out), out
        cell = k.run(params + 'DRIVE_COPY = "no such folder"\n' + setup, allow_errors=True)
        [error] = [o for o in cell.outputs if o.output_type == "error"]
        assert error.ename == "FileNotFoundError" and "DRIVE_COPY: /content/drive/MyDrive/no such folder holds no " \
            "ganhelpers/" in error.evalue


def test_with_the_placeholder_and_no_copy_on_drive_one_error_names_both_ways(colab):
    notebook = repository_copy(colab.drive.parent / "upload") / "notebooks" / "02_wgan_birds.ipynb"  # not on Drive
    _, kernel = colab()
    with Kernel(notebook.name, path=notebook, cwd=CONTENT, env=colab_env(colab.drive), kernel_name=kernel) as k:
        with pytest.raises(CellExecutionError) as raised:
            k.run_all(PRESET="smoke")
    assert raised.value.ename == "RuntimeError"
    assert raised.value.evalue.startswith("ganhelpers not found. Two ways to open these notebooks on Colab: (1) from "
                                          "Google Drive: put a copy of the repository")
    assert "(2) from GitHub" in raised.value.evalue and "tools/set_repository.py" in raised.value.evalue


def test_from_github_pip_installs_the_named_repository_then_resumes_after_a_disconnect(colab, tmp_path):
    published = repository_copy(tmp_path / "published")
    subprocess.run(["python3", "tools/set_repository.py", "ganlab/gan-notebooks"], cwd=published, check=True,
                   capture_output=True)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "init.defaultBranch=main"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "published"]):
        subprocess.run(git + command, cwd=published, check=True)
    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text(f'[url "file://{published}"]\n\tinsteadOf = https://github.com/ganlab/gan-notebooks\n')
    # Offline, as the suite is: pip may use no index; the build uses this environment's setuptools.
    offline = {"GIT_CONFIG_GLOBAL": gitconfig, "PIP_NO_INDEX": "1", "PIP_NO_BUILD_ISOLATION": "0",
               "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    notebook = published / "notebooks" / "03_sgan_mnist.ipynb"  # what Colab opens from GitHub
    run_dir = colab.drive / "ganhelpers" / "model_data" / "sgan_smoke" / "github"
    for session, steps in ((1, 4), (2, None)):
        if session == 2:
            wipe_content()
        python, kernel = colab()
        with Kernel(notebook.name, path=notebook, cwd=CONTENT, env=colab_env(colab.drive, **offline),
                    kernel_name=kernel) as k:
            cells = k.run_all(PRESET="smoke", RUN_NAME="github", STEPS=steps, RUN_SWEEP=False)
            check_outputs(cells, no_figure=("accuracy_vs_labels",))  # the sweep's plot: no sweep here
            out = setup_output(cells)
            assert "ganhelpers from Google Drive" not in out
            assert f"runs: {MYDRIVE / 'ganhelpers' / 'model_data'}\n" in out
            imported = all_text([k.run("import ganhelpers; print(ganhelpers.__file__)")]).strip()
        assert installed_ganhelpers(python) and imported.startswith(str(python.parent.parent)), imported
        if session == 1:
            assert results(run_dir)["step"] == 4
    final = results(run_dir)
    assert final["step"] > 4 and Path(final["resumed_from"]).name == "ckpt-4"
