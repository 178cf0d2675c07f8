"""Notebook 05's ``smoke`` preset on a fresh machine: an empty data folder and model_data (so the
digit classifier behind its KID is trained, as on a new Colab runtime without Drive), executed the
way a student runs it (a Jupyter kernel, every cell), with the seconds of every cell that took more
than one and the total (kernel start included).

    python benchmarks/notebook05_smoke.py

Measured on 2 CPU cores (AVX2, AVX-512F, AVX512-BF16) shared with other work: 39 to 71 s in all
over three runs, 11 to 26 s of it the digit classifier (announced before it starts).
"""

from __future__ import annotations

import datetime
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "benchmarks"), str(ROOT)]  # tests/notebooks.py first

from ganhelpers.precision import speed_flags  # noqa: E402
from notebooks import Kernel, all_text, smoke  # noqa: E402  (the notebook tests' harness)


def seconds(cell) -> float | None:
    ex = cell.metadata.get("execution", {})
    start, end = ex.get("iopub.execute_input"), ex.get("shell.execute_reply")
    if not (start and end):
        return None
    parse = lambda t: datetime.datetime.fromisoformat(t.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="nb05_smoke_") as tmp:
        start = time.perf_counter()
        with Kernel("05_dog_dcgan_variants.ipynb", timeout=1800) as kernel:
            cells = kernel.run_all(**smoke(Path(tmp)))
        total = time.perf_counter() - start
    for cell in cells:
        s = seconds(cell) if cell.cell_type == "code" else None
        if s is not None and s >= 1:
            print(f"{s:6.1f} s  {cell.source.splitlines()[0][:100]}")
    for line in all_text(cells).splitlines():  # the waits the notebook announces, and how long they took
        if line.startswith(("training the digit classifier", "digit classifier trained in", "training variant")):
            print("  notebook:", line)
    print(f"notebook 05, smoke, fresh data folder: {total:.0f} s in all ({total / 60:.1f} min); CPU: {speed_flags()}, "
          f"{os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
