"""hhaAndroid/mmdetection-mini's own model descriptions: its mmdet 2.x-schema ``.py`` configs of the RR* YOLO
models, read by the restricted AST reader (:mod:`zooport.parsers.mmdet.config`) into a
:class:`~.config.MiniArch` (:mod:`.config`). Torch-free."""
