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
