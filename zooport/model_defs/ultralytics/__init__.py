"""Ultralytics detectors as native modules: :class:`~.model.UltralyticsModel`, its blocks (:mod:`.blocks`) and the
yaml -> layer-spec builder with ``create_ultralytics`` (:mod:`.build`)."""
