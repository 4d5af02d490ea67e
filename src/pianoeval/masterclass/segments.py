"""Teaching moments -> STOP / CONTINUE audio segments.

Labels: STOP (1) is the playing that made the teacher stop; CONTINUE (0) is playing the teacher let run.

Rules, applied per video to moments ordered by ``(stop_timestamp, moment_id)``; every case is counted
in the report returned by :func:`build_segments` (key in brackets):

1. Exact duplicates: same video, ``stop_timestamp``, ``playing_before_start`` and ``playing_before_end``
   all within 1e-3 s -> keep the moment with the smallest ``moment_id``, drop the rest
   [``duplicates_dropped``]. Done first, so duplicates create neither STOP nor (negative) gaps.
2. STOP = ``[playing_before_start, playing_before_end]`` of each remaining moment, then in order:
   a. shorter than ``min_stop_duration`` (zero-length included) -> dropped [``stop_dropped_too_short``];
   b. starting at/after the end of the audio -> dropped [``stop_dropped_after_audio_end``];
   c. ending after the audio -> end clamped [``stop_clamped``]; if that leaves < ``min_stop_duration``
      -> dropped [``stop_dropped_too_short_after_clamp``];
   d. overlapping the previous kept STOP (start < its end) -> start trimmed to that end
      [``stop_trimmed_overlap``]; if that leaves < ``min_stop_duration`` -> dropped
      [``stop_dropped_overlap``]. Kept STOP windows therefore never overlap.
3. CONTINUE = gap from moment *i*'s ``feedback_end`` to moment *i+1*'s ``playing_before_start``
   (only between consecutive moments of a video: before the first stop and after the last one the
   audio is usually talk, not teaching-relevant playing). All deduplicated moments count, including
   those whose STOP window was dropped (the stop still happened).
   a. negative gap (feedback runs past the next playing window start) -> no segment
      [``cont_negative_gap``];
   b. messy ordering: the gap is shrunk so that it starts after everything of moments <= *i*
      (their ``feedback_end`` and ``stop_timestamp``) and ends before everything of moments > *i*
      (their ``playing_before_start`` and ``feedback_start``) [``cont_shrunk_by_other_moments``];
      nothing left -> no segment [``cont_dropped_by_other_moments``]. CONTINUE thus never overlaps any
      STOP window, feedback window or other CONTINUE;
   c. starting at/after the audio end -> dropped [``cont_dropped_after_audio_end``]; ending after it
      -> clamped [``cont_clamped``];
   d. shorter than ``min_continue_duration`` -> dropped [``cont_dropped_too_short``].

Segment ids depend only on video, label and (rounded-to-ms) times, so they do not depend on input
order. :func:`duration_matched` then cuts CONTINUE windows into STOP-length pieces so that segment
length cannot explain the label.
"""

from __future__ import annotations

import math
import zlib
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Iterable, Mapping, Sequence

import numpy as np

from pianoeval.masterclass.moments import Moment

STOP, CONTINUE = 1, 0
DUPLICATE_TOL = 1e-3
_EPS = 1e-9  # float noise when comparing window edges


@dataclass(frozen=True)
class Segment:
    """One labelled audio window (seconds). ``moment_id``/``musical_dimension`` are None for CONTINUE."""

    segment_id: str
    video_id: str
    teacher: str
    label: int
    start: float
    end: float
    duration: float
    moment_id: str | None
    musical_dimension: str | None


def make_segment_id(video_id: str, label: int, start: float, end: float) -> str:
    tag = "stop" if label == STOP else "cont"
    return f"{video_id}:{tag}:{round(start * 1000):08d}-{round(end * 1000):08d}"


def _segment(video_id, teacher, label, start, end, moment: Moment | None = None) -> Segment:
    return Segment(
        segment_id=make_segment_id(video_id, label, start, end),
        video_id=video_id,
        teacher=teacher,
        label=label,
        start=float(start),
        end=float(end),
        duration=float(end - start),
        moment_id=moment.moment_id if moment is not None else None,
        musical_dimension=moment.musical_dimension if moment is not None else None,
    )


