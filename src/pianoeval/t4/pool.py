"""The unlabeled T4 pool (offline default): ~30 s clips of rendered ASAP performances that no
labelled tier uses.

Pool rule (``pool_candidates``), applied to ASAP's ``metadata.csv``:

1. no competition round in the MAESTRO file name (T2 ranks performances by round), and
2. the title has exactly one performance in ASAP (T3 compares performances of the same music), and
3. not listed in the exclusion table (an explicit input: the T2/T3 subset, or anything else to keep
   out). Every id in that table must be a performance of metadata.csv: a typo fails the stage.

Clips: ``select_clips`` draws performances and clip positions from a seeded generator. A clip is
rendered from an excerpt MIDI (``excerpt_midi``) instead of the whole performance: rendering the 19
candidate performances whole would cost 86 min of audio for a few minutes of clips. The excerpt keeps
the notes that start inside the clip (note-offs after its end are moved to its end), and the state
of every controller at the clip's start (the sustain pedal above all) at time 0; notes still
sounding from before the clip start are left out and counted (``notes_cut_at_start``).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import mido
import numpy as np
import pandas as pd

from ..render import midi_events

METADATA_COLUMNS = ("composer", "title", "folder", "midi_performance", "maestro_midi_performance")
ROUND_RE = re.compile(r"_R(\d)_")
EXCERPT_TICKS_PER_BEAT = 960
EXCERPT_TEMPO = 500_000  # us per beat: 1920 ticks per second, 0.52 ms resolution


def read_metadata(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: ASAP metadata.csv not found")
    meta = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in METADATA_COLUMNS if c not in meta.columns]
    if missing:
        raise ValueError(f"{path}: columns {missing} missing (have {list(meta.columns)})")
    dup = meta["midi_performance"][meta["midi_performance"].duplicated()].tolist()
    if dup:
        raise ValueError(f"{path}: duplicate midi_performance {dup[:5]}")
    return meta


def competition_round(maestro_name: str) -> int | None:
    """The round (1-3) in a MAESTRO file name (``..._R2_2011_...``), None when it carries none."""
    m = ROUND_RE.search(maestro_name or "")
    return int(m.group(1)) if m else None


def read_exclusion_table(path: str | Path, known: set[str]) -> list[str]:
    """Performances (``midi_performance`` paths) to keep out of the pool; unknown ones fail with their line.

    The table has a ``midi_performance`` column (ASAP's path of the MIDI file) or an ``id`` column (the
    tiers' performance id: that path without ``.mid``, as in ``tiers_select``'s ``selected.csv``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: T4 exclusion table not found (params t4_pool.exclude)")
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        names = reader.fieldnames or []
        column = "midi_performance" if "midi_performance" in names else "id" if "id" in names else None
        if column is None:
            raise ValueError(f"{path}: needs a header with a 'midi_performance' or 'id' column, got {reader.fieldnames}")
        ids = []
        for line, row in enumerate(reader, start=2):
            pid = (row[column] or "").strip()
            if not pid:
                raise ValueError(f"{path}:{line}: empty {column}")
            if column == "id":
                pid += ".mid"
            if pid not in known:
                raise ValueError(f"{path}:{line}: '{pid}' is not a performance in ASAP's metadata.csv")
            ids.append(pid)
    return sorted(set(ids))  # a performance in both T2 and T3 is listed twice in selected.csv


def pool_candidates(meta: pd.DataFrame, exclude: list[str]) -> tuple[pd.DataFrame, dict]:
    """Performances the pool may use (sorted by id) and the count removed by each rule."""
    rounds = meta["maestro_midi_performance"].map(competition_round)
    per_title = meta.groupby("title")["midi_performance"].transform("size")
    has_round = rounds.notna()
    shared_title = (per_title > 1) & ~has_round
    excluded = meta["midi_performance"].isin(set(exclude)) & ~has_round & ~shared_title
    keep = ~has_round & ~shared_title & ~excluded
    report = {"metadata_rows": len(meta), "excluded_competition_round": int(has_round.sum()),
              "excluded_title_with_several_performances": int(shared_title.sum()),
              "excluded_by_table": int(excluded.sum()), "exclusion_table_rows": len(exclude),
              "candidates": int(keep.sum())}
    return meta[keep].sort_values("midi_performance").reset_index(drop=True), report


def performance_span(events: list[tuple[float, mido.Message]]) -> tuple[float, float]:
    """(first note onset, last event) in seconds."""
    onsets = [t for t, m in events if m.type == "note_on" and m.velocity > 0]
    return min(onsets), max(t for t, _ in events)


def choose_clips(sources: list[str], span_of, *, n_clips: int, clips_per_performance: int, clip_seconds: float,
                 seed: int) -> tuple[list[dict], list[str]]:
    """Seeded choice of sources (performances or recordings) and clip positions.

    Sources are visited in a seeded random order; each is cut into ``clips_per_performance`` equal
    sections of its span ``span_of(source) -> (first, last)`` seconds, and one clip start is drawn
    uniformly inside each section so that the clip fits in it (clips never overlap). A source whose
    sections are shorter than ``clip_seconds`` is skipped and listed. The first ``n_clips`` clips in
    visiting order are kept.

    Returns ([{"source", "j", "start", "end"}], skipped-too-short sources).
    """
    if n_clips < 1 or clips_per_performance < 1 or clip_seconds <= 0:
        raise ValueError("params t4_pool: n_clips, clips_per_performance >= 1 and clip_seconds > 0 required")
    rng = np.random.default_rng(seed)
    rows, too_short = [], []
    for i in rng.permutation(len(sources)):
        if len(rows) >= n_clips:
            break
        first, last = span_of(sources[i])
        section = (last - first) / clips_per_performance
        if section < clip_seconds:
            too_short.append(sources[i])
            continue
        for j in range(clips_per_performance):
            start = round(first + j * section + float(rng.uniform(0.0, section - clip_seconds)), 3)
            rows.append({"source": sources[i], "j": j, "start": start, "end": round(start + clip_seconds, 3)})
    if len(rows) < n_clips:
        raise ValueError(f"t4_pool: only {len(rows)} clips of {clip_seconds} s possible from {len(sources)} "
                         f"candidates ({len(too_short)} too short), params ask n_clips={n_clips}")
    return rows[:n_clips], too_short


def select_clips(candidates: pd.DataFrame, asap_dir: str | Path, *, n_clips: int, clips_per_performance: int,
                 clip_seconds: float, seed: int, events_of=midi_events) -> tuple[pd.DataFrame, dict]:
    """:func:`choose_clips` over ASAP candidate performances, spans from their MIDI (first note onset
    to last event). ``events_of(path)`` parses a MIDI file (pass a cached one: parsing a long
    performance with mido takes longer than rendering its clip).

    Returns
    -------
    clips : DataFrame clip_id, midi_performance, composer, title, start, end (seconds in the performance).
    report : counts.
    """
    by_id = candidates.set_index("midi_performance")

    def span(pid: str) -> tuple[float, float]:
        path = Path(asap_dir) / pid
        if not path.is_file():
            raise FileNotFoundError(f"{path}: MIDI of pool performance '{pid}' missing (vendor it into {asap_dir})")
        return performance_span(events_of(path))

    chosen, too_short = choose_clips(list(by_id.index), span, n_clips=n_clips,
                                     clips_per_performance=clips_per_performance, clip_seconds=clip_seconds,
                                     seed=seed)
    clips = pd.DataFrame([{"clip_id": f"{c['source'].removesuffix('.mid')}#{c['j']}", "midi_performance": c["source"],
                           "composer": by_id.loc[c["source"], "composer"], "title": by_id.loc[c["source"], "title"],
                           "start": c["start"], "end": c["end"]} for c in chosen])
    return clips, {"performances_used": int(clips["midi_performance"].nunique()),
                   "skipped_too_short": len(too_short), "skipped_too_short_ids": too_short}


def excerpt_midi(events: list[tuple[float, mido.Message]], dst: str | Path, start: float, end: float) -> dict:
    """Write the MIDI excerpt [start, end) of a performance to ``dst`` (times shifted to start at 0).

    ``events``: the performance's (seconds, message) list from :func:`pianoeval.render.midi_events`.

    Controller state at ``start`` goes at time 0; notes starting in the window are kept with their
    note-offs clamped to ``end``; notes sounding at ``start`` are dropped (counted). An All-Notes-Off
    on every channel closes the excerpt at ``end``. Returns {"notes", "notes_cut_at_start"}.
    """
    state: dict[tuple[int, int], int] = {}
    held_before: set[tuple[int, int]] = set()  # notes struck before the clip and not yet released
    in_window: set[tuple[int, int]] = set()
    out: list[tuple[float, int, mido.Message]] = []  # (time, order, message): offs before ons at a tie
    channels: set[int] = set()
    n_notes = 0
    cut_at_start: int | None = None
    for t, msg in events:
        is_on = msg.type == "note_on" and msg.velocity > 0
        is_off = msg.type == "note_off" or (msg.type == "note_on" and msg.velocity == 0)
        if t < start:
            if msg.type == "control_change":
                state[(msg.channel, msg.control)] = msg.value
            elif is_on:
                held_before.add((msg.channel, msg.note))
            elif is_off:
                held_before.discard((msg.channel, msg.note))
            continue
        if cut_at_start is None:
            cut_at_start = len(held_before)
        key = (msg.channel, msg.note) if (is_on or is_off) else None
        if is_off:
            if key in in_window:
                in_window.discard(key)
                out.append((min(t, end) - start, 0, mido.Message("note_off", channel=msg.channel, note=msg.note)))
            else:
                held_before.discard(key)
        elif t >= end:
            continue
        elif is_on:
            n_notes += 1
            in_window.add(key)
            channels.add(msg.channel)
            out.append((t - start, 1, msg))
        elif msg.type in ("control_change", "pitchwheel"):
            channels.add(msg.channel)
            out.append((t - start, 1, msg))
    head = [(0.0, 0, mido.Message("control_change", channel=ch, control=cc, value=v))
            for (ch, cc), v in sorted(state.items())]
    tail = [(end - start, 2, mido.Message("control_change", channel=ch, control=123, value=0))
            for ch in sorted(channels | {ch for ch, _ in state})]
    timeline = head + sorted(out, key=lambda e: (e[0], e[1])) + tail
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=EXCERPT_TEMPO, time=0)])
    ticks_per_second = EXCERPT_TICKS_PER_BEAT * 1e6 / EXCERPT_TEMPO
    last = 0
    for t, _, msg in timeline:
        tick = int(round(t * ticks_per_second))
        track.append(msg.copy(time=tick - last))
        last = tick
    mid = mido.MidiFile(ticks_per_beat=EXCERPT_TICKS_PER_BEAT)
    mid.tracks.append(track)
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    mid.save(dst)
    return {"notes": n_notes, "notes_cut_at_start": int(cut_at_start or 0)}


