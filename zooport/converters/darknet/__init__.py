"""Darknet cfg + ``.weights`` <-> native :class:`~zooport.model_defs.darknet.model.DarknetModel`: loading and
saving (:mod:`.load`), the flat ``.weights`` buffer (:mod:`.weights`) and the model metadata (:mod:`.meta`)."""
