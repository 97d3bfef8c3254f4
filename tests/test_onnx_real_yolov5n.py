"""ONNX acceptance 1-4 on the real yolov5n (see tests/onnx_real_common.py for the test bodies)."""
import pytest

from onnx_real_common import (  # noqa: F401  (pytest collects the imported tests here)
    make_fixture,
    test_default_and_raw,
    test_dynamic_second_size_batch2,
    test_half_runs_and_difference_is_reported,
    test_metadata_and_checker,
    test_nms_in_graph_matches_pytorch,
    test_opencv5_runs_default_export,
)

real = make_fixture("yolov5n")
pytestmark = pytest.mark.slow  # exports and onnxruntime runs of whole models
