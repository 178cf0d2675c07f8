"""A simulated Colab, as far as a machine without Colab can have one.

- :func:`student_env`: a Python environment that has this suite's packages (TensorFlow, Keras, Jupyter,
  pip, ...) but not ganhelpers, as a Colab runtime has its own packages and not ours. It is a new venv
  whose one ``.pth`` line adds a folder of links to every entry of this suite's site-packages except
  ganhelpers' (its code, its editable hook and its metadata).
- :func:`colab_kernel`: a kernel spec running that environment's Python that imports the stand-in
  ``google.colab`` (``tests/colab_standin``) before the first cell, as Colab's kernel imports the real
  one; its ``drive.mount`` links ``MyDrive`` to a folder of the test (``$COLAB_STANDIN_MYDRIVE``).
- ``CONTENT``: ``/content``, Colab's working folder (the tests' ``content`` fixture creates it and
  removes it afterwards; a test is skipped where it already exists or cannot be created).
- :func:`repository_copy`: the working tree of this repository copied as a user would (no .venv, no
  .git, no runs), e.g. into the stand-in Drive.
"""

from __future__ import annotations

import json
import shutil
import sysconfig
import venv
from pathlib import Path

from notebooks import ROOT, kernel_env

STANDIN = Path(__file__).resolve().parent / "colab_standin"
CONTENT = Path("/content")
NOT_OURS = ("ganhelpers", "__editable__", "__editable___ganhelpers")
COPY_IGNORE = shutil.ignore_patterns(".venv", ".git", "model_data", "__pycache__", "*.egg-info", ".pytest_cache",
                                     ".ruff_cache", "*.damaged-*")


def student_env(root: Path) -> Path:
    """A new environment at ``root`` (see the module docstring); returns its Python."""
    venv.EnvBuilder(with_pip=False, symlinks=True).create(root)
    python = root / "bin" / "python"
    ours = Path(sysconfig.get_paths()["purelib"])
    farm = root / "suite-packages"
    farm.mkdir()
    for entry in ours.iterdir():
        if not entry.name.startswith(NOT_OURS) and entry.suffix != ".pth":
            (farm / entry.name).symlink_to(entry)
    site = next((root / "lib").glob("python3*/site-packages"))
    (site / "suite_packages.pth").write_text(f"{farm}\n")
    return python


def colab_kernel(jupyter_path: Path, python: Path, name: str = "colab-standin") -> str:
    """Write a kernel spec ``name`` under ``jupyter_path`` (put that folder on ``JUPYTER_PATH``)."""
    spec = jupyter_path / "kernels" / name
    spec.mkdir(parents=True, exist_ok=True)
    argv = [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}",
            "--IPKernelApp.exec_lines=import google.colab"]
    spec_json = {"argv": argv, "display_name": "Colab stand-in", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(spec_json))
    return name


def colab_env(mydrive: Path, **changes) -> dict:
    """A Colab kernel's environment: a student's, the stand-in importable, Drive at ``mydrive``."""
    return kernel_env(PYTHONPATH=STANDIN, COLAB_STANDIN_MYDRIVE=mydrive, **changes)


def repository_copy(destination: Path) -> Path:
    shutil.copytree(ROOT, destination, ignore=COPY_IGNORE)
    return destination


def wipe_content() -> None:
    """A disconnect: the VM's disk is gone (Drive, a link under /content/drive, is not)."""
    for entry in CONTENT.iterdir():
        if entry.is_symlink() or entry.is_file():
            entry.unlink()
        else:
            shutil.rmtree(entry)


def installed_ganhelpers(python: Path) -> bool:
    return any((python.parent.parent / "lib").glob("python3*/site-packages/ganhelpers/__init__.py"))