def fetched_clips(files: dict[str, Path], sample_rate: int, *, n_clips: int, clips_per_performance: int,
                  clip_seconds: float, seed: int) -> tuple[list[tuple[str, np.ndarray]], pd.DataFrame, dict]:
    """Clips of fetched recordings (id -> audio file, from :func:`pianoeval.acquire.fetched_items`).

    Same seeded rule as the offline pool (:func:`choose_clips`, span = the whole recording). Each
    chosen recording is decoded once (PyAV: any format yt-dlp fetched), mixed to mono and resampled
    to ``sample_rate``; samples beyond full scale (resampling can overshoot) are clipped and counted.
    The level is kept as recorded.

    Returns ([(clip_id, audio)], clips table, report).
    """
    from ..audio_io import audio_info, load_audio

    durations = {rid: audio_info(path).duration for rid, path in files.items()}
    chosen, too_short = choose_clips(sorted(files), lambda rid: (0.0, durations[rid]), n_clips=n_clips,
                                     clips_per_performance=clips_per_performance, clip_seconds=clip_seconds,
                                     seed=seed)
    decoded: dict[str, np.ndarray] = {}
    out, rows, clipped = [], [], 0
    for c in chosen:
        rid = c["source"]
        if rid not in decoded:
            decoded[rid] = load_audio(files[rid], sample_rate)
        a, b = int(round(c["start"] * sample_rate)), int(round(c["end"] * sample_rate))
        clip = decoded[rid][a:b]
        clipped += int(np.count_nonzero(np.abs(clip) > 1.0))
        clip_id = f"{rid}#{c['j']}"
        out.append((clip_id, np.clip(clip, -1.0, 1.0).astype(np.float32)))
        rows.append({"clip_id": clip_id, "recording": rid, "file": files[rid].name, "start": c["start"],
                     "end": round(c["start"] + clip.size / sample_rate, 3)})
    report = {"recordings_fetched": len(files), "recordings_used": len(decoded), "skipped_too_short": len(too_short),
              "skipped_too_short_ids": too_short, "clipped_samples": clipped,
              "recorded_minutes": sum(durations.values()) / 60}
    return out, pd.DataFrame(rows), report
