"""Execute a notebook the way a student does, and check what they would see.

A :class:`Kernel` is one Jupyter kernel started in ``notebooks/`` with Jupyter's default (inline)
matplotlib backend and no TensorFlow log setting of ours (the notebook's setup cell sets its own).
``kernel.run_all(**parameters)`` executes every cell with the parameters injected after the
``parameters`` cell, as papermill does; calling it again in the same kernel is a student changing
the parameters cell and choosing "Run all" (how the exercises say to do them). A fresh
:class:`Kernel` is a new session: a Colab disconnect.

:func:`check_outputs` asserts what a reader sees: no error output, an image in every cell that draws
a figure, no stderr beyond :data:`ALLOWED_STDERR`, no TensorFlow banner and no progress bars.
"""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"

# stderr lines a notebook may show (each a regex matched against one line). Keep this short: the
# notebooks set TF_CPP_MIN_LOG_LEVEL=3 before TensorFlow loads, so its C++ lines never appear.
ALLOWED_STDERR: tuple[str, ...] = (
    r"^\s*$",
)
# Text that must never reach a reader: TensorFlow's start-up lines and Keras' progress bars (the
# notebooks train with verbose=2: one line per epoch).
FORBIDDEN = (r"oneDNN custom operations", r"cuInit", r"absl::InitializeLog", r"Could not find cuda drivers",
             r"This TensorFlow binary is optimized", r"Unable to register cu",
             r"\d+/\d+ ━", r"\x08")
# A cell whose source has one of these draws a figure and must show an image.
# (``gif_html(``: a GIF shown as an <img> holding its bytes, which an HTML export shows too.)
FIGURE_MARKERS = ("plt.show()", "display(loss_figure", "display(fig", "display(Image(", "gif_html(")


# What this suite sets in its own environment and a student's kernel never has. PYTEST_CURRENT_TEST
# matters most: ipykernel does not show what a kernel writes to file descriptor 2 (TensorFlow's C++
# lines) when it finds that variable, so with it a test would not see the red box a student sees.
SUITE_ONLY = ("TF_CPP_MIN_LOG_LEVEL", "PYTEST_CURRENT_TEST", "PYTEST_VERSION", "PYTEST_XDIST_WORKER")


def kernel_env(**changes) -> dict:
    """The kernel's environment: a student's, i.e. this process's without what the suite sets
    (:data:`SUITE_ONLY`, and the empty ``CUDA_VISIBLE_DEVICES`` of conftest.py), with ``changes``
    applied (a value of None removes a variable). No matplotlib backend is set, so the kernel uses
    Jupyter's inline one."""
    env = {k: v for k, v in os.environ.items() if k not in SUITE_ONLY}
    if env.get("CUDA_VISIBLE_DEVICES") == "":
        del env["CUDA_VISIBLE_DEVICES"]
    for k, v in changes.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


def parameter_cell(parameters: dict) -> nbformat.NotebookNode:
    source = "\n".join(f"{k} = {v!r}" for k, v in parameters.items())
    return nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})


class Kernel:
    """One kernel running ``notebooks/<name>`` (a context manager); see the module docstring."""

    def __init__(self, name: str, timeout: int = 600, *, path: Path | None = None, cwd: Path | None = None,
                 env: dict | None = None, kernel_name: str = "python3"):
        """``name`` in ``notebooks/``, or the notebook at ``path``; the kernel starts in ``cwd``
        (default: the notebook's folder) with ``env`` (default: :func:`kernel_env`)."""
        from nbclient import NotebookClient

        self.name = name
        self.path = Path(path) if path else NOTEBOOKS / name
        self.source = nbformat.read(self.path, as_version=4)
        self.executed = nbformat.v4.new_notebook(metadata=copy.deepcopy(self.source.metadata))
        self.client = NotebookClient(self.executed, timeout=timeout, kernel_name=kernel_name,
                                     resources={"metadata": {"path": str(cwd or self.path.parent)}})
        self.env = kernel_env() if env is None else env
        self._context = None
        self._passes = 0

    def __enter__(self) -> Kernel:
        self._context = self.client.setup_kernel(env=self.env)
        self._context.__enter__()
        return self

    def __exit__(self, *exc):
        return self._context.__exit__(*exc)

    def run(self, source: str, allow_errors: bool = False) -> nbformat.NotebookNode:
        """Execute one extra cell (a test's probe) and return it with its outputs (an error output
        too, with ``allow_errors``; else an error raises ``CellExecutionError``)."""
        cell = nbformat.v4.new_code_cell(source)
        self.client.allow_errors = allow_errors
        try:
            return self._execute([cell])[0]
        finally:
            self.client.allow_errors = False

    def run_all(self, **parameters) -> list[nbformat.NotebookNode]:
        """Every cell, with ``parameters`` injected after the ``parameters`` cell; returns the
        executed cells of this pass (a failing cell raises ``CellExecutionError``)."""
        cells = copy.deepcopy(self.source.cells)
        at = next(i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", []))
        cells.insert(at + 1, parameter_cell(parameters))
        self._passes += 1
        if self._passes > 1:  # every pass appends the notebook's cells again: keep cell ids unique
            for cell in cells:
                if "id" in cell:
                    cell.id = f"{cell.id}-{self._passes}"
        return self._execute(cells)

    def _execute(self, cells):
        for cell in cells:
            self.executed.cells.append(cell)
            if cell.cell_type == "code":
                self.client.execute_cell(cell, len(self.executed.cells) - 1)
        return cells

    def save(self, path: Path) -> Path:
        nbformat.write(self.executed, path)
        return path


def stream_text(cell, name: str) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", [])
                   if o.get("output_type") == "stream" and o.get("name") == name)


