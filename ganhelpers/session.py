"""The start of a notebook session: what every notebook's setup cell calls once ganhelpers is found.

The setup cell itself finds ganhelpers (a clone, a copy on Google Drive, or an install from GitHub on
Colab; that search has to run before ganhelpers can be imported). Then :func:`start`

- installs, on Colab from a Drive copy, what the runtime lacks from the copy's ``requirements.txt``
  (:func:`install_missing`: a requirement the runtime already satisfies, Colab's own TensorFlow and
  Keras included, is left alone);
- imports TensorFlow with its start-up lines kept out of the notebook (:func:`import_tensorflow`);
- chooses the folders: the notebook's ``MODEL_DATA`` / ``DATA_DIR`` when set, else
  ``$GANHELPERS_MODEL_DATA`` / ``$GANHELPERS_DATA`` (as the command line), else Google Drive on Colab,
  else ``<repository>/model_data`` and ``~/.keras/datasets``; and prints them;
- makes ``%tensorboard`` find TensorBoard in a kernel whose ``PATH`` lacks the environment's ``bin/``
  (a kernel started by ``make notebook``): it sets ``TENSORBOARD_BINARY``, the variable TensorBoard's
  notebook extension reads for this, and nothing else, only when TensorBoard is not on ``PATH``;
- makes the ``tf.distribute`` strategy of the notebook's ``DEVICES`` (:func:`distribution`, once per
  kernel) and says how many replicas it found.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

# What TensorFlow writes straight to file descriptor 2 while it loads, whatever TF_CPP_MIN_LOG_LEVEL
# says (TF 2.20+: absl logs these before its logging is initialised). A notebook shows fd 2 as a red
# box; these lines say nothing a student can act on. Anything else written then is shown.
LOAD_NOISE = (
    r"All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    r"oneDNN custom operations are on",
    r"Could not find cuda drivers on your machine",
    r"failed call to cuInit: .*(UNKNOWN ERROR \(303\)|CUDA_ERROR_NO_DEVICE)",  # no GPU here (the setup says so)
    r"This TensorFlow binary is optimized to use available CPU instructions",
    r"To enable the following instructions: .* rebuild TensorFlow",
    r"Unable to register cu(DNN|FFT|BLAS) factory",
    r"computation placer already registered",
    r"TF-TRT Warning: Could not find TensorRT",
    r"Unable to register cuDNN|cuda_dnn\.cc|cuda_fft\.cc|cuda_blas\.cc",
    r"^\s*$",
)


@dataclass
class Session:
    """What :func:`start` chose: the folders, the device and the precision the notebook trains in."""

    model_data: str
    data_dir: str
    gpu: bool
    precision: str
    tensorflow: object
    strategy: object = None  # a tf.distribute strategy over DEVICES devices, None for one device
    replicas: int = 1


_STRATEGIES: dict = {}  # DEVICES -> its strategy, for this kernel (a second Run all reuses it)


def distribution(devices: int | None):
    """The ``tf.distribute`` strategy of a notebook's ``DEVICES``: None for one device, else
    :func:`ganhelpers.distribute.make_strategy` (the first ``DEVICES`` GPUs, or as many logical CPU
    devices where there is no GPU), made once per kernel. A CPU is split before TensorFlow runs
    anything, so another count needs a new kernel; asking for one is a clear error."""
    if devices in (None, 1):
        return None
    if devices in _STRATEGIES:
        return _STRATEGIES[devices]
    from .distribute import make_strategy

    try:
        strategy = make_strategy(devices=devices)
    except RuntimeError as e:
        raise RuntimeError(f"DEVICES = {devices}: {e}. Restart the kernel (Colab: Runtime > Restart session) "
                           "and Run all to change DEVICES") from None
    except ValueError as e:
        raise ValueError(f"DEVICES = {devices!r}: {e}") from None
    _STRATEGIES[devices] = strategy
    return strategy


def import_tensorflow():
    """``import tensorflow``, with the lines of :data:`LOAD_NOISE` that it writes to file descriptor 2
    while loading kept out of the notebook (any other line is written to ``sys.stderr``). fd 2 is
    restored afterwards; a second call returns the module already loaded."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices("GPU")  # loads the device libraries (their lines too) now
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        text = captured.read().decode("utf-8", "replace")
    kept = loud_lines(text)
    if kept:
        print("\n".join(kept), file=sys.stderr)
    return tf


def loud_lines(text: str) -> list[str]:
    """The lines of ``text`` that are not TensorFlow's start-up noise (:data:`LOAD_NOISE`)."""
    return [line for line in text.splitlines() if not any(re.search(p, line) for p in LOAD_NOISE)]