def _is_duplicate(a: Moment, b: Moment) -> bool:
    return (
        abs(a.stop_timestamp - b.stop_timestamp) <= DUPLICATE_TOL
        and abs(a.playing_before_start - b.playing_before_start) <= DUPLICATE_TOL
        and abs(a.playing_before_end - b.playing_before_end) <= DUPLICATE_TOL
    )


def _dedupe(moments: list[Moment]) -> tuple[list[Moment], int]:
    kept: list[Moment] = []
    for m in sorted(moments, key=lambda m: m.moment_id):
        if not any(_is_duplicate(m, k) for k in kept):
            kept.append(m)
    return kept, len(moments) - len(kept)


def _new_report(moments: Sequence[Moment], videos: Iterable[str]) -> dict:
    keys = (
        "duplicates_dropped stop_dropped_too_short stop_dropped_after_audio_end stop_clamped "
        "stop_dropped_too_short_after_clamp stop_trimmed_overlap stop_dropped_overlap cont_negative_gap "
        "cont_shrunk_by_other_moments cont_dropped_by_other_moments cont_dropped_after_audio_end "
        "cont_clamped cont_dropped_too_short"
    ).split()
    return {"n_moments": len(moments), "n_videos": len(set(videos)), **{k: 0 for k in keys}}


def _stop_segments(ms: list[Moment], audio_dur: float, min_stop: float, rep: dict) -> list[Segment]:
    out: list[Segment] = []
    prev_end = -math.inf
    for m in ms:
        start, end = m.playing_before_start, m.playing_before_end
        if end - start < min_stop:
            rep["stop_dropped_too_short"] += 1
            continue
        if start >= audio_dur:
            rep["stop_dropped_after_audio_end"] += 1
            continue
        if end > audio_dur:
            rep["stop_clamped"] += 1
            end = audio_dur
            if end - start < min_stop:
                rep["stop_dropped_too_short_after_clamp"] += 1
                continue
        if start < prev_end - _EPS:
            start = prev_end
            if end - start < min_stop:
                rep["stop_dropped_overlap"] += 1
                continue
            rep["stop_trimmed_overlap"] += 1
        out.append(_segment(m.video_id, m.teacher, STOP, start, end, m))
        prev_end = end
    return out


def _continue_segments(ms: list[Moment], audio_dur: float, min_cont: float, rep: dict) -> list[Segment]:
    out: list[Segment] = []
    # Latest time touched by moments <= i, earliest time touched by moments > i.
    after = np.maximum.accumulate([max(m.feedback_end, m.stop_timestamp) for m in ms])
    before = np.minimum.accumulate([min(m.playing_before_start, m.feedback_start) for m in ms][::-1])[::-1]
    for i in range(len(ms) - 1):
        start, end = ms[i].feedback_end, ms[i + 1].playing_before_start
        if end < start:
            rep["cont_negative_gap"] += 1
            continue
        safe_start, safe_end = float(after[i]), float(before[i + 1])
        if safe_start > start + _EPS or safe_end < end - _EPS:
            start, end = max(start, safe_start), min(end, safe_end)
            if end <= start:
                rep["cont_dropped_by_other_moments"] += 1
                continue
            rep["cont_shrunk_by_other_moments"] += 1
        if start >= audio_dur:
            rep["cont_dropped_after_audio_end"] += 1
            continue
        if end > audio_dur:
            rep["cont_clamped"] += 1
            end = audio_dur
        if end - start < min_cont:
            rep["cont_dropped_too_short"] += 1
            continue
        out.append(_segment(ms[i].video_id, ms[i].teacher, CONTINUE, start, end))
    return out


def _sort_key(s: Segment):
    return (s.video_id, s.start, s.end, s.label)


def _check_unique(segments: Sequence[Segment]) -> None:
    ids = [s.segment_id for s in segments]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise RuntimeError(f"segment id collision (windows < 1 ms apart?): {dup[:5]}")


