"""Memory of fitting the normalisation statistics: streamed from the PNG files against the whole split in memory.

Notebook 01 used to decode the whole training split into one float32 array to take its mean and
standard deviation: at 224 px that is 200 kB per image, 16 GB for the 78 000 training images of
ChestX-ray14, before the float64 copy. `preprocessing.fit_normalization(paths, image_size=224)`
streams the files through the tf.data pipeline in batches and keeps three running float64 numbers.

Writes N synthetic grey 224-px PNGs (default 2000) to a temporary folder, then fits the statistics
each way in a fresh interpreter and reports the peak resident memory each fit added (ru_maxrss minus
the resident memory just before the fit, after a warm-up), the two results (they must agree to 1e-6)
and, last, the memory ratio. Run: `.venv/bin/python benchmarks/bench_normalization_memory.py [N]`.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 224
ROOT = Path(__file__).resolve().parents[1]


def write_pngs(folder: Path, count: int) -> list[Path]:
    """``count`` smooth random grey 224-px PNGs (an X-ray-like gradient plus noise)."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 1, SIZE)[None, :] * np.linspace(0.5, 1, SIZE)[:, None]
    paths = []
    for i in range(count):
        image = 255 * np.clip(0.6 * ramp + 0.2 * rng.random() + 0.1 * rng.random((SIZE, SIZE)), 0, 1)
        path = folder / f"{i:05d}.png"
        Image.fromarray(image.astype(np.uint8)).save(path, compress_level=1)
        paths.append(path)
    return paths


def resident_kb() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() // 1024


def child(mode: str, folder: str) -> None:
    """Run one fit in this (fresh) interpreter and print a JSON line with its memory and result."""
    sys.path.insert(0, str(ROOT))
    from helpers import preprocessing

    paths = sorted(Path(folder).glob("*.png"))
    preprocessing.fit_normalization(paths[:4], image_size=SIZE)  # warm-up: TensorFlow and tf.data start-up
    preprocessing.fit_normalization(preprocessing.load_images(paths[:4], SIZE))
    before = resident_kb()
    if mode == "streaming":
        mean, std = preprocessing.fit_normalization(paths, image_size=SIZE, batch_size=64)
    else:  # what notebook 01 did: every image decoded into one array first
        mean, std = preprocessing.fit_normalization(preprocessing.load_images(paths, SIZE))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"mode": mode, "before_kb": before, "peak_kb": peak, "mean": mean, "std": std}))


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    with tempfile.TemporaryDirectory(prefix="medxai-bench-norm-") as folder:
        write_pngs(Path(folder), count)
        print(f"{count} grey PNGs of {SIZE}x{SIZE} px; float32 in memory: {count * SIZE * SIZE * 4 / 2**20:.0f} MiB")
        results = {}
        for mode in ("streaming", "in memory"):
            run = subprocess.run([sys.executable, __file__, "--child", mode, folder], capture_output=True, text=True,
                                 check=True)
            results[mode] = json.loads(run.stdout.strip().splitlines()[-1])
    added = {}
    for mode, r in results.items():
        added[mode] = max(r["peak_kb"] - r["before_kb"], 0) / 1024
        print(f"{mode:10s} peak RSS {r['peak_kb'] / 1024:7.0f} MiB, added by the fit {added[mode]:7.0f} MiB; "
              f"mean {r['mean']:.8f}, std {r['std']:.8f}")
    same = abs(results["streaming"]["mean"] - results["in memory"]["mean"]) < 1e-6 and (
        abs(results["streaming"]["std"] - results["in memory"]["std"]) < 1e-6)
    print(f"same statistics to 1e-6: {same}")
    print(f"memory added, in memory / streaming: {added['in memory'] / max(added['streaming'], 1.0):.1f}x")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    else:
        main()
