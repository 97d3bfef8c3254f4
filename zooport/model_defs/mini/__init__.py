"""What mmdetection-mini's RR* YOLO models do beyond the native Darknet / YOLOv5 models they map onto:
its one deviating layer (:mod:`.layers`) and its mmdet 2.x test-time post-processing (:mod:`.predict`)."""
