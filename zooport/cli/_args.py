"""What every CLI verb shares: argument checks, output naming, the success line, progress bars.

The checks run before anything is loaded, so a mistake fails in milliseconds instead of after a
2-3 s model load or a whole evaluation. Each raises :class:`~zooport.errors.UsageError` (the CLI
prints one ``zooport: error:`` line and exits 2). Nothing here imports torch.

Output rule (every verb that writes): ``-o`` wins; otherwise the file goes beside the input, named
INPUT_STEM + the target's extension; when that name is an input itself, ``.converted`` is inserted
before the extension. An output never overwrites an input.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from ..errors import UsageError

# target -> file extension of what it writes (the default output name's suffix)
EXTENSIONS = {"pt": ".pt", "safetensors": ".safetensors", "darknet": ".weights", "yolov5": ".pt",
              "mmdet": ".pth", "onnx": ".onnx"}
IMGSZ_RANGE = (1, 16384)  # beyond this no detector runs; the stride rounding happens after load


def warn(message: str) -> None:
    """One ``zooport: warning: ...`` line on stderr, on a line of its own (open bars are cleared
    and redrawn below it)."""
    tq = sys.modules.get("tqdm")
    if tq is None:
        print(f"zooport: warning: {message}", file=sys.stderr)
        return
    with tq.tqdm.external_write_mode(file=sys.stderr):
        print(f"zooport: warning: {message}", file=sys.stderr)


# -- files -----------------------------------------------------------------------------------------------

def input_file(path, what: str = "input") -> Path:
    """``path`` as a Path after checking that it is an existing regular file (not a directory)."""
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{p}: is a directory; expected a {what} file")
    if not p.exists():
        raise UsageError(f"{p}: no such file ({what})")
    if not p.is_file():
        raise UsageError(f"{p}: not a regular file ({what})")
    return p


def input_dir(path, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{p}: no such folder ({what})")
    if not p.is_dir():
        raise UsageError(f"{p}: not a folder ({what})")
    return p


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def output_file(path, inputs=(), what: str = "output") -> Path:
    """Check an output path: its folder exists, it is not a folder, and it is none of ``inputs``."""
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{p}: is a directory; give the {what} file name")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"{p}: folder {parent} does not exist ({what})")
    for i in inputs:
        if i is not None and p.exists() and Path(i).exists() and _same_file(p, Path(i)):
            raise UsageError(f"{p}: the {what} would overwrite the input {i}; choose another -o")
    return p


def default_output(beside, target: str, inputs=()) -> Path:
    """The default output of ``target`` for input ``beside`` (see the module doc)."""
    b = Path(beside)
    ext = EXTENSIONS[target]
    out = b.with_name(b.stem + ext)
    taken = {Path(i).resolve() for i in inputs if i is not None}
    if out.resolve() in taken:
        out = b.with_name(b.stem + ".converted" + ext)
    return out


# -- numbers ---------------------------------------------------------------------------------------------

def at_least(flag: str, value, low: int):
    if value is not None and value < low:
        raise UsageError(f"{flag} {value}: expected an integer >= {low}")
    return value


def unit_interval(flag: str, value):
    """``value`` in [0, 1] (a score or IoU threshold)."""
    if value is not None and not 0.0 <= value <= 1.0:
        raise UsageError(f"{flag} {value}: expected a value in [0, 1]")
    return value


def opset(value: int) -> int:
    from ..export.onnx import MAX_OPSET, MIN_OPSET  # light module: torch is imported inside its functions

    if not MIN_OPSET <= value <= MAX_OPSET:
        raise UsageError(f"--opset {value}: not supported; expected {MIN_OPSET}..{MAX_OPSET}")
    return value


def imgsz(values, flag: str = "--imgsz", max_len: int = 2):
    """Range-check an image size given as one int or a list of 1..``max_len`` ints (None passes)."""
    if values is None:
        return None
    vals = [values] if isinstance(values, int) else list(values)
    if not 1 <= len(vals) <= max_len:
        raise UsageError(f"{flag} takes {'H or H W' if max_len == 2 else 'one size'}, got {' '.join(map(str, vals))}")
    lo, hi = IMGSZ_RANGE
    for v in vals:
        if not lo <= v <= hi:
            raise UsageError(f"{flag} {v}: expected pixels in {lo}..{hi}")
    return values


def round_imgsz(values, stride: int, flag: str = "--imgsz"):
    """Round every size up to a multiple of ``stride``, with a warning when one changes (as Ultralytics)."""
    if values is None:
        return None
    single = isinstance(values, int)
    vals = [values] if single else list(values)
    out = [max(stride, -(-v // stride) * stride) for v in vals]
    if out != vals:
        warn(f"{flag} {' '.join(map(str, vals))} is not a multiple of the model's max stride {stride}; "
             f"using {' '.join(map(str, out))}")
    return out[0] if single else out


def darknet_stride(cfg_path) -> int | None:
    """The max stride of a Darknet cfg (parsed and planned: no torch, milliseconds); None when the cfg
    does not parse (the load then reports why)."""
    from ..converters.darknet.meta import model_metadata
    from ..errors import ZooportError
    from ..parsers.darknet.cfg import parse_cfg
    from ..parsers.darknet.plan import build_plan

    try:
        cfg = parse_cfg(cfg_path)
        return max(model_metadata(cfg, build_plan(cfg))["stride"])
    except (ZooportError, OSError):
        return None


# -- model words -----------------------------------------------------------------------------------------

def model_words(words: list[str]) -> list[str]:
    """Check a MODEL given as words (``CFG [WEIGHTS]``, a checkpoint or a zoo name) before loading it.

    Paths must be regular files; a swapped ``WEIGHTS CFG`` pair and a lone ``.weights`` get a hint.
    A word that is not a path (no folder separator, no known suffix) is left for the zoo to resolve.
    """
    from ..loading import MODEL_SUFFIXES, check_model_spec

    if not words or len(words) > 2:
        raise UsageError(f"MODEL must be one or two words (CFG WEIGHTS, a checkpoint or a zoo name), got {words}")
    check_model_spec(words)
    for w in words:
        p = Path(w)
        if p.exists() or os.sep in w or p.suffix in MODEL_SUFFIXES:
            input_file(p, "model")
    return words


# -- success line and progress ---------------------------------------------------------------------------

def human_size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


def report_written(path, target: str, t0: float) -> None:
    """The one success line of every verb that writes: ``wrote PATH (SIZE, TARGET) in T s``."""
    p = Path(path)
    try:
        size = human_size(p.stat().st_size)
    except OSError:  # e.g. a character device as the output
        size = "? B"
    print(f"wrote {p} ({size}, {target}) in {time.perf_counter() - t0:.1f} s")


def progress(**kwargs):
    """A tqdm bar on stderr, shown only when stderr is a terminal; cleared when closed."""
    from tqdm import tqdm

    kwargs.setdefault("leave", False)
    kwargs.setdefault("file", sys.stderr)
    kwargs["disable"] = kwargs.get("disable", False) or not sys.stderr.isatty()
    return tqdm(**kwargs)


def close_bars() -> None:
    """Close every open tqdm bar, so that the next stderr line starts on a line of its own."""
    tq = sys.modules.get("tqdm")
    cls = getattr(tq, "tqdm", None)
    for bar in list(getattr(cls, "_instances", None) or []):
        try:
            bar.close()
        except Exception:  # a half-built bar: nothing left to clear
            pass


# -- per-verb checks too specific for the generic helpers above ------------------------------------------

def check_verify_args(args) -> None:
    """Every argument check of ``zooport verify``, before the dataset or the model is touched."""
    import re

    for f in args.merge or []:
        input_file(f, "shard partial")
    if args.model:
        model_words(args.model)
    if args.coco is not None:
        input_dir(args.coco, "--coco")
    if args.voc is not None:
        input_dir(args.voc, "--voc")
    for path, what in ((args.ann, "--ann annotations"), (args.names, "--names")):
        if path is not None:
            input_file(path, what)
    imgsz(args.imgsz, max_len=1)
    if args.imgsz is not None and args.model and args.model[0].endswith(".cfg"):
        stride = darknet_stride(args.model[0])  # known from the cfg alone; other models round inside verify
        if stride:
            args.imgsz = round_imgsz(args.imgsz, stride)
    at_least("--batch", args.batch, 1)
    at_least("--workers", args.workers, 0)
    at_least("--max-det", args.max_det, 1)
    unit_interval("--conf", args.conf)
    unit_interval("--iou", args.iou)
    if args.tolerance is not None and args.tolerance < 0:
        raise UsageError(f"--tolerance {args.tolerance}: expected a value >= 0")
    if args.shard is not None and not re.fullmatch(r"\d+/\d+", args.shard):
        raise UsageError(f"--shard must look like I/N (e.g. 0/4), got {args.shard!r}")
    if args.json is not None:
        output_file(args.json, what="--json output")
    if args.class_map is not None:
        from ..eval.classmap import BUILTIN

        if args.class_map not in BUILTIN:
            input_file(args.class_map, "--class-map YAML")
        elif args.model and args.model[0].endswith(".cfg") and args.names is None:
            raise UsageError(f"--class-map {args.class_map} maps class names, but a Darknet model has none "
                             "without a names file: pass --names FILE (e.g. coco.names)")
