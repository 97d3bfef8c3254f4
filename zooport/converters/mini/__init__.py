"""hhaAndroid/mmdetection-mini's own checkpoints <-> native models.

* :mod:`.keys`: the state-dict key names of mini's RR* YOLO models, in Darknet ``.weights`` order;
* :mod:`.darknet`: mini's Darknet-derived models (yolov3, yolov4, tiny_yolov3, tiny_yolov4) as native
  :class:`~zooport.model_defs.darknet.model.DarknetModel` built from the bundled Darknet cfgs, and
  Darknet ``.weights`` <-> mini ``.pth`` exactly as mini's ``tools/darknet/*.py`` converters write it;
* :mod:`.yolov5`: mini's RRYoloV5Backbone + RRYolov5Head (YOLOv5 v3.0) as a native YOLOv5 model;
* :mod:`.load`: ``load_mini(checkpoint, config)``, the family's loader.
"""
