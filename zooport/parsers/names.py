"""Class names files (Darknet ``.names``, ``--names FILE``): the one reader.

Format: UTF-8 text (a BOM and CRLF line ends are accepted), one class name per line; surrounding
white space is stripped and blank lines are ignored. An unreadable, non-UTF-8 or empty file is a
:class:`~zooport.errors.ParseError` naming the file.
"""
from __future__ import annotations

import os

from ..errors import ParseError, UsageError


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


def resolve_names(names) -> list[str] | None:
    """Class names as every API takes them: None (keep the model's), a list/tuple of names, or a names file.

    The one place that turns a ``names=`` argument into a list: a file goes through :func:`read_names`; an
    empty list, or anything else, is a :class:`UsageError`.
    """
    if names is None:
        return None
    if isinstance(names, (list, tuple)):
        if not names:
            raise UsageError("names: an empty list; expected one class name per class (or None)")
        return [str(n) for n in names]
    if isinstance(names, (str, os.PathLike)):
        return read_names(names)
    raise UsageError(f"names: expected a names file or a list of class names, got {type(names).__name__}")
