"""Sets of half-open integer intervals ``[start, end)``, given as ``(start, end)`` tuples."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

Interval = tuple[int, int]


def _checked(intervals: Iterable[Sequence[int]]) -> list[Interval]:
    result = []
    for item in intervals:
        start, end = item
        if start > end:
            raise ValueError(f"invalid interval ({start}, {end}): start is after end")
        result.append((start, end))
    return result


def merge(intervals: Iterable[Sequence[int]]) -> list[Interval]:
    """The union of ``intervals`` as sorted, disjoint, non-empty tuples."""
    merged: list[Interval] = []
    for start, end in sorted(i for i in _checked(intervals) if i[0] < i[1]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def insert(merged: Iterable[Sequence[int]], interval: Sequence[int]) -> list[Interval]:
    """``merged`` with ``interval`` added, merged again."""
    return merge([*merged, interval])


def covered(intervals: Iterable[Sequence[int]]) -> int:
    """The total length the union of ``intervals`` covers."""
    return sum(end - start for start, end in merge(intervals))


def gaps(intervals: Iterable[Sequence[int]], lo: int, hi: int) -> list[Interval]:
    """The sorted parts of ``[lo, hi)`` that no interval covers."""
    result = []
    at = lo
    for start, end in merge(intervals):
        if end <= at:
            continue
        if start >= hi:
            break
        if start > at:
            result.append((at, start))
        at = max(at, end)
    if at < hi:
        result.append((at, hi))
    return result
