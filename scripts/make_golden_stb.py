"""Make tests/golden/stb/: what stb_image itself decodes, the oracle for zooport.jpeg.

Darknet reads images with stb_image (``load_image_stb`` -> ``stbi_load(path, &w, &h, &c, 3)``). This
script compiles the stb_image.h that Darknet ships (AlexeyAB/darknet, ``3rdparty/stb/include/``) into a
tiny C driver with the system C compiler, runs it on

* the synthetic JPEG variants written here with OpenCV (progressive, 4:2:2 with restart markers,
  4:4:4, grayscale progressive, odd sizes that end in partial MCUs), kept in ``tests/golden/stb/``
  so the test never depends on the encoder that made them, and
* the 80 COCO images of ``$ZOOPORT_ASSETS/coco-tiny/val2017`` (read in place, never copied),

and writes ``decoded.tsv``: ``set  file  height  width  sha256`` where sha256 is that of the
(H, W, 3) RGB bytes stb_image returns.

Usage (needs gcc or cc, numpy, opencv; the Darknet source as a bare git dir or a checkout):

    python scripts/make_golden_stb.py --darknet /path/to/darknet[.git] --assets ../shared
"""
from __future__ import annotations

import argparse
import hashlib
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "stb"
HEADER = "3rdparty/stb/include/stb_image.h"
DRIVER = r"""
#define STB_IMAGE_IMPLEMENTATION
#include "stb_image.h"
#include <stdio.h>
/* argv: files. For each: writes FILE.rgb (H*W*3 bytes) and prints "FILE<TAB>H<TAB>W". */
int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    int w, h, c;
    unsigned char *d = stbi_load(argv[i], &w, &h, &c, 3);
    if (!d) { fprintf(stderr, "%s: %s\n", argv[i], stbi_failure_reason()); return 1; }
    char out[4096]; snprintf(out, sizeof out, "%s.rgb", argv[i]);
    FILE *f = fopen(out, "wb"); fwrite(d, 1, (size_t)w * h * 3, f); fclose(f);
    printf("%s\t%d\t%d\n", argv[i], h, w);
    stbi_image_free(d);
  }
  return 0;
}
"""


def synthetic_images(out: Path) -> list[Path]:
    """Small JPEGs covering the decoder's paths; the pattern has edges, gradients and noise."""
    import cv2

    rng = np.random.default_rng(0)
    variants = [  # name, (h, w), channels, cv2 imwrite flags
        ("syn_420", (61, 97), 3, [cv2.IMWRITE_JPEG_QUALITY, 90]),
        ("syn_444", (40, 33), 3, [cv2.IMWRITE_JPEG_QUALITY, 95, cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
                                   cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]),
        ("syn_422_rst", (75, 130), 3, [cv2.IMWRITE_JPEG_QUALITY, 80, cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
                                        cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422, cv2.IMWRITE_JPEG_RST_INTERVAL, 3]),
        ("syn_prog420", (90, 121), 3, [cv2.IMWRITE_JPEG_QUALITY, 85, cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
        ("syn_gray_prog", (50, 77), 1, [cv2.IMWRITE_JPEG_QUALITY, 75, cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
        ("syn_q30_411", (33, 140), 3, [cv2.IMWRITE_JPEG_QUALITY, 30, cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
                                        cv2.IMWRITE_JPEG_SAMPLING_FACTOR_411]),
    ]
    paths = []
    for name, (h, w), c, flags in variants:
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([(xx * 255 // max(1, w - 1)), (yy * 255 // max(1, h - 1)), ((xx + yy) % 32) * 8], -1)
        base[(xx // 9 + yy // 7) % 2 == 0] //= 2  # hard edges
        img = np.clip(base + rng.integers(-20, 21, base.shape), 0, 255).astype(np.uint8)
        if c == 1:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        p = out / f"{name}.jpg"
        if not cv2.imwrite(str(p), img, flags):
            raise SystemExit(f"cv2.imwrite failed for {p}")
        paths.append(p)
    return paths


def header_text(darknet: Path) -> bytes:
    if (darknet / HEADER).is_file():
        return (darknet / HEADER).read_bytes()
    return subprocess.run(["git", "--git-dir", str(darknet), "show", f"HEAD:{HEADER}"], check=True,
                          capture_output=True).stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--darknet", required=True, help="AlexeyAB/darknet checkout or bare git dir")
    ap.add_argument("--assets", default=os.environ.get("ZOOPORT_ASSETS", "../shared"))
    ap.add_argument("--cc", default=os.environ.get("CC", "cc"))
    a = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    syn = synthetic_images(OUT)
    coco = sorted((Path(a.assets) / "coco-tiny" / "val2017").glob("*.jpg"))
    if len(coco) != 80:
        raise SystemExit(f"expected 80 images in {a.assets}/coco-tiny/val2017, found {len(coco)}")
    hdr = header_text(Path(a.darknet))
    version = hdr.split(b"\n", 1)[0].decode().strip("/* ").strip()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "stb_image.h").write_bytes(hdr)
        (tmp / "drv.c").write_text(DRIVER)
        # -O2 on x86-64 defines __SSE2__, so stb takes its SIMD IDCT and colour paths, as Darknet's build does.
        subprocess.run([a.cc, "-O2", "-o", str(tmp / "drv"), str(tmp / "drv.c"), "-lm"], check=True)
        cc_version = subprocess.run([a.cc, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
        for group, files in (("synthetic", syn), ("coco-tiny", coco)):
            for f in files:
                local = tmp / f.name
                local.write_bytes(f.read_bytes())
                line = subprocess.run([str(tmp / "drv"), str(local)], check=True, capture_output=True,
                                      text=True).stdout.strip()
                _, h, w = line.split("\t")
                rgb = (tmp / f"{f.name}.rgb").read_bytes()
                assert len(rgb) == int(h) * int(w) * 3
                rows.append(f"{group}\t{f.name}\t{h}\t{w}\t{hashlib.sha256(rgb).hexdigest()}")
    (OUT / "decoded.tsv").write_text("set\tfile\theight\twidth\tsha256_rgb\n" + "\n".join(rows) + "\n")
    commit = subprocess.run(["git", "--git-dir", a.darknet, "rev-parse", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "(checkout)"
    (OUT / "versions.txt").write_text(f"stb_image: {version}\ndarknet commit: {commit}\ncompiler: {cc_version}\n"
                                      f"machine: {platform.machine()}\npython: {sys.version.split()[0]}\n")
    print(f"wrote {OUT}/decoded.tsv ({len(rows)} images)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
