"""Ultralytics checkpoints <-> native :class:`~zooport.model_defs.ultralytics.model.UltralyticsModel`
(:mod:`.load`)."""
