"""Darknet ``.cfg`` parser (torch-free).

File format: INI-like text. ``[section]`` headers open a section; ``key=value`` lines belong to the
section above them; lines starting with ``#`` or ``;`` are comments. Like Darknet's ``strip()``, all
whitespace inside a line is removed before it is interpreted, so ``layers = -1, 61`` reads as
``layers=-1,61``. A ``#`` inside a value ends it (Darknet's ``atoi``/``atof`` and its list parsers stop
there: AlexeyAB's own cfgs write ``layers = 180 ###P6``). A UTF-8 BOM and CRLF line ends are accepted.

Stricter than Darknet, on purpose: a duplicate key, an unknown section, an unknown key for its section,
a line that is not ``key=value``, or a key before the first section raise :class:`ParseError` naming the
file and line (Darknet would warn and carry on, or use the first value). The one tolerated duplicate is a
training-only ``[net]`` key (``batch``, ``momentum``, ``decay``...; AlexeyAB's own yolo9000.cfg and
efficientnet cfgs repeat them): like Darknet, the first value wins. ``height``, ``width``, ``channels``,
``inputs`` and ``letter_box`` describe the model and may not repeat.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from ...errors import ParseError
from .keys import ACTIVATIONS, SECTION_ALIASES, known_keys

# [net] keys that change the model (input shape, preprocessing): never allowed twice
NET_STRUCTURAL_KEYS = frozenset({"height", "width", "channels", "inputs", "letter_box"})

REQUIRED = object()  # sentinel: the getter's key must be present


@dataclass
class Section:
    """One ``[section]`` of a cfg: raw option strings plus where each came from."""

    type: str                         # section name without brackets, as written ("net", "conv", "yolo", ...)
    options: dict[str, str]           # key -> raw value (whitespace removed, inline '#...' cut)
    line: int                         # 1-based line of the [section] header
    index: int                        # -1 for [net]/[network], else 0-based layer index
    key_lines: dict[str, int] = field(default_factory=dict)
    path: str | None = None           # cfg file, for error messages

    @property
    def kind(self) -> str:
        """Canonical layer type ("convolutional" for [conv], "net" for [network], ...)."""
        return SECTION_ALIASES[self.type]

    # -- typed getters -------------------------------------------------------------------------------
    def _where(self, key: str) -> int:
        return self.key_lines.get(key, self.line)

    def _raw(self, key: str, default):
        if key in self.options:
            return self.options[key]
        if default is REQUIRED:
            raise ParseError(f"[{self.type}] (layer {self.index}) needs '{key}=' but has none",
                             self.path, self.line)
        return None

    def error(self, key: str | None, message: str) -> ParseError:
        """A ParseError located at ``key``'s line (or the section header) of this section."""
        line = self.line if key is None else self._where(key)
        what = f"[{self.type}] (layer {self.index})" if self.index >= 0 else f"[{self.type}]"
        return ParseError(f"{what} {message}", self.path, line)

    def _convert(self, key, raw, conv, what):
        try:
            return conv(raw)
        except ValueError:
            raise self.error(key, f"{key}={raw!r}: expected {what}") from None

    def get_int(self, key: str, default=REQUIRED) -> int:
        raw = self._raw(key, default)
        return default if raw is None else self._convert(key, raw, _to_int, "an integer")

    def get_float(self, key: str, default=REQUIRED) -> float:
        raw = self._raw(key, default)
        return default if raw is None else self._convert(key, raw, _to_float, "a number")

    def get_str(self, key: str, default=REQUIRED) -> str:
        raw = self._raw(key, default)
        return default if raw is None else raw

    def get_ints(self, key: str, default=REQUIRED) -> list[int]:
        raw = self._raw(key, default)
        if raw is None:
            return default
        return self._convert(key, raw, lambda s: [_to_int(v) for v in _split_list(s)],
                             "a comma-separated list of integers")

    def get_floats(self, key: str, default=REQUIRED) -> list[float]:
        raw = self._raw(key, default)
        if raw is None:
            return default
        return self._convert(key, raw, lambda s: [_to_float(v) for v in _split_list(s)],
                             "a comma-separated list of numbers")


def _split_list(s: str) -> list[str]:
    # Darknet tolerates a trailing comma in anchors/layers lists ("1,2,"): drop one empty tail item.
    items = s.split(",")
    if len(items) > 1 and items[-1] == "":
        items.pop()
    return items


