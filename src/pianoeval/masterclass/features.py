"""From a recordings folder to labelled segment windows and their embeddings.

A recordings folder holds ``all_moments.jsonl`` plus ``<video_id>.wav``/``.flac`` per video (any rate,
mono or stereo); the simulated folder additionally holds ``provenance.json``. Both go through the
same code: moments -> :func:`~.segments.build_segments` (variant ``all``) and
:func:`~.segments.duration_matched` (variant ``duration_matched``) -> one segment table; every
distinct window is then read from its video file (seek, downmix, the extractor resamples) and
embedded with the configured extractor.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import soundfile as sf

from pianoeval.masterclass.moments import MOMENTS_FILE, find_audio, load_moments
from pianoeval.masterclass.segments import build_segments, duration_matched

VARIANTS = ("all", "duration_matched")
SEGMENT_COLUMNS = ("variant", "segment_id", "video_id", "teacher", "label", "start", "end", "duration",
                   "moment_id", "musical_dimension")


def audio_durations(paths: dict[str, Path]) -> dict[str, float]:
    """video_id -> seconds, from the file headers (nothing is decoded)."""
    out = {}
    for vid, path in paths.items():
        info = sf.info(str(path))
        if info.frames <= 0 or info.samplerate <= 0:
            raise ValueError(f"{path}: audio has {info.frames} frames at {info.samplerate} Hz")
        out[vid] = info.frames / info.samplerate
    return out


def make_segment_table(input_dir: str | Path, *, on_error: str = "fail", min_continue_duration: float = 5.0,
                       min_stop_duration: float = 1.0, seed: int = 0, match_bins: int | None = None,
                       duration_pool: str = "video") -> tuple[pd.DataFrame, dict]:
    """Moments + audio of a recordings folder -> segment table of both variants and a report.

    ``duration_pool``: CONTINUE pieces of the duration-matched variant copy STOP durations of their own
    video (``"video"``) or of all videos (``"all"``); see :func:`~.segments.duration_matched`.

    Returns
    -------
    table : one row per (variant, segment), columns :data:`SEGMENT_COLUMNS`.
    report : the moments load report (bad lines), audio files found/unused, every segment rule count
        of both variants and n STOP / CONTINUE per variant.
    """
    input_dir = Path(input_dir)
    moments, load_rep = load_moments(input_dir / MOMENTS_FILE, on_error=on_error)
    if not moments:
        raise ValueError(f"{input_dir / MOMENTS_FILE}: no valid moments")
    paths = find_audio(input_dir, [m.video_id for m in moments])
    on_disk = {p.stem for p in input_dir.iterdir() if p.suffix.lower() in (".wav", ".flac")}
    segs, seg_rep = build_segments(moments, audio_durations(paths), min_continue_duration, min_stop_duration)
    if duration_pool not in ("video", "all"):
        raise ValueError(f"duration_pool must be 'video' or 'all', got {duration_pool!r}")
    matched, dm_rep = duration_matched(segs, seed=seed, match_bins=match_bins, by_video=duration_pool == "video")
    rows = [{"variant": v, **asdict(s)} for v, ss in zip(VARIANTS, (segs, matched)) for s in ss]
    table = pd.DataFrame(rows, columns=list(SEGMENT_COLUMNS))
    counts = {v: {"n_stop": int(((table.variant == v) & (table.label == 1)).sum()),
                  "n_continue": int(((table.variant == v) & (table.label == 0)).sum()),
                  "n_videos": int(table.loc[table.variant == v, "video_id"].nunique())} for v in VARIANTS}
    report = {"load": load_rep.to_dict(), "audio_files": len(paths),
              "audio_files_without_moments": sorted(on_disk - set(paths)),
              "segments": seg_rep, "duration_matched": dm_rep, "counts": counts}
    return table, report


def read_window(path: str | Path, start: float, end: float) -> tuple[np.ndarray, int]:
    """Samples [round(start*sr), round(end*sr)) of an audio file, downmixed to mono.

    Returns
    -------
    audio : (n,) float32. sample_rate : int.
    """
    with sf.SoundFile(str(path)) as f:
        sr = f.samplerate
        i0, i1 = int(round(start * sr)), min(int(round(end * sr)), f.frames)
        if not 0 <= i0 < i1:
            raise ValueError(f"{path}: window [{start}, {end}] s is empty or outside the audio ({f.frames / sr:.3f} s)")
        f.seek(i0)
        x = f.read(i1 - i0, dtype="float32", always_2d=True)
    return x.mean(axis=1, dtype=np.float32), sr


def distinct_windows(table: pd.DataFrame) -> pd.DataFrame:
    """One row per segment_id (the variants share their STOP windows), sorted by video and start."""
    w = table.drop_duplicates("segment_id")[["segment_id", "video_id", "start", "end"]]
    return w.sort_values(["video_id", "start", "end"], kind="stable").reset_index(drop=True)


def iter_window_embeddings(windows: pd.DataFrame, audio: dict[str, Path], model) -> Iterator[tuple]:
    """Yield (segment_id, frames (T, D)[, pooled (2D,)]) for each window, via the extractor's own
    resampling; pooled exactly as the T1 store of the same extractor pools (concat: per member)."""
    for row in windows.itertuples(index=False):
        x, sr = read_window(audio[row.video_id], row.start, row.end)
        frames, pooled = model.store_embeddings(x, sr)
        # one layer (the default combination) per window: the masterclass models read pooled vectors
        if pooled is None:
            yield row.segment_id, model.combine_layers(frames)
        else:
            yield row.segment_id, frames[:, 0], pooled


def embed_segments(table: pd.DataFrame, input_dir: str | Path, out: str | Path, model, *, extractor: str,
                   dtype: str = "float32") -> dict:
    """Embed every distinct window of a segment table into one embedding store (keys = segment ids)."""
    from pianoeval.embedding_store import write_embedding_store  # imports torch: only where needed
    windows = distinct_windows(table)
    audio = find_audio(input_dir, windows["video_id"].unique())
    summary = write_embedding_store(out, iter_window_embeddings(windows, audio, model), extractor=extractor,
                                    extractor_params=model.identity(), frame_rate=model.frame_rate, dtype=dtype)
    summary["seconds"] = float((windows["end"] - windows["start"]).sum())
    return summary


class PooledEmbeddings:
    """The ``pooled`` (N, 2D) matrix of an embedding store (see :mod:`pianoeval.embedding_store`), read
    with safetensors alone: the classifier stage and its workers then never import torch (~2 s each)."""

    def __init__(self, path: str | Path):
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: embedding store not found (run the masterclass_embed stage)")
        with safe_open(str(path), framework="np") as f:
            meta = f.metadata() or {}
            if "keys" not in meta:
                raise ValueError(f"{path}: not an embedding store (metadata 'keys' missing)")
            self.keys: list[str] = json.loads(meta["keys"])
            self.extractor = meta.get("extractor")
            self._pooled = f.get_tensor("pooled")
        self._pos = {k: i for i, k in enumerate(self.keys)}
        self.path = path

    def pooled(self, keys) -> np.ndarray:
        missing = [k for k in keys if k not in self._pos]
        if missing:
            raise KeyError(f"{self.path}: no segment {missing[0]!r} (and {len(missing) - 1} more) "
                           "in the embedding store")
        return self._pooled[[self._pos[k] for k in keys]]


def read_segment_table(path: str | Path) -> pd.DataFrame:
    t = pd.read_csv(path, dtype={"segment_id": str, "video_id": str, "teacher": str, "moment_id": str,
                                 "musical_dimension": str}, keep_default_na=False, na_values={"start": [""]})
    missing = sorted(set(SEGMENT_COLUMNS) - set(t.columns))
    if missing:
        raise ValueError(f"{path}: segment table lacks columns {missing}")
    return t