def missing_requirements(requirements: Path) -> list[str]:
    """The lines of a requirements file that this Python does not satisfy: not installed, or
    installed at a version outside the line's specifier. Comments, options (``-r``, ``--index-url``)
    and lines whose environment marker excludes this Python are skipped."""
    from packaging.requirements import InvalidRequirement, Requirement

    missing = []
    for raw in Path(requirements).read_text().splitlines():
        line = raw.split(" #")[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement as e:
            raise ValueError(f"{requirements}: cannot read the requirement {line!r}: {e}") from None
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        try:
            installed = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(line)
            continue
        if requirement.specifier and not requirement.specifier.contains(installed, prereleases=True):
            missing.append(line)
    return missing


def install_missing(requirements: Path, run=subprocess.run) -> list[str]:
    """Install with pip what :func:`missing_requirements` lists, and say what was done in one line.
    Returns the lines installed (empty when the runtime already has everything)."""
    missing = missing_requirements(requirements)
    if not missing:
        versions = ", ".join(f"{name} {_version(name)}" for name in ("tensorflow", "keras"))
        print(f"requirements: this runtime already has everything {Path(requirements).name} asks for ({versions})")
        return []
    print(f"requirements: installing what this runtime lacks: {', '.join(missing)}")
    result = run([sys.executable, "-m", "pip", "install", "-q", *missing], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"pip could not install {', '.join(missing)}:\n{result.stderr.strip()[-2000:]}")
    return missing


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def tensorboard_binary() -> str | None:
    """Where ``%tensorboard`` will find TensorBoard; sets ``TENSORBOARD_BINARY`` to this environment's
    ``bin/tensorboard`` when ``tensorboard`` is not on ``PATH`` (and the variable is not set)."""
    if os.environ.get("TENSORBOARD_BINARY"):
        return os.environ["TENSORBOARD_BINARY"]
    on_path = shutil.which("tensorboard")
    if on_path:
        return on_path
    beside = Path(sys.executable).parent / "tensorboard"
    if beside.is_file() and os.access(beside, os.X_OK):
        os.environ["TENSORBOARD_BINARY"] = str(beside)
        return str(beside)
    return None


def folders(model_data=None, data_dir=None, home: Path | None = None, repo: Path | None = None) -> tuple[str, str]:
    """The runs' and the datasets' folders: the notebook's values when set, else the command line's
    variables (``GANHELPERS_MODEL_DATA``, ``GANHELPERS_DATA``), else under ``home`` (Google Drive on
    Colab), else ``<repo>/model_data`` and ``~/.keras/datasets``."""
    env_runs, env_data = os.environ.get("GANHELPERS_MODEL_DATA"), os.environ.get("GANHELPERS_DATA")
    if model_data is None:
        model_data = env_runs or (home / "model_data" if home else (repo / "model_data" if repo else "model_data"))
    if data_dir is None:
        data_dir = env_data or (home / "datasets" if home else Path.home() / ".keras" / "datasets")
    return str(model_data), str(data_dir)


def start(model_data=None, data_dir=None, *, mixed_precision: bool = True, home: Path | None = None,
          repo: Path | None = None, requirements: Path | None = None, devices: int | None = None) -> Session:
    """Everything a notebook's setup cell does once ganhelpers is importable (see the module
    docstring); prints one line per choice."""
    if requirements is not None:
        install_missing(requirements)
    tf = import_tensorflow()
    strategy = distribution(devices)
    gpu = bool(tf.config.list_physical_devices("GPU"))
    precision = "mixed" if mixed_precision and gpu else "float32"
    model_data, data_dir = folders(model_data, data_dir, home, repo)
    if not gpu:
        print("NO GPU: this runtime trains on the CPU, fine for the small presets but far too slow for 'full'."
              "\nOn Colab: Runtime > Change runtime type > GPU, then Runtime > Run all.")
    board = tensorboard_binary()
    replicas = int(strategy.num_replicas_in_sync) if strategy is not None else 1
    where = "GPUs" if gpu else "logical CPU devices"
    print(f"ganhelpers: {Path(__file__).resolve().parent}\nruns: {model_data}\ndatasets: {data_dir}\n"
          f"GPU: {gpu}, precision: {precision}\n"
          + (f"devices: {replicas} replicas ({type(strategy).__name__} over {replicas} {where})\n" if strategy
             else "devices: 1 (DEVICES = 2 or more trains on several with tf.distribute)\n")
          + f"tensorboard: {board or 'not found (pip install tensorboard)'}")
    return Session(model_data, data_dir, gpu, precision, tf, strategy, replicas)
