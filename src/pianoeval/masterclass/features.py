"""From a recordings folder to labelled segment windows and their embeddings.

A recordings folder holds ``all_moments.jsonl`` plus one audio file per video, ``<video_id>.<suffix>``
in any format of :data:`pianoeval.audio_io.AUDIO_SUFFIXES` (wav, flac, mp3, m4a, webm, opus, ogg, ...;
suffix in any case; any rate, mono or stereo; decoded with PyAV); the simulated folder additionally
holds ``provenance.json``. Both go through the
same code: moments -> :func:`~.segments.build_segments` (variant ``all``) and
:func:`~.segments.duration_matched` (variant ``duration_matched``) -> one segment table; every
distinct window is then read from its video file (decoded forward once per video, downmixed; the
extractor resamples) and embedded with the configured extractor.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from pianoeval.audio_io import AUDIO_SUFFIXES, AudioDecodeError, AudioReader, audio_info
from pianoeval.audio_io import decodable_seconds as _decodable_seconds
from pianoeval.masterclass.moments import MOMENTS_FILE, PROVENANCE_FILE, find_audio, load_moments
from pianoeval.masterclass.segments import CONTINUE, build_segments, duration_matched, overlap_seconds

VARIANTS = ("all", "duration_matched")
SEGMENT_COLUMNS = ("variant", "segment_id", "video_id", "student", "teacher", "label", "start", "end", "duration",
                   "moment_id", "musical_dimension")


class UndecodableAudio(ValueError):
    """An audio file, or a window of one, that cannot be decoded; the message names the file (and window)."""


def _reason(e: Exception, path) -> str:
    """A decoder error's text without the file name it starts with (the caller names the file)."""
    return str(e).removeprefix(f"{path}: ")


def read_provenance(input_dir: str | Path) -> dict | None:
    """``provenance.json`` of a recordings folder (simulated sessions), or None (real recordings)."""
    path = Path(input_dir) / PROVENANCE_FILE
    if not path.is_file():
        return None
    with open(path) as fh:
        prov = json.load(fh)
    if not isinstance(prov.get("videos"), dict):
        raise ValueError(f"{path}: no 'videos' mapping")
    return prov


def replay_spans(provenance: dict | None) -> dict[str, list[tuple[float, float]]] | None:
    """video_id -> [(start, audio_end)] of every replayed performance (release tail included)."""
    if provenance is None:
        return None
    out = {}
    for vid, v in provenance["videos"].items():
        try:
            out[vid] = [(float(e["start"]), float(e.get("audio_end", e["end"]))) for e in v["performances"]
                        if e["role"] == "replay"]
        except KeyError as err:
            raise ValueError(f"provenance.json: video '{vid}': performance entry without {err}") from None
    return out


def students(provenance: dict | None, video_ids) -> dict[str, str]:
    """video_id -> the student (the pianist, from provenance) or the video id itself when unknown: the
    classifier's cross-validation never splits one student's videos between training and test."""
    videos = (provenance or {}).get("videos", {})
    return {v: (f"pianist{videos[v]['pianist_id']}" if v in videos else v) for v in video_ids}


def audio_durations(paths: dict[str, Path]) -> dict[str, float]:
    """video_id -> seconds, from the file headers (exact for wav/flac; FFmpeg's estimate for lossy formats,
    decoded only when no header gives a duration)."""
    out = {}
    for vid, path in paths.items():
        try:
            info = audio_info(path)
        except (AudioDecodeError, ValueError) as e:  # not audio, a broken header, no audio stream
            raise UndecodableAudio(f"{path}: cannot read the audio header ({_reason(e, path)})") from None
        if info.duration <= 0:
            raise UndecodableAudio(f"{path}: audio has no samples ({info.duration} s at {info.sample_rate} Hz)")
        out[vid] = info.duration
    return out


def decodable_seconds(path: str | Path, header_seconds: float) -> float:
    """How much of a file decodes: ``header_seconds`` for an intact file; for a file cut short with its
    header intact, where decoding stops (:func:`pianoeval.audio_io.decodable_seconds`)."""
    try:
        return _decodable_seconds(path, header_seconds)
    except AudioDecodeError as e:
        raise UndecodableAudio(f"{path}: cannot decode its first samples ({_reason(e, path)})") from None


