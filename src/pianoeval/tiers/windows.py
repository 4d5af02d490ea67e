"""Bar-aligned windows: the same bars cut from every performance of a score folder.

A bar is the span between two consecutive downbeats. When a performance's beat labels equal its
score's (:func:`pianoeval.tiers.asap.aligned_with_score`), downbeat k is the same musical position in
every aligned performance of the folder, so window ``[downbeat j, downbeat j + n)`` is the same music
played by each pianist. Per folder one bar count ``n`` is chosen so the median window lasts about
``target_seconds``; ``count`` non-overlapping windows are spread evenly over the piece.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BarPlan:
    """The windows of one score folder: ``n_bars`` per window, ``starts`` = first bar index of each."""

    n_bars: int
    starts: tuple[int, ...]

    def bars(self) -> list[tuple[int, int]]:
        return [(s, s + self.n_bars) for s in self.starts]


def bars_for_target(downbeat_lists: list[np.ndarray], target_seconds: float) -> int:
    """Bars per window so the median bar duration (over the folder's performances) x bars ~ target."""
    if target_seconds <= 0:
        raise ValueError(f"target_seconds must be > 0, got {target_seconds}")
    med = [float(np.median(np.diff(d))) for d in downbeat_lists if len(d) >= 2]
    if not med:
        raise ValueError("bars_for_target: no performance has two downbeats")
    bar = float(np.median(med))
    if bar <= 0:
        raise ValueError("bars_for_target: downbeats do not advance")
    return max(1, int(round(target_seconds / bar)))


def spread_starts(n_downbeats: int, n_bars: int, count: int) -> tuple[int, ...] | None:
    """``count`` non-overlapping windows of ``n_bars`` bars spread evenly over ``n_downbeats - 1`` bars.

    The piece holds ``W = (n_downbeats - 1) // n_bars`` back-to-back windows; window i is the
    ``floor((i + 0.5) W / count)``-th of them (so one window sits in the middle). None when W < count.
    """
    if n_bars < 1 or count < 1:
        raise ValueError(f"need n_bars >= 1 and count >= 1, got {n_bars}, {count}")
    W = (n_downbeats - 1) // n_bars
    if W < count:
        return None
    return tuple(int(np.floor((i + 0.5) * W / count)) * n_bars for i in range(count))


def plan_folder(downbeat_lists: list[np.ndarray], target_seconds: float, count: int) -> BarPlan | None:
    """The folder's bar plan (all lists must have the same length: aligned performances), or None when
    the piece is too short for ``count`` windows."""
    lengths = {len(d) for d in downbeat_lists}
    if len(lengths) != 1:
        raise ValueError(f"plan_folder: performances have different downbeat counts {sorted(lengths)}: not aligned")
    n = bars_for_target(downbeat_lists, target_seconds)
    starts = spread_starts(lengths.pop(), n, count)
    return None if starts is None else BarPlan(n, starts)


def window_times(downbeats: np.ndarray, bar_start: int, bar_end: int, pre_roll: float = 0.0) -> tuple[float, float]:
    """(start, end) seconds of bars [bar_start, bar_end): from ``pre_roll`` before the first downbeat (so
    a chord spread just ahead of the beat is kept) to the downbeat that ends the window."""
    if not 0 <= bar_start < bar_end < len(downbeats):
        raise ValueError(f"bars [{bar_start}, {bar_end}) outside the {len(downbeats) - 1} bars of the performance")
    return max(0.0, float(downbeats[bar_start]) - pre_roll), float(downbeats[bar_end])