def build_segments(
    moments: Sequence[Moment],
    durations: Mapping[str, float],
    min_continue_duration: float = 5.0,
    min_stop_duration: float = 1.0,
) -> tuple[list[Segment], dict]:
    """Turn moments into labelled STOP/CONTINUE segments (rules in the module docstring).

    Parameters
    ----------
    moments : validated moments, any order.
    durations : video_id -> audio length in seconds; required for every video in ``moments``.
    min_continue_duration, min_stop_duration : shortest kept CONTINUE / STOP window, seconds.

    Returns
    -------
    segments : sorted by ``(video_id, start)``; ids unique and independent of input order.
    report : counts of every rule application plus ``n_stop``, ``n_continue`` and their total seconds.
    """
    if not (min_continue_duration > 0 and min_stop_duration > 0):
        raise ValueError(f"min durations must be > 0, got {min_continue_duration=}, {min_stop_duration=}")
    by_video: dict[str, list[Moment]] = defaultdict(list)
    for m in moments:
        by_video[m.video_id].append(m)
    missing = sorted(v for v in by_video if v not in durations)
    if missing:
        raise ValueError(f"durations: no audio length for {len(missing)} video(s): {missing}")
    bad = sorted(v for v in by_video if not (math.isfinite(durations[v]) and durations[v] > 0))
    if bad:
        raise ValueError(f"durations: audio length must be finite and > 0 for {[(v, durations[v]) for v in bad]}")

    rep = _new_report(moments, by_video)
    segments: list[Segment] = []
    for video in sorted(by_video):
        ms, n_dup = _dedupe(by_video[video])
        rep["duplicates_dropped"] += n_dup
        ms.sort(key=lambda m: (m.stop_timestamp, m.moment_id))
        dur = float(durations[video])
        segments += _stop_segments(ms, dur, min_stop_duration, rep)
        segments += _continue_segments(ms, dur, min_continue_duration, rep)
    segments.sort(key=_sort_key)
    _check_unique(segments)
    stops = [s for s in segments if s.label == STOP]
    conts = [s for s in segments if s.label == CONTINUE]
    rep.update(
        n_stop=len(stops),
        n_continue=len(conts),
        stop_seconds=sum(s.duration for s in stops),
        continue_seconds=sum(s.duration for s in conts),
    )
    return segments, rep


