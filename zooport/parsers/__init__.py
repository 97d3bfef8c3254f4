"""Parsers of foreign model descriptions and files, executing nothing from them: one sub-package per family
(:mod:`.darknet`, :mod:`.yolov5`, :mod:`.ultralytics`, :mod:`.mmdet`) and what families share (the allowlist
unpickler :mod:`.pickled`, bounded zip reads :mod:`.torch_zip`, the one names reader :mod:`.names`).

The text parsers (Darknet cfg and layer plan, MMDetection configs, names files) are torch-free; the
checkpoint readers build torch tensors.
"""
