"""Shared fixtures. Tests run on CPU; TensorFlow's C++ logging is quietened."""

import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


@pytest.fixture
def model_data(tmp_path):
    """A throwaway model_data/ root for runs."""
    root = tmp_path / "model_data"
    root.mkdir()
    return root


@pytest.fixture(autouse=True)
def _quiet_absl():
    logging.getLogger("absl").setLevel(logging.WARNING)
    yield


# -- the 2-device process of test_distributed.py, started in the background --------------------------

def pytest_collection_finish(session):
    """When test_distributed.py's 2-device checks are selected, start their process now: its minutes
    of tracing (mostly one core) then overlap the tests that run before that file's."""
    if session.config.option.collectonly:
        return
    if any(item.nodeid.split("::")[0].endswith("test_distributed.py") and "two_devices" in item.fixturenames
           for item in session.items):
        import test_distributed

        root = session.config._tmp_path_factory.mktemp("two_devices") / "model_data"
        session.config._two_devices = test_distributed.start_two_devices(root)


def pytest_sessionfinish(session):
    started = getattr(session.config, "_two_devices", None)
    if started and started["proc"].poll() is None:  # the suite ended (-x, Ctrl-C) before the file's tests
        started["proc"].kill()
        started["proc"].wait()
