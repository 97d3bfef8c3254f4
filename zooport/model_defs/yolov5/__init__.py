"""YOLOv5 (v1.0 ... v7.0) as native modules: the detector :class:`~.model.YOLOv5Model`, the segmentation and
classification models (:mod:`.tasks`), the blocks a model yaml names (:mod:`.blocks`, :mod:`.conv_variants`,
:mod:`.seg_head`, :mod:`.cls_head`), the yaml row walker (:mod:`.parse`) and builders (:mod:`.create`)."""