def duration_matched(
    segments: Sequence[Segment], seed: int = 0, match_bins: int | None = None, by_video: bool = False
) -> tuple[list[Segment], dict]:
    """Cut every CONTINUE window into consecutive pieces whose durations are STOP durations.

    STOP segments are returned unchanged. Each CONTINUE window is walked from its start: a duration is
    drawn uniformly from the empirical STOP durations (pooled over all videos); if it fits in what is
    left of the window it becomes the next piece, otherwise the walk ends and the leftover is discarded
    and counted. The first draw that does not fit ends the walk (rather than redrawing among durations
    that fit), because redrawing would fill every window tail with short pieces and bias CONTINUE
    towards short durations; still, windows shorter than the long STOP durations can only host short
    pieces, so the report gives both duration summaries and their Kolmogorov-Smirnov distance.

    ``by_video=True`` draws a window's durations from the STOP durations of its own video (a video
    without kept STOP falls back to the pooled durations, counted): when pieces or tempi differ between
    videos, pooled durations would leave duration informative within a video (short-segment pieces
    dominate the pool and long-segment videos get short CONTINUE pieces).

    ``match_bins=k`` additionally subsamples the pieces so that their proportions over the k STOP
    duration quantile bins equal the STOP proportions (as many pieces as possible kept; drops counted).

    Draws for a window come from a generator seeded with ``(seed, crc32(window id))``, so the output is
    deterministic, independent of input order, and one window's pieces do not depend on other windows.
    Piece ids are derived from their times like any segment id.

    Returns
    -------
    segments : STOP segments and CONTINUE pieces, sorted by ``(video_id, start)``.
    report : counts and seconds in/out, leftovers, STOP vs CONTINUE duration summaries and KS distance.
    """
    from scipy.stats import ks_2samp

    stops = sorted((s for s in segments if s.label == STOP), key=_sort_key)
    conts = sorted((s for s in segments if s.label == CONTINUE), key=_sort_key)
    if not stops:
        raise ValueError("duration_matched: no STOP segments to take durations from")
    pool = np.array([s.duration for s in stops])
    if not pool.min() > 0:
        raise ValueError(f"duration_matched: STOP durations must be > 0, shortest is {pool.min()}")
    if by_video and match_bins:
        raise ValueError("duration_matched: match_bins works on the pooled STOP durations; use it without by_video")
    video_pool: dict[str, np.ndarray] = defaultdict(lambda: pool)
    if by_video:
        for v in {s.video_id for s in stops}:
            video_pool[v] = np.array([s.duration for s in stops if s.video_id == v])
    n_fallback = sum(1 for c in conts if by_video and c.video_id not in video_pool)
    pieces: list[Segment] = []
    drawn: list[float] = []  # the STOP duration each piece copies (piece.duration may differ by float noise)
    n_left, left_seconds, n_unused = 0, 0.0, 0
    for c in conts:
        rng = np.random.default_rng([seed, zlib.crc32(c.segment_id.encode())])
        t, n_before = c.start, len(pieces)
        own = video_pool[c.video_id]
        while (d := float(own[rng.integers(own.size)])) <= c.end - t + _EPS:
            end = min(t + d, c.end)  # absorb float overshoot of <= _EPS
            pieces.append(replace(c, segment_id=make_segment_id(c.video_id, CONTINUE, t, end),
                                  start=t, end=end, duration=end - t))
            drawn.append(d)
            t = end
        if c.end - t > _EPS:
            n_left += 1
            left_seconds += c.end - t
        n_unused += len(pieces) == n_before
    n_pieces = len(pieces)
    if match_bins:
        pieces = _match_bins(pieces, np.array(drawn), pool, match_bins, seed)
    out = sorted(stops + pieces, key=_sort_key)
    _check_unique(out)
    cd = np.array([p.duration for p in pieces])
    report = {
        "by_video": bool(by_video),
        "n_windows_pooled_fallback": n_fallback,
        "n_stop": len(stops),
        "n_continue_windows_in": len(conts),
        "n_continue_pieces": n_pieces,
        "n_dropped_bin_matching": n_pieces - len(pieces),
        "n_continue_out": len(pieces),
        "n_windows_unused": n_unused,
        "n_leftover_discarded": n_left,
        "continue_seconds_in": sum(c.duration for c in conts),
        "continue_seconds_out": float(cd.sum()),
        "leftover_seconds_discarded": left_seconds,
        "stop_duration_mean": float(pool.mean()),
        "stop_duration_median": float(np.median(pool)),
        "continue_duration_mean": float(cd.mean()) if cd.size else None,
        "continue_duration_median": float(np.median(cd)) if cd.size else None,
        "duration_ks_statistic": float(ks_2samp(pool, cd).statistic) if cd.size else None,
    }
    return out, report


def _match_bins(pieces: list[Segment], drawn: np.ndarray, pool: np.ndarray, k: int, seed: int) -> list[Segment]:
    """Subsample pieces so their STOP-quantile-bin proportions equal those of the STOP durations."""
    if k < 1:
        raise ValueError(f"match_bins must be >= 1, got {k}")
    inner = np.quantile(pool, np.linspace(0, 1, k + 1)[1:-1])
    target = np.bincount(np.searchsorted(inner, pool, side="right"), minlength=k) / pool.size
    piece_bin = np.searchsorted(inner, drawn, side="right")
    have = np.bincount(piece_bin, minlength=k)
    used = target > 0
    scale = float(np.min(have[used] / target[used])) if pieces else 0.0
    want = np.floor(scale * target + 1e-9).astype(int)
    rng = np.random.default_rng([seed, k])
    keep = np.concatenate([rng.choice(np.flatnonzero(piece_bin == b), want[b], replace=False) for b in range(k)])
    return [pieces[i] for i in np.sort(keep).astype(int)]
