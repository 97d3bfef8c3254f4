"""The one error hierarchy of zooport.

Every error a user can cause (a bad file, a bad argument, a failed download)
is a :class:`ZooportError` subclass whose message names the file, the
line/layer/key and what was expected. The CLI prints ``str(err)`` without a
traceback and exits with status 2. Anything else escaping is a bug.
"""
from __future__ import annotations

import os


class ZooportError(Exception):
    """Base class of every error a user can cause."""

    exit_code = 2


class UsageError(ZooportError):
    """Contradicting or invalid arguments to a function or command."""


class ParseError(ZooportError):
    """A text file (Darknet cfg, names file, config) is malformed.

    ``path`` and ``line`` (1-based) locate the problem when known.
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None, line: int | None = None):
        self.path = None if path is None else str(path)
        self.line = line
        where = ""
        if self.path is not None:
            where = self.path + (f":{line}" if line is not None else "") + ": "
        super().__init__(where + message)


class UnsupportedError(ZooportError):
    """Valid input that zooport deliberately does not handle (e.g. a Darknet [lstm] layer)."""


class WeightsError(ZooportError):
    """A Darknet ``.weights`` file does not fit its cfg (truncated, trailing data, bad header)."""


class CheckpointError(ZooportError):
    """A ``.pt``/``.pth``/``.safetensors`` checkpoint is broken or does not match its model
    (missing or unused keys, shape mismatches, non-float weights)."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint asks for something outside the allowlist (code execution gadgets,
    TorchScript, path traversal in the archive, ...). Nothing from it was executed."""


class ConfigError(ZooportError):
    """An architecture description (YOLOv5 yaml dict, MMDetection config) is invalid or unsupported."""


class ExportError(ZooportError):
    """ONNX export failed or produced a model that does not check."""


class DatasetError(ZooportError):
    """A COCO/VOC dataset on disk is incomplete or malformed."""


class ManifestError(ZooportError):
    """The zoo manifest is invalid, or a model name is not in it."""


class DownloadError(ZooportError):
    """A file could not be fetched (HTTP error, no network, offline mode, disk full)."""


class IntegrityError(DownloadError):
    """A downloaded or cached file does not have the expected size or sha256."""


class WriteError(ZooportError):
    """An output could not be written (disk full, file too large, permission denied, read-only file
    system, a target that is not a file...). ``path`` names the output; nothing partial is left there."""

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        self.path = None if path is None else str(path)
        super().__init__(message if path is None else f"{path}: {message}")


class ZooportWarning(UserWarning):
    """Something zooport adjusted for the user (e.g. an image size rounded up to the model's stride). The
    CLI prints it as one ``zooport: warning: ...`` line; Python callers get a normal warning."""


class ZooportNote(ZooportWarning):
    """A default zooport chose for the user that they may want to know about (e.g. the COCO class names for an
    80-class Darknet cfg given without names). The CLI prints it as one ``zooport: note: ...`` line."""
