"""T2 from real recordings (a user's competition manifest): time windows of downloaded audio.

Recordings have no beat annotations, so windows are fixed-length (``target_seconds``) and spread
evenly over each recording (the same rule as bar windows: window i of W back-to-back windows is the
``floor((i + 0.5) W / count)``-th). ``bar_start``/``bar_end`` hold the window's index in that grid,
so the ordinal pairs (same title, same grid position, different placement) are approximate: the
same place in the piece, not verified to be the same bars.

Audio is found as ``<recordings_dir>/<id>.<ext>`` (what :mod:`pianoeval.acquire` writes, or files
you put there; suffix matched case-insensitively, any format of :mod:`pianoeval.audio_io`: wav, flac,
mp3, m4a, webm, opus, ogg...) and decoded with :func:`pianoeval.audio_io.load_audio` (PyAV).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..audio_io import AUDIO_SUFFIXES, audio_info, load_audio
from .segments import WINDOW_COLUMNS, segment_id
from .windows import spread_starts



def find_recording(folder: str | Path, rec_id: str) -> Path:
    """The one audio file named ``<id>.<suffix>`` in ``folder``; errors name the id and what was found."""
    folder = Path(folder)
    hits = sorted(p for p in folder.glob(f"{rec_id}.*") if p.suffix.lower() in AUDIO_SUFFIXES)
    if not hits:
        others = sorted(p.name for p in folder.glob(f"{rec_id}.*"))
        raise FileNotFoundError(f"{folder}: no audio for manifest id '{rec_id}' (looked for {', '.join(AUDIO_SUFFIXES)}"
                                + (f"; found {others}" if others else "")
                                + ")")
    if len(hits) > 1:
        raise ValueError(f"{folder}: several audio files for manifest id '{rec_id}': {[h.name for h in hits]}")
    return hits[0]


def recording_windows(manifest: pd.DataFrame, recordings_dir: str | Path, *, target_seconds: float,
                      count: int) -> tuple[pd.DataFrame, dict]:
    """Windows of each manifest recording (columns id, title + the manifest's own); report counts short ones."""
    rows, short = [], []
    for r in manifest.sort_values("id").itertuples():
        path = find_recording(recordings_dir, r.id)
        duration = audio_info(path).duration
        starts = spread_starts(int(duration // target_seconds) + 1, 1, count)
        if starts is None:
            short.append(r.id)
            continue
        for k in starts:
            start = k * target_seconds
            rows.append((segment_id(r.id, k, k + 1), r.id, r.title, k, k + 1, start, start + target_seconds,
                         target_seconds))
    windows = pd.DataFrame(rows, columns=WINDOW_COLUMNS)
    extra = manifest.drop(columns=["folder"]).rename(columns={"id": "performance_id"})
    windows = windows.merge(extra, on="performance_id", how="left", validate="many_to_one")
    windows["folder"] = windows["title"]
    report = {"performances_in": int(len(manifest)), "performances_windowed": int(windows["performance_id"].nunique()),
              "excluded_unaligned": 0, "excluded_too_short": len(short), "excluded_too_few_performers": 0,
              "excluded_ids": {"too_short": short}, "folders": int(windows["folder"].nunique()),
              "windows": int(len(windows)), "hours": float(windows["seconds"].sum() / 3600),
              "window_seconds": {"min": float(target_seconds), "median": float(target_seconds), "max": float(target_seconds)}}
    return windows.sort_values("segment_id").reset_index(drop=True), report


def cut_recordings(windows: pd.DataFrame, recordings_dir: str | Path, out_dir: str | Path, sample_rate: int) -> dict:
    """Decode each recording once (mono, resampled to ``sample_rate``) and write its windows to one store.

    The level is the recording's own (no normalisation): loudness is a rated dimension.
    """
    import shutil

    from ..audio_store import AudioStoreWriter

    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    writer = AudioStoreWriter(out, sample_rate)
    order = {s: k for k, s in enumerate(windows["segment_id"])}
    pieces = {}
    for rec_id, g in windows.groupby("performance_id", sort=True):
        audio = load_audio(find_recording(recordings_dir, rec_id), sample_rate)
        for r in g.itertuples():
            a, b = int(round(r.start * sample_rate)), int(round(r.end * sample_rate))
            pieces[r.segment_id] = np.clip(audio[a:b], -1.0, 1.0)
    for s in sorted(pieces, key=order.get):
        writer.append(s, pieces[s])
    writer.close({"source": "recordings", "recordings_dir": str(recordings_dir)})
    secs = np.array([len(v) / sample_rate for v in pieces.values()])
    return {"rendered": len(pieces), "excluded_bad_midi": 0, "total_hours": float(secs.sum() / 3600),
            "global_scale": 1.0, "source": "recordings"}
