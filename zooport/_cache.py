"""Where zooport caches files (downloads, the verifier's ONNX exports). Torch-free, import-light."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The cache folder: ``$ZOOPORT_CACHE`` or the platform's user cache dir for zooport."""
    v = os.environ.get("ZOOPORT_CACHE")
    if v:
        return Path(v).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("zooport", appauthor=False))
