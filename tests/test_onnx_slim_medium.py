"""ONNX acceptance 1 on the medium slim Darknet models (test bodies in tests/onnx_slim_common.py)."""
import pytest

from onnx_slim_common import (  # noqa: F401  (pytest collects the imported tests here)
    make_fixture,
    test_default_at_golden_size,
    test_dynamic_other_size_batch2,
    test_raw_matches_torch_and_darknet,
)

case = make_fixture("medium")
pytestmark = pytest.mark.slow  # exports and onnxruntime runs of whole models
