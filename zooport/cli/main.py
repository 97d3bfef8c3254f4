"""``zooport`` entry point: argparse front end with an explicit verb registry.

Each verb module defines ``register(subparsers)``, which adds its parser and
sets ``func`` (called with the parsed args). Verb modules import nothing heavy
at module level, so ``zooport --help`` stays fast; torch and friends are
imported inside the ``func``.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from ..errors import ZooportError
from ._args import close_bars

# verb -> module defining register(subparsers); order is the order of --help
VERBS = {
    "demo": "zooport.cli.demo",
    "convert": "zooport.cli.convert",
    "export": "zooport.cli.export",
    "verify": "zooport.cli.verify",
    "info": "zooport.cli.info",
    "list": "zooport.cli.zoo",
    "fetch": "zooport.cli.zoo",
    "predict": "zooport.cli.predict",
    "dataset": "zooport.cli.dataset",
    "analyze": "zooport.cli.analyze",
}


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="zooport",
        description="Convert, export and verify object-detection weights: Darknet cfg/weights, "
        "YOLOv5 .pt and MMDetection checkpoints as native PyTorch, ONNX and back.",
    )
    parser.add_argument("--version", action="version", version=f"zooport {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="COMMAND")
    sub.required = True
    registered = set()
    for verb, module in VERBS.items():
        if module in registered:
            continue
        importlib.import_module(module).register(sub)
        registered.add(module)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with _zooport_warnings_as_lines():
            rc = args.func(args)
    except ZooportError as e:
        close_bars()  # an error never shares a line with a progress bar
        print(f"zooport: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        close_bars()
        print("zooport: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # stdout was piped into a reader that closed early (``zooport list | head``): stop quietly;
        # point stdout at devnull so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return int(rc or 0)


class _zooport_warnings_as_lines:
    """While a verb runs, a :class:`~zooport.errors.ZooportWarning` is one ``zooport: warning: ...`` line (a
    :class:`~zooport.errors.ZooportNote` one ``zooport: note: ...`` line; bars cleared first); other warnings
    are shown as Python shows them."""

    def __enter__(self):
        import warnings

        from ..errors import ZooportNote, ZooportWarning
        from ._args import warn

        self._old = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, ZooportWarning):
                warn(str(message), "note" if issubclass(category, ZooportNote) else "warning")
            else:
                self._old(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        return self

    def __exit__(self, *exc):
        import warnings

        warnings.showwarning = self._old
        return False


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
