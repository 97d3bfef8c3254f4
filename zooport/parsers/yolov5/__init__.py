"""YOLOv5 ``.pt`` checkpoints -> plain data (tensors, architecture dict, metadata): :mod:`.ckpt`, and the
classification models' architecture from their module tree (:mod:`.cls_arch`). Read through :mod:`..pickled`."""
