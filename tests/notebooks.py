"""Execute a notebook with papermill in its smoke preset (used by every notebook test)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def run_notebook(name: str, tmp_path: Path, timeout: int = 900, **parameters) -> Path:
    """Run ``notebooks/<name>`` with ``PRESET="smoke"``, ``MODEL_DATA`` and ``DATA_DIR`` in ``tmp_path``;
    returns the executed copy (papermill raises ``PapermillExecutionError`` if a cell fails)."""
    import papermill as pm

    params = {"PRESET": "smoke", "MODEL_DATA": str(tmp_path / "model_data"),
              "DATA_DIR": str(tmp_path / "data")}
    params.update(parameters)
    out = tmp_path / name
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               TF_CPP_MIN_LOG_LEVEL="2", MPLBACKEND="Agg")
    old = dict(os.environ)
    os.environ.update(env)
    try:
        pm.execute_notebook(str(NOTEBOOKS / name), str(out), parameters=params, cwd=str(NOTEBOOKS),
                            kernel_name="python3", execution_timeout=timeout, progress_bar=False)
    finally:
        os.environ.clear()
        os.environ.update(old)
    return out