def _to_int(s: str) -> int:
    s = s.strip()
    if not s:
        raise ValueError(s)
    try:
        return int(s)
    except ValueError:
        f = float(s)  # "2.0" is an integer written as a float; "2.5" is not
        if not f.is_integer():
            raise
        return int(f)


def _to_float(s: str) -> float:
    v = float(s)
    if v != v:  # NaN is never a meaningful cfg value
        raise ValueError(s)
    return v


@dataclass
class DarknetCfg:
    """A parsed cfg: the [net] section and the layer sections in file order."""

    path: str | None
    text: str                 # the original text (stored in native checkpoints)
    net: Section
    layers: list[Section]

    @property
    def name(self) -> str:
        return os.path.basename(self.path) if self.path else "<cfg>"


def read_cfg_text(path: str | os.PathLike) -> str:
    """Read a cfg file as text (UTF-8, BOM stripped); OS and decoding failures become ParseError."""
    try:
        data = open(path, "rb").read()
    except OSError as e:
        raise ParseError(f"cannot read cfg file: {e.strerror}", path) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ParseError(f"not a UTF-8 text file (byte {e.start})", path, line) from None


def parse_cfg(source: str | os.PathLike | None = None, *, text: str | None = None) -> DarknetCfg:
    """Parse a Darknet cfg from a file (``source``) or from ``text`` (``source`` then only names it).

    Returns the sections; shapes and parameters are worked out by
    :func:`zooport.parsers.darknet.plan.build_plan`.
    """
    path = None if source is None else os.fspath(source)
    if text is None:
        if path is None:
            raise ParseError("parse_cfg needs a file path or text=")
        text = read_cfg_text(path)
    body = text[1:] if text.startswith("\ufeff") else text
    sections: list[Section] = []
    cur: Section | None = None
    # splitlines() also splits on \r, \x0b, \x0c...; Darknet only knows '\n' (and strips '\r')
    for lineno, raw in enumerate(body.split("\n"), start=1):
        line = "".join(raw.split())  # Darknet's strip(): remove every whitespace character
        if not line or line[0] in "#;":
            continue
        if line[0] == "[":
            if not line.endswith("]") or len(line) < 3:
                raise ParseError(f"malformed section header {raw.strip()!r}: expected [name]", path, lineno)
            name = line[1:-1]
            if name not in SECTION_ALIASES:
                raise ParseError(f"unknown section [{name}]; Darknet knows "
                                 f"{', '.join(sorted(set(SECTION_ALIASES)))}", path, lineno)
            cur = Section(type=name, options={}, line=lineno, index=-1, path=path)
            sections.append(cur)
            continue
        if "=" not in line:
            raise ParseError(f"cannot parse line {raw.strip()!r}: expected key=value or [section]", path, lineno)
        if cur is None:
            raise ParseError(f"option {raw.strip()!r} before the first [section]", path, lineno)
        key, value = line.split("=", 1)
        if not key:
            raise ParseError(f"empty key in line {raw.strip()!r}", path, lineno)
        if "#" in value:
            value = value.split("#", 1)[0]
        if key not in known_keys(cur.kind):
            raise ParseError(f"unknown key '{key}' in [{cur.type}] (section at line {cur.line})", path, lineno)
        if key in cur.options:
            if cur.kind == "net" and key not in NET_STRUCTURAL_KEYS:
                # AlexeyAB's own cfgs repeat training-only [net] keys (batch, momentum, decay, ...);
                # Darknet's option_find() returns the first occurrence, so keep the first one.
                continue
            raise ParseError(f"duplicate key '{key}' in [{cur.type}] (first set at line "
                             f"{cur.key_lines[key]})", path, lineno)
        if key in ("activation", "lstm_activation") and value not in ACTIVATIONS:
            # Darknet silently falls back to relu for a misspelt name; that changes the model, so reject
            raise ParseError(f"unknown activation '{value}' in [{cur.type}]; expected one of "
                             f"{', '.join(sorted(ACTIVATIONS))}", path, lineno)
        cur.options[key] = value
        cur.key_lines[key] = lineno
    if not sections:
        raise ParseError("empty cfg: no sections (expected [net] followed by layers)", path, 1 if not body else None)
    if sections[0].kind != "net":
        raise ParseError(f"missing [net]: the first section is [{sections[0].type}], expected [net] or [network]",
                         path, sections[0].line)
    for s in sections[1:]:
        if s.kind == "net":
            raise ParseError(f"[{s.type}] may only be the first section", path, s.line)
    layers = sections[1:]
    for i, s in enumerate(layers):
        s.index = i
    return DarknetCfg(path=path, text=text, net=sections[0], layers=layers)
