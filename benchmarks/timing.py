"""Timing shared by the benchmarks: each call timed on its own (with `sync` around it for GPUs)."""

from __future__ import annotations

import time


def timings(fn, repeat: int = 3, sync=lambda: None, warmup: bool = False) -> list[float]:
    """Seconds of each of `repeat` calls of fn (after one untimed call when `warmup`)."""
    if warmup:
        fn()
        sync()
    times = []
    for _ in range(repeat):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return times


def best(fn, repeat: int = 3, sync=lambda: None, warmup: bool = False) -> float:
    """The fastest of `repeat` calls."""
    return min(timings(fn, repeat, sync, warmup))