def all_text(cells) -> str:
    """Every text a reader sees in ``cells``: streams and text/plain results."""
    parts = []
    for cell in cells:
        for o in cell.get("outputs", []):
            parts.append(o.get("text", "") if o.get("output_type") == "stream" else
                         o.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def learning_checks(cells) -> list[str]:
    """The lines of ``cells``' output that report a learning check (``learning check: ...``, or
    ``<model>: learning check: ...`` when a notebook trains two models)."""
    return [line for cell in cells for line in stream_text(cell, "stdout").splitlines()
            if re.match(r"(?:[\w() -]+: )?learning check: ", line)]


def check_outputs(cells, no_figure: tuple[str, ...] = ()) -> dict:
    """Assert what a reader sees in executed ``cells``; returns ``{"figures": n, "stderr": [lines]}``.
    Cells containing a string of ``no_figure`` are not expected to draw (a figure the parameters skip)."""
    figures, allowed_seen = 0, []
    for cell in cells:
        if cell.cell_type != "code":
            continue
        src = cell.source
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, f"error output in cell:\n{src}\n{errors[0].get('ename')}: {errors[0].get('evalue')}"
        for line in stream_text(cell, "stderr").splitlines():
            assert any(re.search(p, line) for p in ALLOWED_STDERR), \
                f"unexpected stderr line {line!r} in cell:\n{src[:300]}"
            allowed_seen.append(line)
        text = all_text([cell])
        for bad in FORBIDDEN:
            assert not re.search(bad, text), f"{bad!r} in the output of cell:\n{src[:300]}"
        if any(m in src for m in FIGURE_MARKERS) and not any(s in src for s in no_figure):
            kinds = {k for o in cell.get("outputs", []) for k in o.get("data", {})}
            wanted = ("image/png", "image/gif") if "display(Image(" in src else \
                ("text/html",) if "gif_html(" in src else ("image/png",)
            assert kinds & set(wanted), f"no {' or '.join(wanted)} output (got {sorted(kinds)}) in cell:\n{src}"
            if "gif_html(" in src:
                assert any("data:image/gif;base64," in o.get("data", {}).get("text/html", "")
                           for o in cell.get("outputs", [])), f"no embedded GIF in the output of cell:\n{src}"
            figures += 1
    return {"figures": figures, "stderr": allowed_seen}


def results(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "results.json").read_text())


def smoke(tmp_path: Path, **parameters) -> dict:
    """The parameters of a test run: the smoke preset, runs and downloads under ``tmp_path``."""
    return {"PRESET": "smoke", "MODEL_DATA": str(tmp_path / "model_data"), "DATA_DIR": str(tmp_path / "data"),
            **parameters}


def exported_html(kernel: Kernel, cells) -> str:
    """``cells`` (executed in ``kernel``) exported as nbconvert's HTML exporter does (``jupyter
    nbconvert --to html``): what a reader of the shared HTML file sees."""
    from nbconvert import HTMLExporter

    notebook = nbformat.v4.new_notebook(cells=cells, metadata=copy.deepcopy(kernel.executed.metadata))
    return HTMLExporter().from_notebook_node(notebook)[0]


def embedded_gifs(html: str) -> int:
    """How many GIFs ``html`` shows with their bytes; asserts no GIF fell back to the text of its
    ``Image`` object (what nbconvert writes for an ``image/gif`` output)."""
    assert "IPython.core.display.Image object" not in html, "a GIF shown as the text of its Image object"
    return html.count('src="data:image/gif;base64,')  # the exporter writes the <img>'s attributes in its order
