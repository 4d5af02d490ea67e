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
   d. replayed playing is cut out: after a stop the student usually plays the stopped passage again,
      and that audio is the STOP performance, not playing the teacher let pass. Spans known to be
      replays (``replays``: from ``provenance.json`` of simulated sessions, the replayed performance
      with its release tail) are removed from the window [``cont_cut_by_replay`` windows,
      ``cont_replay_seconds_removed``]; each remaining part is a window of its own;
   e. shorter than ``min_continue_duration`` -> dropped [``cont_dropped_too_short``].

Segment ids depend only on video, label and (rounded-to-ms) times, so they do not depend on input
order. :func:`duration_matched` then carves from the CONTINUE windows one piece per STOP window with
exactly its duration, in the same video, so that neither segment length nor the class balance of a
video can explain the label.
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
        "cont_clamped cont_cut_by_replay cont_replay_seconds_removed cont_dropped_too_short"
    ).split()
    return {"n_moments": len(moments), "n_videos": len(set(videos)), **{k: 0 for k in keys}}


def subtract_spans(start: float, end: float, spans: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The parts of ``[start, end]`` outside every span (spans may overlap and come in any order)."""
    parts = [(start, end)]
    for a, b in sorted(spans):
        nxt = []
        for s, e in parts:
            if b <= s + _EPS or a >= e - _EPS:
                nxt.append((s, e))
                continue
            if a > s + _EPS:
                nxt.append((s, a))
            if b < e - _EPS:
                nxt.append((b, e))
        parts = nxt
    return parts


def overlap_seconds(segments: Sequence[Segment], spans: Mapping[str, Sequence[tuple[float, float]]],
                    label: int = CONTINUE) -> float:
    """Seconds of the ``label`` windows (default CONTINUE) that lie inside any span of their video
    (overlapping spans counted once)."""
    total = 0.0
    for seg in segments:
        if seg.label != label:
            continue
        kept = sum(e - s for s, e in subtract_spans(seg.start, seg.end, spans.get(seg.video_id, ())))
        total += seg.duration - kept
    return total


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


def _continue_segments(ms: list[Moment], audio_dur: float, min_cont: float, rep: dict,
                       replays: Sequence[tuple[float, float]] = ()) -> list[Segment]:
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
        parts = subtract_spans(start, end, replays)
        if parts != [(start, end)]:
            rep["cont_cut_by_replay"] += 1
            rep["cont_replay_seconds_removed"] += (end - start) - sum(b - a for a, b in parts)
        for a, b in parts:
            if b - a < min_cont:
                rep["cont_dropped_too_short"] += 1
                continue
            out.append(_segment(ms[i].video_id, ms[i].teacher, CONTINUE, a, b))
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
    replays: Mapping[str, Sequence[tuple[float, float]]] | None = None,
) -> tuple[list[Segment], dict]:
    """Turn moments into labelled STOP/CONTINUE segments (rules in the module docstring).

    Parameters
    ----------
    moments : validated moments, any order.
    durations : video_id -> audio length in seconds; required for every video in ``moments``.
    min_continue_duration, min_stop_duration : shortest kept CONTINUE / STOP window, seconds.
    replays : video_id -> [(start, end)] spans of replayed playing, cut out of CONTINUE windows
        (rule 3d); None when unknown (real recordings without provenance).

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
        segments += _continue_segments(ms, dur, min_continue_duration, rep, (replays or {}).get(video, ()))
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


def duration_matched(segments: Sequence[Segment], seed: int = 0) -> tuple[list[Segment], dict]:
    """Duration- and class-matched variant: one CONTINUE piece per STOP window, of exactly its length,
    carved from the CONTINUE windows of the same video.

    Per video, STOP windows are taken longest first; each gets a piece ``[t, t + d]`` placed uniformly
    at random among all positions where it fits inside the video's still unused CONTINUE time (a
    window is chosen with probability proportional to its free room, then the offset uniformly), and
    that span is removed from the free time. A STOP window for which no free CONTINUE stretch is long
    enough is left out of this variant (counted; it has no duration-matched partner). Result: in every
    video the STOP and CONTINUE durations are the same multiset, so duration and the video's class
    balance carry no information about the label (the flexible duration baseline must sit at chance).

    Draws for a video come from a generator seeded with ``(seed, crc32(video id))``: deterministic,
    independent of input order and of other videos. Piece ids are derived from their times like any
    segment id; a piece keeps the teacher of its window.

    Returns
    -------
    segments : matched STOP segments and their CONTINUE pieces, sorted by ``(video_id, start)``.
    report : counts in/out, unmatched STOP windows, seconds used, duration summaries and KS distance.
    """
    from scipy.stats import ks_2samp

    stops = sorted((s for s in segments if s.label == STOP), key=_sort_key)
    conts = sorted((s for s in segments if s.label == CONTINUE), key=_sort_key)
    if not stops:
        raise ValueError("duration_matched: no STOP segments to take durations from")
    if not min(s.duration for s in stops) > 0:
        raise ValueError("duration_matched: STOP durations must be > 0")
    by_video: dict[str, list[Segment]] = defaultdict(list)
    for c in conts:
        by_video[c.video_id].append(c)
    kept_stops: list[Segment] = []
    pieces: list[Segment] = []
    unmatched: dict[str, int] = {}
    for video in sorted({s.video_id for s in stops}):
        rng = np.random.default_rng([seed, zlib.crc32(video.encode())])
        free = [(c.start, c.end, c) for c in by_video.get(video, [])]  # unused stretches + their window
        mine = sorted((s for s in stops if s.video_id == video), key=lambda s: (-s.duration, s.start))
        for stop in mine:
            d = stop.duration
            room = np.array([e - a - d for a, e, _ in free]) if free else np.zeros(0)
            fits = np.flatnonzero(room >= -_EPS)
            if fits.size == 0:
                unmatched[video] = unmatched.get(video, 0) + 1
                continue
            weight = np.maximum(room[fits], 0.0) + 1e-6  # a stretch of exactly d can still be chosen
            j = int(fits[rng.choice(fits.size, p=weight / weight.sum())])
            a, e, window = free.pop(j)
            t = a + float(rng.uniform(0.0, max(e - a - d, 0.0)))
            end = min(t + d, e)
            pieces.append(replace(window, segment_id=make_segment_id(video, CONTINUE, t, end), start=t, end=end,
                                  duration=end - t))
            free += [(x, y, window) for x, y in ((a, t), (end, e)) if y - x > _EPS]
            kept_stops.append(stop)
    out = sorted(kept_stops + pieces, key=_sort_key)
    _check_unique(out)
    sd = np.round([s.duration for s in kept_stops], 6)  # a piece's end - start differs by float noise
    cd = np.round([p.duration for p in pieces], 6)
    report = {
        "rule": "one CONTINUE piece per STOP window, same video, same duration, placed at random in unused "
                "CONTINUE time; STOP windows without room are left out",
        "n_stop_in": len(stops),
        "n_stop_matched": len(kept_stops),
        "n_stop_unmatched_dropped": len(stops) - len(kept_stops),
        "unmatched_by_video": dict(sorted(unmatched.items())),
        "n_continue_windows_in": len(conts),
        "n_continue_out": len(pieces),
        "n_videos": len({s.video_id for s in kept_stops}),
        "continue_seconds_in": sum(c.duration for c in conts),
        "continue_seconds_out": float(cd.sum()),
        "stop_duration_median": float(np.median(sd)) if sd.size else None,
        "continue_duration_median": float(np.median(cd)) if cd.size else None,
        "duration_ks_statistic": float(ks_2samp(sd, cd).statistic) if cd.size else None,
    }
    return out, report
