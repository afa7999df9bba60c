"""Two TensorFlow processes side by side, as `make test` runs the unit tests and the notebooks: each left to size
its thread pools to the whole machine (TensorFlow's default) vs the cores shared out (`tools/side_by_side.py`:
``cores // processes`` threads each for TensorFlow's pools and OpenMP).

Run: .venv/bin/python benchmarks/bench_threads.py   (prints the wall and CPU ratios default / shared;
target: wall >= 1.2)
Each process trains notebook 03's U-Net (16 filters, depth 3) on random 64-px patches for a fixed number of steps,
so both ways do the same work; the CPU time is user + system of both processes and everything they waited for.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

import side_by_side  # noqa: E402

STEPS, BATCH, SIZE, REPEATS = 60, 16, 64, 2
WORK = f"""
import numpy as np, keras
from helpers import models
keras.utils.set_random_seed(0)
model = models.unet((None, None, 1), base_filters=16, depth=3)
model.compile("adam", "binary_crossentropy")
x = np.random.default_rng(0).random(({STEPS * BATCH}, {SIZE}, {SIZE}, 1), dtype="float32")
model.fit(x, (x > 0.5).astype("float32"), batch_size={BATCH}, epochs=1, verbose=0)
"""


def both(share: bool) -> tuple[float, float]:
    """Wall and CPU seconds of two workers started together."""
    jobs = [(name, [sys.executable, "-c", WORK]) for name in ("a", "b")]
    status, parts = side_by_side.run(jobs, share=share)
    if status:
        raise SystemExit(f"bench_threads: a worker failed (exit status {status}); its output is above.")
    return max(p["wall_s"] for p in parts), sum(p["cpu_s"] or 0.0 for p in parts)


def main() -> None:
    runs = {"default": [], "shared": []}
    for _ in range(REPEATS):
        for name in runs:
            runs[name].append(both(name == "shared"))
    best = {name: min(values, key=lambda r: r[1]) for name, values in runs.items()}
    print(f"two U-Net trainings side by side ({STEPS} steps of {BATCH} x {SIZE} px each) on {side_by_side.cores()} "
          f"cores, best of {REPEATS}:")
    for name, (wall, cpu) in best.items():
        print(f"  {name:8s} wall {wall:6.1f} s   CPU {cpu:6.1f} s")
    (dwall, dcpu), (swall, scpu) = best["default"], best["shared"]
    print(f"CPU ratio default / shared: {dcpu / scpu:.2f}")
    print(f"wall ratio default / shared: {dwall / swall:.2f} (target >= 1.2)")


if __name__ == "__main__":
    main()
