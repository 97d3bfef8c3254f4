"""Parsers of foreign model descriptions and files, executing nothing from them.

The text parsers (Darknet cfg and layer plan, MMDetection configs, names files) are torch-free; the
YOLOv5 checkpoint readers (``yolov5_ckpt``, ``yolov5_unpickle``, ``yolov5_legacy``) build torch tensors.
"""
