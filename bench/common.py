"""Small helpers shared by the benchmarks: time limits, latency summaries, progress lines."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence


class BenchTimeout(Exception):
    """A benchmark phase ran past its time limit."""


class Deadline:
    """A time limit for one phase; every loop of a benchmark checks one."""

    def __init__(self, seconds: float, what: str) -> None:
        self.seconds = seconds
        self.what = what
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self._end - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self._end

    def check(self, detail: str = "") -> None:
        if self.expired():
            suffix = f" ({detail})" if detail else ""
            raise BenchTimeout(f"{self.what} did not finish within {self.seconds:.0f}s{suffix}")


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def latency_summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50 / p99 / max / mean in milliseconds, plus the count."""
    return {
        "count": len(seconds),
        "p50_ms": round(percentile(seconds, 50) * 1000, 3),
        "p99_ms": round(percentile(seconds, 99) * 1000, 3),
        "max_ms": round(max(seconds) * 1000, 3),
        "mean_ms": round(sum(seconds) / len(seconds) * 1000, 3),
    }


class Progress:
    """Progress lines on stderr, stamped with the time since the run started."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def __call__(self, message: str) -> None:
        sys.stderr.write(f"[{time.monotonic() - self.started:7.1f}s] {message}\n")
        sys.stderr.flush()


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 4)
