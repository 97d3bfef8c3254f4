"""zooport.jpeg against stb_image itself (tests/golden/stb, made by scripts/make_golden_stb.py).

Darknet decodes with stb_image, whose integer IDCT, chroma upsampling and fixed-point YCbCr->RGB differ from
libjpeg's by up to a few levels; the hashes here are of the bytes stb_image returned, so a single level off
anywhere fails.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from helpers import asset

GOLDEN = Path(__file__).parent / "golden" / "stb"


def _rows(group):
    rows = [ln.split("\t") for ln in (GOLDEN / "decoded.tsv").read_text().splitlines()[1:]]
    return [(f, int(h), int(w), sha) for g, f, h, w, sha in rows if g == group]


def _check(path, h, w, sha):
    from zooport.jpeg import read_jpeg

    rgb = read_jpeg(path)
    assert rgb.shape == (h, w, 3) and rgb.dtype == np.uint8
    assert hashlib.sha256(np.ascontiguousarray(rgb).tobytes()).hexdigest() == sha, path


@pytest.mark.parametrize("name,h,w,sha", _rows("synthetic"), ids=lambda v: v if isinstance(v, str) else None)
def test_synthetic_variants_equal_stb(name, h, w, sha):
    _check(GOLDEN / name, h, w, sha)


def test_golden_covers_both_sets():
    assert len(_rows("synthetic")) == 6 and len(_rows("coco-tiny")) == 80


@pytest.mark.slow
def test_coco_tiny_equal_stb():
    folder = asset("coco-tiny/val2017")
    for name, h, w, sha in _rows("coco-tiny"):
        _check(Path(folder) / name, h, w, sha)


def test_stb_differs_from_opencv_and_read_image_gives_bgr():
    """The mode is worth having: OpenCV's libjpeg decode is not stb's (else the golden proves nothing about
    the switch); read_image(decoder='stb') is the same pixels in OpenCV's BGR order."""
    import cv2

    from zooport.eval.data import read_image
    from zooport.jpeg import read_jpeg

    p = GOLDEN / "syn_prog420.jpg"
    stb = read_jpeg(p)
    cv = cv2.imread(str(p), cv2.IMREAD_COLOR)[..., ::-1]
    assert stb.shape == cv.shape and np.abs(stb.astype(int) - cv).max() >= 1
    assert np.array_equal(read_image(p, "stb"), stb[..., ::-1])
    assert np.array_equal(read_image(p, "opencv"), cv[..., ::-1])


def test_corrupt_and_forged_jpegs_are_clear_errors(tmp_path):
    from zooport.eval.data import BadImage, read_image
    from zooport.errors import ZooportError

    data = (GOLDEN / "syn_420.jpg").read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[:200])
    with pytest.raises(BadImage, match="cut.jpg"):
        read_image(cut, "stb")
    # a header declaring 60000 x 60000 pixels over a few hundred bytes must not allocate gigabytes
    i = data.index(b"\xff\xc0")
    forged = bytearray(data)
    forged[i + 5:i + 9] = (60000).to_bytes(2, "big") * 2
    big = tmp_path / "forged.jpg"
    big.write_bytes(bytes(forged))
    with pytest.raises(ZooportError, match="forged.jpg"):
        read_image(big, "stb")


def test_unknown_decoder_is_usage_error():
    from zooport.errors import UsageError
    from zooport.eval.data import read_image

    with pytest.raises(UsageError, match="decoder"):
        read_image(GOLDEN / "syn_420.jpg", "libjpeg")


def test_predictor_picks_stb_for_the_darknet_way_only():
    """auto: stb_image decoding when a Darknet model runs the Darknet way; OpenCV otherwise or when asked."""
    import warnings

    import zooport
    from zooport.errors import UsageError
    from zooport.inference.api import Predictor

    cfg = Path(zooport.__file__).parent / "cfgs" / "darknet" / "yolov3-tiny.cfg"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the COCO-names note
        m = zooport.load_darknet(cfg, random_weights=True, seed=0)
    assert Predictor(m).decoder == "stb"
    assert Predictor(m, resize_interp="opencv").decoder == "opencv"
    assert Predictor(m, postprocess="yolov5").decoder == "opencv"
    assert Predictor(m, decoder="opencv").decoder == "opencv"
    with pytest.raises(UsageError, match="decoder"):
        Predictor(m, decoder="pil")
    # a path is decoded by the predictor's decoder: same detections as the stb pixels given as an array
    from zooport.jpeg import read_jpeg

    p = GOLDEN / "syn_prog420.jpg"
    pred = Predictor(m, conf=0.28, max_det=50)  # random weights: scores sit near 0.28
    a = zooport.predict(pred, p)
    b = zooport.predict(pred, np.ascontiguousarray(read_jpeg(p)[..., ::-1]))
    c = zooport.predict(pred, cv2_bgr(p))
    assert np.array_equal(a.boxes, b.boxes) and len(a) > 0
    assert not (len(a) == len(c) and np.array_equal(a.boxes, c.boxes))


def cv2_bgr(p):
    import cv2

    return cv2.imread(str(p), cv2.IMREAD_COLOR)
