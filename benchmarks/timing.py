"""Timing shared by the benchmarks: two ways, run alternately, the fastest run of each."""

from __future__ import annotations

import time


def interleaved(runs: dict, repeats: int) -> dict:
    """Fastest of ``repeats`` runs of each, alternating them so both see the same load on a shared machine."""
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: min(values) for name, values in times.items()}
