"""YOLOv5 checkpoints <-> native models (:mod:`.load`), and the YOLOv5 -> Darknet export (:mod:`.to_darknet`,
its structural lowering :mod:`.darknet_lower` and the exact batch-norm fold :mod:`.bn_fold`)."""
