"""`make test`'s runner: two pytest processes side by side; its exit code is pytest's."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("pytest_in_two", ROOT / "tools" / "pytest_in_two.py")
pytest_in_two = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pytest_in_two)


def test_the_pair_exits_as_pytest_would():
    code = pytest_in_two.exit_code
    assert code([0, 0]) == 0
    assert code([0, 5]) == code([5, 0]) == 0  # a -k that selects tests in one half only
    assert code([5, 5]) == 5
    assert code([1, 0]) == code([0, 1]) == code([5, 1]) == 1
    assert code([2, 1]) == 2 and code([0, 4]) == 4


def test_every_file_of_the_suite_runs_in_exactly_one_half():
    files = {str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_*.py")}
    side = set(pytest_in_two.PROCESS_FILES)
    assert side <= files and len(side) == len(pytest_in_two.PROCESS_FILES) == 6
    assert files - side  # the library half is every other file (`--ignore`s of the side's)
