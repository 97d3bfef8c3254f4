"""See what a model does on pictures and videos.

:func:`zooport.predict` (:mod:`.api`) returns :class:`~.detections.Detections`; :func:`zooport.draw`
(:mod:`.draw`) draws them; :mod:`.run` is the ``zooport predict`` loop over files, folders, globs and
videos (:mod:`.sources`), writing through :mod:`.outputs`. Nothing here is imported by ``import zooport``.
"""
