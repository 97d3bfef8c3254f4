"""``zooport dataset browse``: the ground-truth boxes drawn on the images (class colours as ``predict``)."""
from __future__ import annotations

from pathlib import Path

from ..errors import DatasetError

CROWD_COLOR = (160, 160, 160)  # crowd (COCO) / difficult (VOC) boxes: grey


def browse(coco: dict, out_dir, *, ids=None, limit: int | None = None, progress: bool = False,
           ext: str = ".jpg") -> dict:
    """Draw every box of each image (``ids``: only those image ids, compared as text so COCO ints and VOC
    names both work; ``limit``: the first N) into ``out_dir/<stem><ext>``. Unreadable images are skipped and
    listed in ``failed``. Returns ``{"written", "boxes", "failed"}``."""
    from tqdm import tqdm

    from .files import read_image
    from ..inference.draw import class_color, draw_boxes
    from ..inference.outputs import write_image

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = coco["images"]
    if ids:
        want = {str(i) for i in ids}
        images = [im for im in images if str(im["id"]) in want or Path(im["file_name"]).stem in want]
        missing = want - {str(im["id"]) for im in images} - {Path(im["file_name"]).stem for im in images}
        if missing:
            raise DatasetError(f"image ids not in the dataset: {sorted(missing)}")
    if limit is not None:
        images = images[: max(0, int(limit))]
    cats = sorted(coco["categories"], key=lambda c: c["id"])
    index = {c["id"]: k for k, c in enumerate(cats)}
    names = {c["id"]: c["name"] for c in cats}
    per = {}
    for a in coco["annotations"]:
        per.setdefault(a["image_id"], []).append(a)
    written = boxes = 0
    failed = []
    for im in tqdm(images, desc="browse", unit="img", disable=not progress, leave=False):
        try:
            img = read_image(im["_path"])
        except DatasetError as e:
            failed.append({"path": str(im["_path"]), "error": str(e).removeprefix(f"{im['_path']}: ")})
            continue
        anns = per.get(im["id"], [])
        b = [[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)]
        labels = [names[a["category_id"]] + (" (crowd)" if a.get("iscrowd") else "") for a in anns]
        colors = [CROWD_COLOR if a.get("iscrowd") else class_color(index[a["category_id"]]) for a in anns]
        write_image(out_dir / (Path(im["file_name"]).stem + ext), draw_boxes(img, b, labels, colors))
        written += 1
        boxes += len(anns)
    return {"written": written, "boxes": boxes, "failed": failed}
