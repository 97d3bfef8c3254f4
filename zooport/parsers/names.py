"""Class names files (Darknet ``.names``, ``--names FILE``): the one reader.

Format: UTF-8 text (a BOM and CRLF line ends are accepted), one class name per line; surrounding
white space is stripped and blank lines are ignored. An unreadable, non-UTF-8 or empty file is a
:class:`~zooport.errors.ParseError` naming the file.
"""
from __future__ import annotations

import os

from ..errors import ParseError


def read_names(path: str | os.PathLike) -> list[str]:
    """The class names of ``path``, in file order."""
    if os.path.isdir(path):
        raise ParseError("is a directory; expected a names file (one class name per line)", path)
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8-sig")
    except OSError as e:
        raise ParseError(f"cannot read names file: {e.strerror}", path) from None
    except UnicodeDecodeError:
        raise ParseError("names file is not UTF-8 text", path) from None
    names = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not names:
        raise ParseError("names file is empty: expected one class name per line", path)
    return names
