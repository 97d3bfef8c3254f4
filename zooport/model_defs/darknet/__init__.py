"""Darknet networks as native modules: :class:`~.model.DarknetModel` (built from a parsed cfg plan), its layers
(:mod:`.layers`, :mod:`.pool`) and detection heads (:mod:`.heads`)."""
