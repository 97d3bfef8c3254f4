"""MMDetection checkpoints <-> native models (:mod:`.load`), and the YOLOv3 bridge between MMDetection's layout
and Darknet's ``yolov3.cfg`` (:mod:`.darknet_bridge`)."""
