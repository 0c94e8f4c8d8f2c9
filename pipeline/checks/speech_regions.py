"""How much of a span the speech regions (VAD) cover."""
from __future__ import annotations


def overlap_ratio(regions: list[tuple[float, float]], start: float, end: float) -> float:
    """The share of [start, end) that the regions (seconds, not overlapping each other) cover."""
    covered = sum(max(0.0, min(b, end) - max(a, start)) for a, b in regions)
    return covered / (end - start)
