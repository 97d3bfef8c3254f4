"""Darknet ``.cfg`` text -> validated sections (:mod:`.cfg`, key tables in :mod:`.keys`) -> the layer plan with
Darknet's own shape inference and ``.weights`` accounting (:mod:`.plan`, per-layer rules in :mod:`.layer_rules`
and :mod:`.head_rules`). Torch-free."""
