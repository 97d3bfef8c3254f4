"""JPEG decoding cost: zooport.jpeg (stb_image bit for bit, pure numpy) vs cv2.imread, side by side.

    python scripts/bench_decode.py [--images ../shared/coco-tiny/val2017] [--repeat 3]

Prints the median milliseconds per image of each and the ratio stb / opencv (the baseline), measured in
one run on the same files (read from the page cache: decoding only, no disk).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", default=os.path.join(os.environ.get("ZOOPORT_ASSETS", "../shared"),
                                                      "coco-tiny", "val2017"))
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    from zooport.eval.data import read_image

    files = sorted(Path(a.images).glob("*.jpg"))
    if not files:
        raise SystemExit(f"no .jpg files in {a.images}")
    times = {"opencv": [], "stb": []}
    for f in files:
        for dec in times:  # interleaved, so both see the same machine state
            best = []
            for _ in range(a.repeat):
                t = time.perf_counter()
                read_image(f, dec)
                best.append(time.perf_counter() - t)
            times[dec].append(min(best))
    med = {k: 1e3 * statistics.median(v) for k, v in times.items()}
    print(f"{len(files)} images, median of per-image best-of-{a.repeat}:")
    print(f"  opencv (cv2.imread)      {med['opencv']:8.2f} ms/img")
    print(f"  stb    (zooport.jpeg)    {med['stb']:8.2f} ms/img")
    print(f"  ratio stb / opencv       {med['stb'] / med['opencv']:8.1f}x")


if __name__ == "__main__":
    main()
