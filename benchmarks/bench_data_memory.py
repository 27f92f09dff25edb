"""Peak memory of reading selected inputs lazily: 1,000 against 10,000, from small and large data sets.

    python benchmarks/bench_data_memory.py                       # synthetic data in a temporary directory
    python benchmarks/bench_data_memory.py --work /tmp/hf-mem    # keep (and reuse) the synthetic data there

Writes synthetic data sets (an x.npy + y.npy directory of 3 x 32 x 32 uint8 images, and an image folder of
32 x 32 RGB PNGs in 10 class folders) at two sizes each. For every (data set, number selected) it starts a fresh
Python process that opens the data set with open_dataset, takes every k-th item (subset), computes the
fingerprint, and reads the selection window by window (touching every pixel), then reports its peak resident
memory: VmHWM from /proc/self/status, which counts every page the process touched, file pages included. (Not
getrusage's ru_maxrss: on Linux a child's ru_maxrss starts from its parent's resident size at fork, here the
writer's.) Prints one row per run and the ratio of peaks for 10,000 against 1,000 selected inputs. Importing
haltfast imports torch, so the baseline after imports is a few hundred MiB; "peak - base" is the data's share.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIDE = 32
CLASSES = 10


def write_npy(root: Path, count: int, seed: int = 0) -> Path:
    """x.npy (count, 3, 32, 32) uint8 and y.npy, written in chunks (the writer's memory stays small too)."""
    if (root / "y.npy").is_file():
        return root
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    x = np.lib.format.open_memmap(root / "x.npy", mode="w+", dtype=np.uint8, shape=(count, 3, SIDE, SIDE))
    for start in range(0, count, 10_000):
        stop = min(start + 10_000, count)
        x[start:stop] = rng.integers(0, 256, (stop - start, 3, SIDE, SIDE), dtype=np.uint8)
    x.flush()
    del x
    np.save(root / "y.npy", rng.integers(0, CLASSES, count))
    return root


def write_folder(root: Path, count: int, seed: int = 0) -> Path:
    """count 32 x 32 RGB PNGs, spread over 10 class folders."""
    from PIL import Image

    done = root / ".complete"
    if done.is_file():
        return root
    rng = np.random.default_rng(seed)
    for label in range(CLASSES):
        (root / f"class{label}").mkdir(parents=True, exist_ok=True)
    for i in range(count):
        pixels = rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f"class{i % CLASSES}" / f"{i:06d}.png", compress_level=1)
    done.write_text("")
    return root


def peak_rss_kib() -> int:
    """The peak resident set size of this process so far (VmHWM), in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status (this benchmark needs Linux)")


def child(path: str, skip: int, selected: int, window: int) -> None:
    """One measurement, in its own process: open, subset, fingerprint, read every window."""
    from haltfast.data import open_dataset

    baseline = peak_rss_kib()
    start = time.perf_counter()
    source = open_dataset(path)
    opened = time.perf_counter() - start
    view = source.subset(skip, selected)
    start = time.perf_counter()
    view.fingerprint()
    hashed = time.perf_counter() - start
    start = time.perf_counter()
    total = 0.0
    for _, images in view.windows(window):
        total += float(images.sum(dtype=np.float64))
    read = time.perf_counter() - start
    peak = peak_rss_kib()
    print(
        json.dumps(
            {
                "size": len(source),
                "selected": len(view),
                "baseline_kib": baseline,
                "peak_kib": peak,
                "open_s": opened,
                "fingerprint_s": hashed,
                "read_s": read,
                "mean_pixel": total / (len(view) * int(np.prod(view.shape))),
            }
        )
    )


def measure(path: Path, size: int, selected: int, window: int) -> dict:
    command = [sys.executable, __file__, "--child", str(path), str(size // selected), str(selected), str(window)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=None, help="where to write the synthetic data (default: temp)")
    parser.add_argument("--npy-sizes", default="20000,200000", help="x.npy data set sizes (comma-separated)")
    parser.add_argument("--folder-sizes", default="10000,30000", help="image folder sizes (comma-separated)")
    parser.add_argument("--selected", default="1000,10000", help="numbers of selected inputs (comma-separated)")
    parser.add_argument("--window", type=int, default=256, help="images per window (default 256)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        path, skip, selected, window = args.child
        child(path, int(skip), int(selected), int(window))
        return
    with tempfile.TemporaryDirectory() as temporary:
        work = args.work or Path(temporary)
        sets = [("npy", int(n), write_npy(work / f"npy-{int(n)}", int(n))) for n in args.npy_sizes.split(",")]
        sets += [
            ("folder", int(n), write_folder(work / f"folder-{int(n)}", int(n))) for n in args.folder_sizes.split(",")
        ]
        selections = [int(k) for k in args.selected.split(",")]
        print(f"window {args.window} images; peak = VmHWM of a fresh process; base = the same after imports")
        print("| format | data set | selected | peak MiB | peak - base MiB | open s | fingerprint s | read s |")
        print("|---|---|---|---|---|---|---|---|")
        peaks = {}
        for kind, size, path in sets:
            for selected in selections:
                row = measure(path, size, selected, args.window)
                peaks[kind, size, selected] = row["peak_kib"]
                print(
                    f"| {kind} | {size:,} | {row['selected']:,} | {row['peak_kib'] / 1024:.1f} | "
                    f"{(row['peak_kib'] - row['baseline_kib']) / 1024:.1f} | {row['open_s']:.2f} | "
                    f"{row['fingerprint_s']:.2f} | {row['read_s']:.2f} |"
                )
        low, high = min(selections), max(selections)
        for kind, size, _ in sets:
            print(
                f"{kind} {size:,}: peak({high:,}) / peak({low:,}) = "
                f"{peaks[kind, size, high] / peaks[kind, size, low]:.3f}"
            )


if __name__ == "__main__":
    main()
