"""Checkpoints that pickle whole modules (YOLOv5, Ultralytics), read without importing or running anything they
name: the allowlist unpickler and its inert stand-ins (:mod:`.allowlist`), the zip reader (:mod:`.reader`)
and the legacy torch < 1.6 layout (:mod:`.legacy`)."""