def check_audio(input_dir: Path, video_ids: list[str], on_error: str) -> tuple[dict[str, Path], dict[str, float],
                                                                                dict[str, float], dict]:
    """Find and probe each video's audio before any window is cut from it.

    Returns (paths, header seconds, decodable seconds, report) for the usable videos. A video with no
    audio file or an unreadable one fails the stage (``on_error="fail"``, every such file listed) or
    is skipped (``"skip"``) and listed in the report; a file cut short (header intact) is listed with
    its decodable length (what a window may use is decided by the caller).
    """
    paths, problems = {}, []
    report: dict = {"videos_without_audio": [], "videos_undecodable": [], "videos_truncated": []}
    for vid in sorted(set(video_ids)):
        try:
            paths.update(find_audio(input_dir, [vid]))
        except FileNotFoundError:
            report["videos_without_audio"].append(vid)
            problems.append(f"{input_dir}: no audio file {vid}.<suffix> (any of {', '.join(AUDIO_SUFFIXES)}) "
                            f"for the moments of video '{vid}'")
    header, decodable = {}, {}
    for vid, path in list(paths.items()):
        try:
            header[vid] = audio_durations({vid: path})[vid]
            decodable[vid] = decodable_seconds(path, header[vid])
        except UndecodableAudio as e:
            report["videos_undecodable"].append({"video": vid, "file": str(path), "error": str(e)})
            problems.append(str(e))
            del paths[vid]
            header.pop(vid, None)
            continue
        if decodable[vid] < header[vid]:
            report["videos_truncated"].append({"video": vid, "file": str(path), "header_seconds": header[vid],
                                               "decodable_seconds": decodable[vid]})
    if problems and on_error == "fail":
        raise UndecodableAudio(f"{len(problems)} video(s) without usable audio (masterclass_segments.on_error=fail; "
                               "skip drops their moments):\n  " + "\n  ".join(problems[:20]))
    return paths, header, decodable, report


