"""Ultralytics ``.pt`` checkpoints -> plain data (tensors, explicit architecture, metadata): :mod:`.ckpt`. Read
through :mod:`..pickled`."""
