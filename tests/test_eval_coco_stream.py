"""CocoStream (COCO matching group by group while inference runs) == one pycocotools COCOeval over all.

The expected figures come from pycocotools itself (``COCOeval(gt, gt.loadRes(all results))`` with
evaluate / accumulate / summarize), never from zooport. The synthetic set has small, medium and
large boxes, several categories, crowd boxes, images without ground truth and images without any
detection, so a wrong record order or a lost image changes the figures.
"""
from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from zooport.eval.coco import SUMMARY_KEYS, CocoStream, score_coco


def _synthetic(tmp_path, seed=0, n_img=23, cats=(1, 3, 7, 9)):
    rng = np.random.default_rng(seed)
    images, anns, results = [], [], []
    for i in range(n_img):
        img_id = 100 + 7 * i  # ids not in file order once shuffled below
        images.append({"id": img_id, "width": 640, "height": 480, "file_name": f"{img_id}.jpg"})
        n_gt = 0 if i % 5 == 4 else int(rng.integers(1, 6))
        for _ in range(n_gt):
            side = float(rng.choice([12.0, 60.0, 200.0])) * float(rng.uniform(0.7, 1.3))
            x, y = float(rng.uniform(0, 640 - side)), float(rng.uniform(0, 480 - side))
            anns.append({"id": len(anns) + 1, "image_id": img_id, "category_id": int(rng.choice(cats)),
                         "bbox": [x, y, side, side * 0.8], "area": side * side * 0.8,
                         "iscrowd": int(rng.random() < 0.1)})
            if rng.random() < 0.8:  # a detection near it, sometimes the wrong class
                j = rng.normal(0, side * 0.1, 4)
                results.append({"image_id": img_id, "category_id": int(rng.choice(cats)) if rng.random() < 0.2
                                else anns[-1]["category_id"],
                                "bbox": [x + j[0], y + j[1], side + j[2], side * 0.8 + j[3]],
                                "score": float(rng.random())})
        if i % 7 != 3:  # false positives (and images 3, 10, 17: no detection at all)
            for _ in range(int(rng.integers(0, 4))):
                results.append({"image_id": img_id, "category_id": int(rng.choice(cats)),
                                "bbox": [float(rng.uniform(0, 500)), float(rng.uniform(0, 380)),
                                         float(rng.uniform(5, 120)), float(rng.uniform(5, 90))],
                                "score": float(rng.random())})
        else:
            results = [r for r in results if r["image_id"] != img_id]
    rng.shuffle(images)
    gt = {"images": images, "annotations": anns,
          "categories": [{"id": c, "name": f"c{c}"} for c in cats]}
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    return path, [im["id"] for im in images], results


def _one_shot(path, results, img_ids):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(path))
        ev = COCOeval(gt, gt.loadRes(results), "bbox")
        ev.params.imgIds = list(img_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


@pytest.mark.parametrize("seed,groups", [(0, 1), (0, 4), (1, 5), (2, 23)])
def test_stream_in_groups_equals_one_cocoeval(tmp_path, seed, groups):
    path, img_ids, results = _synthetic(tmp_path, seed)
    ref = _one_shot(path, results, img_ids)
    stream = CocoStream(path)
    # groups in a shuffled order, as batches finish (rectangular batches are not in id order)
    order = list(np.random.default_rng(seed + 10).permutation(img_ids))
    for part in np.array_split(np.array(order), groups):
        ids = {int(i) for i in part}
        stream.add([r for r in results if r["image_id"] in ids], ids)
    got = stream.finish()
    assert [got["metrics"][k] for k in SUMMARY_KEYS] == [float(v) for v in ref.stats]
    prec = ref.eval["precision"]
    for k, row in enumerate(got["per_class"]):
        pk = prec[:, :, k, 0, -1]
        want = float(np.mean(pk[pk > -1])) if (pk > -1).any() else None
        assert row["AP"] == want, row
    assert 0.05 < got["metrics"]["AP"] < 0.95  # the set is not degenerate: matching matters


def test_stream_drops_nothing_and_score_coco_agrees(tmp_path):
    path, img_ids, results = _synthetic(tmp_path, 3)
    ref = _one_shot(path, results, img_ids)
    one = score_coco(path, results, img_ids)
    assert [one["metrics"][k] for k in SUMMARY_KEYS] == [float(v) for v in ref.stats]
    # leaving out one image's group changes the figures (the test can see a lost group)
    stream = CocoStream(path)
    for i in img_ids[1:]:
        stream.add([r for r in results if r["image_id"] == i], [i])
    assert stream.finish()["metrics"]["AR100"] != one["metrics"]["AR100"]


def test_stream_without_results_is_all_zero(tmp_path):
    path, img_ids, _ = _synthetic(tmp_path, 4)
    stream = CocoStream(path)
    stream.add([], img_ids)
    got = stream.finish()
    assert set(got["metrics"].values()) == {0.0}
    assert [r["category_id"] for r in got["per_class"]] == [1, 3, 7, 9]