def make_segment_table(input_dir: str | Path, *, on_error: str = "fail", min_continue_duration: float = 5.0,
                       min_stop_duration: float = 1.0, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Moments + audio of a recordings folder -> segment table of both variants and a report.

    With a ``provenance.json`` (simulated sessions) replayed playing is cut out of the CONTINUE
    windows, and the report measures what is left of it (``replay_overlap``: must be 0); without one
    (real recordings) that check is impossible and the report says so.

    Returns
    -------
    table : one row per (variant, segment), columns :data:`SEGMENT_COLUMNS`.
    report : the moments load report (bad lines), audio files found/unused, every segment rule count
        of both variants, n STOP / CONTINUE per variant and the CONTINUE seconds overlapping a replay.
    """
    input_dir = Path(input_dir)
    moments, load_rep = load_moments(input_dir / MOMENTS_FILE, on_error=on_error)
    if not moments:
        raise ValueError(f"{input_dir / MOMENTS_FILE}: no valid moments")
    paths, header, decodable, audio_rep = check_audio(input_dir, [m.video_id for m in moments], on_error)
    n_moments = len(moments)
    moments = [m for m in moments if m.video_id in paths]  # under skip: videos without usable audio
    audio_rep["moments_dropped_no_audio"] = n_moments - len(moments)
    if not moments:
        raise ValueError(f"{input_dir}: no moment has usable audio ({audio_rep})")
    on_disk = {p.name[: -len(p.suffix)] for p in input_dir.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES}
    provenance = read_provenance(input_dir)
    replays = replay_spans(provenance)
    segs, seg_rep = build_segments(moments, header, min_continue_duration, min_stop_duration, replays=replays)
    cut = {v: t for v, t in decodable.items() if t < header[v]}
    past_cut = [s for s in segs if s.video_id in cut and s.end > cut[s.video_id]]
    audio_rep["windows_past_decodable_end"] = len(past_cut)
    if past_cut:
        if on_error == "fail":
            raise UndecodableAudio("audio cut short (header intact), windows cannot be decoded "
                                   "(masterclass_segments.on_error=fail; skip treats the cut as the audio end):\n  "
                                   + "\n  ".join(f"{paths[s.video_id]}: window [{s.start:.3f}, {s.end:.3f}] s "
                                                  f"({'STOP' if s.label else 'CONTINUE'}); decoding stops at "
                                                  f"{cut[s.video_id]:.2f} s of {header[s.video_id]:.2f} s"
                                                  for s in past_cut[:20]))
        # skip: the decodable length is the audio's end, so the audio-end rules clamp or drop (and count)
        segs, seg_rep = build_segments(moments, {**header, **cut}, min_continue_duration, min_stop_duration,
                                       replays=replays)
    matched, dm_rep = duration_matched(segs, seed=seed)
    student_of = students(provenance, sorted(paths))
    rows = [{"variant": v, **asdict(s), "student": student_of[s.video_id]}
            for v, ss in zip(VARIANTS, (segs, matched)) for s in ss]
    table = pd.DataFrame(rows, columns=list(SEGMENT_COLUMNS))
    counts = {v: {"n_stop": int(((table.variant == v) & (table.label == 1)).sum()),
                  "n_continue": int(((table.variant == v) & (table.label == 0)).sum()),
                  "n_videos": int(table.loc[table.variant == v, "video_id"].nunique()),
                  "n_students": int(table.loc[table.variant == v, "student"].nunique())} for v in VARIANTS}
    overlap = None
    if replays is not None:
        overlap = {}
        for v, ss in zip(VARIANTS, (segs, matched)):
            cont = sum(s.duration for s in ss if s.label == CONTINUE)
            sec = overlap_seconds(ss, replays)
            overlap[v] = {"continue_seconds": cont, "replay_seconds": sec, "fraction": sec / cont if cont else None}
    report = {"load": load_rep.to_dict(), "audio_files": len(paths), "audio_checks": audio_rep,
              "audio_files_without_moments": sorted(on_disk - set(paths) - set(audio_rep["videos_without_audio"])
                                                    - {u["video"] for u in audio_rep["videos_undecodable"]}),
              "provenance": provenance is not None,
              "replay_overlap": overlap if overlap is not None else
              "unknown: no provenance.json (real recordings); replays cannot be located",
              "segments": seg_rep, "duration_matched": dm_rep, "counts": counts}
    return table, report


def read_window(path: str | Path, start: float, end: float) -> tuple[np.ndarray, int]:
    """Samples [round(start*sr), round(end*sr)) of an audio file (any format), downmixed to mono.

    Returns
    -------
    audio : (n,) float32. sample_rate : int.
    """
    with AudioReader(path) as reader:
        return _read_checked(reader, start, end)


def _read_checked(reader: AudioReader, start: float, end: float) -> tuple[np.ndarray, int]:
    """``reader.read`` with decoding problems raised as :class:`UndecodableAudio` naming file and window."""
    path = reader.path
    try:
        x, sr = reader.read(start, end)
    except AudioDecodeError as e:  # a damaged stream (FFmpeg conceals it; audio_io detects it)
        raise UndecodableAudio(f"{path}: cannot decode window [{start:.3f}, {end:.3f}] s ({_reason(e, path)})") from None
    expected = int(round(end * sr)) - int(round(start * sr))
    if len(x) < expected:
        raise UndecodableAudio(f"{path}: window [{start:.3f}, {end:.3f}] s: decoding stopped after {len(x)} of "
                               f"{expected} samples (file cut short?)")
    return x, sr


def distinct_windows(table: pd.DataFrame) -> pd.DataFrame:
    """One row per segment_id (the variants share their STOP windows), sorted by video and start."""
    w = table.drop_duplicates("segment_id")[["segment_id", "video_id", "start", "end"]]
    return w.sort_values(["video_id", "start", "end"], kind="stable").reset_index(drop=True)


def iter_window_embeddings(windows: pd.DataFrame, audio: dict[str, Path], model,
                           loudness=None) -> Iterator[tuple]:
    """Yield (segment_id, frames (T, D)[, pooled (2D,)]) for each window (sorted by video and start: each
    video is decoded once), via the extractor's own resampling; pooled exactly as the T1 store of the same
    extractor pools (concat: per member). ``loudness``: a :class:`pianoeval.loudness.LoudnessCounter` that
    normalises each window first, as the extract stage does (None = off)."""
    reader = None
    try:
        for row in windows.itertuples(index=False):
            if reader is None or reader.path != str(audio[row.video_id]):
                if reader is not None:
                    reader.close()
                reader = AudioReader(audio[row.video_id])
            x, sr = _read_checked(reader, row.start, row.end)
            if loudness is not None:
                x = loudness(x, sr)
            frames, pooled = model.store_embeddings(x, sr)
            # one layer (the default combination) per window: the masterclass models read pooled vectors
            if pooled is None:
                yield row.segment_id, model.combine_layers(frames)
            else:
                yield row.segment_id, frames[:, 0], pooled
    finally:
        if reader is not None:
            reader.close()


def embed_segments(table: pd.DataFrame, input_dir: str | Path, out: str | Path, model, *, extractor: str,
                   dtype: str = "float32", loudness_lufs: float | None = None) -> dict:
    """Embed every distinct window of a segment table into one embedding store (keys = segment ids).
    ``loudness_lufs``: the extract stage's loudness target (None = off); recorded with the extractor params
    so the quality checkpoints' extractor check sees it. The summary's ``loudness`` counts what it did."""
    from pianoeval.embedding_store import write_embedding_store  # imports torch: only where needed
    from pianoeval.loudness import LoudnessCounter, embedding_params

    windows = distinct_windows(table)
    audio = find_audio(input_dir, windows["video_id"].unique())
    loud = LoudnessCounter(loudness_lufs)
    summary = write_embedding_store(out, iter_window_embeddings(windows, audio, model, loud),
                                    extractor=extractor, extractor_params=embedding_params(model.identity(), loudness_lufs),
                                    frame_rate=model.frame_rate, dtype=dtype)
    summary["seconds"] = float((windows["end"] - windows["start"]).sum())
    summary["loudness"] = loud.summary()
    summary["loudness_line"] = loud.line()
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
    t = pd.read_csv(path, dtype={"segment_id": str, "video_id": str, "student": str, "teacher": str,
                                 "moment_id": str, "musical_dimension": str}, keep_default_na=False,
                    na_values={"start": [""]})
    missing = sorted(set(SEGMENT_COLUMNS) - set(t.columns))
    if missing:
        raise ValueError(f"{path}: segment table lacks columns {missing}")
    return t
