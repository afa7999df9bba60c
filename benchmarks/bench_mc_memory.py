"""Peak memory of MC-dropout prediction on whole nuclei images: the whole image at once vs tile by tile.

Notebook 08 draws T dropout samples of its U-Net over each whole image. At once (`uncertainty.mc_predict` on the
image, T rows in one call), the network's activations for T full-size copies are alive together: memory grows
with T x H x W, and a real 2,048-pixel microscopy image asks for tens of gigabytes. Tile by tile
(`uncertainty.mc_predict_tiled`: 256-pixel tiles with 48 pixels of context, 8 samples at a time), memory is set
by the tile and the chunk, plus the result (T x H x W x 2 in float16). Each measurement runs in a fresh
interpreter and reads its own peak resident memory (`resource.getrusage`); the U-Net has notebook 08's full
settings (16 filters, depth 3) and random weights. The whole-image way is measured up to 1,024 pixels (at 2,048 it
would not fit this machine); the ratio at 1,024 pixels prints last.
Run: `.venv/bin/python benchmarks/bench_mc_memory.py`.
"""

from __future__ import annotations

import json
import subprocess
import sys

SAMPLES = 16  # T, as notebook 08's lab profile
CHILD = r"""
import json, resource, sys, warnings
warnings.filterwarnings("ignore")
import numpy as np
from helpers import cells, models, uncertainty
size, way, samples = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
mc = uncertainty.with_mc_dropout(cells.nuclei_unet(base_filters=16, depth=3, dropout_rate=0.15))
image = np.random.default_rng(0).random((size, size)).astype(np.float32)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if way == "whole":
    out = uncertainty.mc_predict(mc, image[None, ..., None], samples=samples, batch_size=64)
else:
    out = uncertainty.mc_predict_tiled(mc, image, samples=samples)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_mib": peak / 1024, "model_mib": before / 1024, "shape": list(out.shape)}))
"""


def measure(size: int, way: str) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(size), way, str(SAMPLES)], capture_output=True, text=True)
    if done.returncode != 0:
        return {"peak_mib": float("nan"), "error": done.stderr.strip().splitlines()[-1][:120]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    rows = []
    for size, ways in ((512, ("whole", "tiled")), (1024, ("whole", "tiled")), (2048, ("tiled",))):
        for way in ways:
            result = measure(size, way)
            rows.append((size, way, result))
            print(f"{size:5d} px  {way:6s}  peak resident memory {result['peak_mib']:8.0f} MiB"
                  + (f"  ({result['error']})" if "error" in result else ""), flush=True)
    at = {(size, way): r["peak_mib"] for size, way, r in rows}
    print(f"peak memory whole / tiled at 1024 px, T={SAMPLES}: {at[(1024, 'whole')] / at[(1024, 'tiled')]:.1f}x; "
          f"tiled at 2048 px: {at[(2048, 'tiled')]:.0f} MiB (goal: under 4,096)")


if __name__ == "__main__":
    main()
