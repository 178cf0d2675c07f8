"""`make test`: the suite as two pytest processes side by side, so both cores of a 2-core machine work.

Run serially (plain ``pytest``), the suite keeps about one core busy on average: many of its
minutes are one Python thread (notebook kernels starting, TensorFlow tracing, subprocesses being
waited for). Here the files that mostly drive other processes (notebook kernels, the command line,
Colab stand-ins, worker processes) run in one pytest process and the rest in another, started
together; the two share nothing but the caches, whose files are written atomically.

    python tools/pytest_in_two.py [pytest arguments...]

The arguments (``-k``, ``-x``, ``-m``...) go to both processes. The "library" process prints as it
goes; the "processes" one writes a log file (its path printed first), shown when both have ended,
then one summary line each. The exit code is
pytest's: the first that is neither 0 nor 5 (no test selected), else 0 if either ran tests, else 5.
"""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The files whose tests mostly wait on other processes (kernels, the CLI, workers, killed runs): 941 s
# of the 1,586 s of test time of one serial run on 2 cores, 3 December 2026 (measured with
# `pytest --durations=0`; the split is by file, so a file's fixtures stay together).
PROCESS_FILES = [
    "tests/test_notebooks.py",
    "tests/test_colab.py",
    "tests/test_session.py",
    "tests/test_cli.py",
    "tests/test_multiworker.py",
    "tests/test_run_integrity.py",
]


def _summary(log: str) -> str:
    words = (" passed", " failed", " error", " deselected", "no tests ran")
    lines = [line.strip("= ") for line in log.splitlines() if any(w in line for w in words) and " in " in line]
    return lines[-1] if lines else "(no summary line)"


def exit_code(codes: list[int]) -> int:
    """pytest's code for the pair: a failure or error wins; "no tests ran" (5) only if both say so."""
    for code in codes:
        if code not in (0, 5):
            return code
    return 0 if 0 in codes else 5


def main(argv: list[str]) -> int:
    missing = [f for f in PROCESS_FILES if not (ROOT / f).is_file()]
    if missing:
        raise SystemExit(f"pytest_in_two: {', '.join(missing)} named in PROCESS_FILES but not in the repository")
    base = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]
    processes = [*base, *PROCESS_FILES, *argv]
    library = [*base, "tests", *[f"--ignore={f}" for f in PROCESS_FILES], *argv]
    start = time.perf_counter()
    log_path = Path(tempfile.mkdtemp(prefix="pytest_in_two.")) / "processes.log"
    print(f"the processes' tests ({len(PROCESS_FILES)} files) run beside these; their log: {log_path}", flush=True)
    with open(log_path, "w+", encoding="utf-8") as side_log:
        side = subprocess.Popen(processes, cwd=ROOT, stdout=side_log, stderr=subprocess.STDOUT, text=True)
        try:
            front_lines = []
            with subprocess.Popen(library, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True) as front:
                for line in front.stdout:
                    sys.stdout.write(line)
                    sys.stdout.flush()
                    front_lines.append(line)
            front_seconds = time.perf_counter() - start
            side.wait()
        except KeyboardInterrupt:  # Ctrl-C reaches both processes (one process group); let them end
            side.wait()
            return 130
        wall = time.perf_counter() - start
        side_log.seek(0)
        side_text = side_log.read()
    print("\n" + "#" * 30 + " the processes' tests (" + " ".join(PROCESS_FILES) + ") " + "#" * 30)
    sys.stdout.write(side_text)
    print("#" * 100)
    print(f"library tests:  {_summary(''.join(front_lines))} (ended after {front_seconds:.0f} s)")
    print(f"process tests:  {_summary(side_text)}")
    print(f"both, side by side: {wall:.0f} s of wall time")
    return exit_code([side.returncode, front.returncode])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
