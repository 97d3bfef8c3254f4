"""``zooport convert FORMAT ...``: one sub-verb per source format, each in its own module."""
from __future__ import annotations

import importlib

# source format -> module defining register(subparsers)
SOURCES = {
    "darknet": "zooport.cli.convert_darknet",
    "yolov5": "zooport.cli.convert_yolov5",
    "mmdet": "zooport.cli.convert_mmdet",
    "ultralytics": "zooport.cli.convert_ultralytics",
}


def register(sub) -> None:
    p = sub.add_parser(
        "convert",
        help="convert Darknet / YOLOv5 / MMDetection weights to a native checkpoint (or back)",
        description="Convert foreign detector weights into zooport's native checkpoint "
        "(a plain dict loadable with torch.load(weights_only=True)), safetensors, or back "
        "to the foreign format. Outputs are written atomically.",
    )
    fmt = p.add_subparsers(dest="source", metavar="SOURCE")
    fmt.required = True
    for module in SOURCES.values():
        importlib.import_module(module).register(fmt)
