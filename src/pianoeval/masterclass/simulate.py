"""Simulated masterclasses grounded in real crowd ratings (the embedded default input).

No masterclass audio ships with the project, so sessions are built from the rendered PercePiano
performances:

* a **session** (one "video") is a run of consecutive segments of one work by one pianist (``work`` +
  ``player`` of labels.csv, ordered by ``segment``, cut into chunks within the length caps); score
  renditions are not students, and a piece cut at two lengths (Schubert D960: 8 and 16 bars, the same
  playing) only supplies sessions from its shortest cut, so no two sessions hold the same playing;
* a **teacher** weights the 8 dimension categories (:data:`pianoeval.dimensions.CATEGORIES`); after
  each segment it computes ``score = sum_c w_c z_c`` where ``z_c`` is the segment's category-mean
  crowd rating standardised within its **passage** (same piece, cut length and segment number: the
  ratings are passage-relative) over every labeled non-score performance of that passage in
  labels.csv, and ``w`` is normalised to sum 1, and stops when ``score + N(0, noise_sd) < threshold``.
  ``musical_dimension`` is the category with the most negative ``w_c z_c``. A ``stop_probability``
  teacher stops at random (the negative control). The teachers stop on the crowd ratings by
  construction, so the simulation validates the pipeline (can it recover a known stopping rule?);
  it is no evidence about real teachers;
* performances are played continuously: leading silence is trimmed and each performance starts at
  the previous one's last note-off, under its release tail (the audio store's ``tail_seconds``);
* a stop interrupts the student shortly after the judged performance (who has gone on into the
  next one), then come a pause, speech-like feedback of seeded length (:mod:`.speech`) and another
  pause; the student replays the stopped performance (the same rendition: T1 has no improved take)
  and goes on; replays are never stopped. The moment's playing window runs from the judged
  performance's onset (annotation jitter added) to the stop; its feedback ends shortly after the
  replay has started. Neither silences nor performance boundaries therefore mark a window's label
  (see the Notes of :func:`simulate_masterclasses`); the random teacher checks that they do not.

Outputs (folder): ``<video_id>.flac`` (mono 16-bit), ``all_moments.jsonl`` in the schema of
:mod:`.moments` and ``provenance.json`` (which T1 performance, of which pianist, lies where in each
session's audio: the leakage guard of the quality scores needs it). Same inputs -> same bytes.
"""

from __future__ import annotations

import re
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from pianoeval.dimensions import CATEGORIES
from pianoeval.io import write_json
from pianoeval.labels import passage_ids
from pianoeval.masterclass.moments import MOMENTS_FILE, PROVENANCE_FILE, Moment, write_moments
from pianoeval.masterclass.oracle import passage_z
from pianoeval.masterclass.speech import synth_speech
from pianoeval.scratch import temp_path

CATEGORY_NAMES: tuple[str, ...] = tuple(CATEGORIES)
N_VOICES = 6  # speech clips the feedback is cut from
EXTRACTED_AT = "2025-01-01T00:00:00Z"  # fixed: the output must not depend on when it was made
TEACHER_NAME = re.compile(r"^[A-Za-z0-9-]{1,40}$")

FEEDBACK = {
    "timing": ("Stop. The pulse drifts in these bars; keep the beat steady and let the rhythm breathe only "
               "where the phrase asks for it.", "unsteady timing"),
    "articulation": ("Wait. The notes are not clearly articulated; decide what is legato and what is "
                     "detached and make the touch consistent.", "unclear articulation"),
    "pedal": ("Let me stop you. The pedal blurs the harmony here; change it with the bass and listen to the "
              "resonance.", "blurred pedalling"),
    "timbre": ("Stop there. The sound is flat; look for more colour and depth in the tone, not only "
               "volume.", "limited tone colour"),
    "dynamics": ("Hold on. Everything sits at one level; shape the dynamics and give the climax somewhere to "
                 "grow from.", "narrow dynamic range"),
    "tempo_space": ("Stop. The tempo and the balance between the hands do not give the music space; let the "
                    "melody lead and take time at the cadence.", "tempo, balance and space"),
    "emotion": ("Wait a moment. I do not hear the character of this passage yet; what mood do you want to "
                "convey?", "character and mood"),
    "interpretation": ("Let us stop. It is correct, but what is your idea of this passage? Make an "
                       "interpretive decision and commit to it.", "lack of interpretive conviction"),
}


@dataclass(frozen=True)
class Teacher:
    """A simulated teacher. ``weights`` (8,) over :data:`CATEGORY_NAMES`, summing to 1.
    ``stop_probability`` set = random (negative-control) teacher: weights/threshold are unused."""

    name: str
    weights: tuple[float, ...]
    threshold: float = 0.0
    noise_sd: float = 0.0
    stop_probability: float | None = None


def parse_teachers(cfg: dict) -> list[Teacher]:
    """params ``teachers`` mapping -> Teachers (params order); bad entries raise ValueError naming them."""
    if not isinstance(cfg, dict) or not cfg:
        raise ValueError("params masterclass_simulate.teachers: need a non-empty mapping name -> settings")
    out = []
    for name, t in cfg.items():
        where = f"params masterclass_simulate.teachers.{name}"
        if not TEACHER_NAME.fullmatch(str(name)):
            raise ValueError(f"{where}: name must match {TEACHER_NAME.pattern}")
        if not isinstance(t, dict):
            raise ValueError(f"{where}: expected a mapping")
        if "stop_probability" in t:
            p = float(t["stop_probability"])
            if not 0 <= p <= 1 or set(t) - {"stop_probability"}:
                raise ValueError(f"{where}: a random teacher has only stop_probability in [0, 1], got {t}")
            out.append(Teacher(str(name), tuple(np.full(len(CATEGORY_NAMES), 1 / len(CATEGORY_NAMES))),
                               stop_probability=p))
            continue
        unknown = set(t) - {"weights", "threshold", "noise_sd"}
        if unknown or "weights" not in t or "threshold" not in t:
            raise ValueError(f"{where}: need weights and threshold (noise_sd optional), got keys {sorted(t)}")
        bad = sorted(set(t["weights"]) - set(CATEGORY_NAMES))
        if bad:
            raise ValueError(f"{where}.weights: unknown categories {bad} (have {list(CATEGORY_NAMES)})")
        w = np.array([float(t["weights"].get(c, 0.0)) for c in CATEGORY_NAMES])
        if (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"{where}.weights: need non-negative weights with a positive sum, got {t['weights']}")
        sd = float(t.get("noise_sd", 0.0))
        if sd < 0:
            raise ValueError(f"{where}.noise_sd: must be >= 0, got {sd}")
        out.append(Teacher(str(name), tuple(w / w.sum()), float(t["threshold"]), sd))
    return out


def category_z_scores(labels: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Within-passage z-scores of the category-mean crowd ratings.

    A passage is the same piece, cut length and segment number (:func:`pianoeval.labels.passage_ids`):
    PercePiano's ratings are relative to the passage, so a teacher compares a performance with the
    other performances of the same music.

    Parameters
    ----------
    labels : labels table (columns key, piece, bars, segment, is_score, labeled, mean_<dim>...).

    Returns
    -------
    z : DataFrame indexed by key (labeled non-score rows), one column per category (8).
    report : counts; a passage whose category has zero spread (e.g. a single performance) gets z = 0
        there (counted in cells).
    """
    lab = labels[labels["labeled"].astype(bool) & ~labels["is_score"].astype(bool)]
    cat = pd.DataFrame({c: lab[[f"mean_{d}" for d in dims]].mean(axis=1).to_numpy()
                        for c, dims in CATEGORIES.items()}, index=lab["key"].to_numpy())
    passage = passage_ids(lab)
    z, zero = passage_z(cat, passage)
    return z, {"n_rated_performances": len(lab), "n_passages": int(np.unique(passage).size),
               "zero_spread_cells": zero}


def decide(teacher: Teacher, z: np.ndarray, rng: np.random.Generator) -> dict:
    """One teacher's decision after each of n segments.

    Parameters
    ----------
    z : (n, 8) category z-scores. rng : the session's generator (always advanced by n draws).

    Returns
    -------
    dict of (n,) arrays: ``stop`` bool, ``score`` (w·z), ``noise``, ``dimension`` (category index of
    the most negative w_c z_c; the lowest z_c for the random teacher), ``secondary`` (list of lists).
    """
    z = np.asarray(z, dtype=float)
    w = np.asarray(teacher.weights)
    contrib = z * w
    score = contrib.sum(axis=1)
    draws = rng.standard_normal(len(z)) if teacher.stop_probability is None else rng.random(len(z))
    if teacher.stop_probability is None:
        noise = teacher.noise_sd * draws
        stop = score + noise < teacher.threshold
    else:
        noise = np.zeros(len(z))
        stop = draws < teacher.stop_probability
    order = np.argsort(contrib, axis=1, kind="stable")
    secondary = [[CATEGORY_NAMES[j] for j in row[1:3] if c[j] < 0] for row, c in zip(order, contrib)]
    return {"stop": stop, "score": score, "noise": noise, "dimension": order[:, 0], "secondary": secondary}


def _chunks(durations: list[float], max_segments: int, max_play_seconds: float) -> list[tuple[int, int]]:
    """Consecutive [start, stop) runs, each as long as possible within both caps (a segment longer
    than ``max_play_seconds`` on its own starts and ends a run of one)."""
    out, start = [], 0
    while start < len(durations):
        stop, total = start, 0.0
        while stop < len(durations) and stop - start < max_segments and (
                stop == start or total + durations[stop] <= max_play_seconds):
            total += durations[stop]
            stop += 1
        out.append((start, stop))
        start = stop
    return out


def eligible_sessions(labels: pd.DataFrame, durations: dict[str, float], min_segments: int, max_segments: int,
                      max_play_seconds: float) -> tuple[list[dict], dict]:
    """Sessions available from the (work, player) groups of non-score performances.

    A group's segments, in order, are cut into consecutive chunks of at most ``max_segments``
    segments lasting at most ``max_play_seconds`` together (bounds the audio size); each chunk with
    at least ``min_segments`` segments is a candidate session (shorter chunks are counted). A group
    is excluded (and counted) when any of its performances is unlabeled or missing from the audio
    store (``durations``: key -> seconds), or when its piece is also cut at a shorter length (the
    16-bar Schubert D960 files replay the 8-bar files' playing: two such sessions would hold the
    same audio).
    """
    perf = labels[~labels["is_score"].astype(bool)].sort_values(["work", "player", "segment"])
    shortest = perf.groupby("piece")["bars"].min()
    groups, rep = [], {"groups": 0, "excluded_unlabeled": 0, "excluded_missing_audio": 0,
                       "excluded_overlapping_cut": 0, "chunks": 0, "chunks_too_few_segments": 0}
    for (work, player), g in perf.groupby(["work", "player"], sort=True):
        rep["groups"] += 1
        if not g["labeled"].astype(bool).all():
            rep["excluded_unlabeled"] += 1
            continue
        if not set(g["key"]) <= set(durations):
            rep["excluded_missing_audio"] += 1
            continue
        if (g["bars"].to_numpy() > shortest.loc[g["piece"]].to_numpy()).any():
            rep["excluded_overlapping_cut"] += 1
            continue
        for a, b in _chunks([durations[k] for k in g["key"]], max_segments, max_play_seconds):
            rep["chunks"] += 1
            if b - a < min_segments:
                rep["chunks_too_few_segments"] += 1
                continue
            c = g.iloc[a:b]
            groups.append({"work": str(work), "player": str(player), "pianist_id": int(c["pianist_id"].iloc[0]),
                           "keys": c["key"].tolist(), "segment": c["segment"].astype(int).tolist(),
                           "bars": int(c["bars"].iloc[0])})
    rep["eligible"] = len(groups)
    return groups, rep


def select_sessions(groups: list[dict], n: int, seed: int) -> list[dict]:
    """Seeded choice of ``n`` candidate sessions spreading the pianists: in rounds over a random order,
    each round takes at most one session per pianist (every pianist gets a first session before any
    gets a second)."""
    if n > len(groups):
        raise ValueError(f"masterclass_simulate: {n} sessions requested but only {len(groups)} eligible sessions")
    order = [int(i) for i in np.random.default_rng(seed).permutation(len(groups))]
    chosen: list[int] = []
    while len(chosen) < n:
        seen: set[int] = set()
        for i in order:
            if i not in chosen and groups[i]["pianist_id"] not in seen:
                chosen.append(i)
                seen.add(groups[i]["pianist_id"])
    return [groups[i] for i in chosen[:n]]


def _composer_piece(work: str) -> tuple[str, str]:
    composer, _, rest = work.partition("_")
    return composer, re.sub(r"_\d+bars$", "", rest).replace("_", " ")


def _severity(z: float) -> str:
    return "major" if z < -1.0 else "moderate" if z < -0.4 else "minor"


class _Timeline:
    """Session audio assembled in samples (every time is an exact sample index / rate). Parts may
    overlap: a performance starts under the release tail of the one before, as continuous playing does."""

    def __init__(self, sr: int):
        self.sr, self.parts, self.cursor = sr, [], 0

    def add(self, x: np.ndarray, overlap: int = 0) -> tuple[float, float]:
        start = max(0, self.cursor - overlap)
        self.parts.append((start, np.asarray(x, dtype=np.float32)))
        self.cursor = start + len(x)
        return start / self.sr, self.cursor / self.sr

    def silence(self, seconds: float) -> None:
        self.cursor += int(round(seconds * self.sr))

    def render(self) -> np.ndarray:
        out = np.zeros(self.cursor, dtype=np.float32)
        for start, x in self.parts:
            out[start:start + len(x)] += x
        return out


def trim_onset(audio: np.ndarray, sr: int, threshold: float = 1e-3, preroll: float = 0.005) -> np.ndarray:
    """Drop the leading silence of a rendered performance (keeps ``preroll`` s before the first sample
    above ``threshold``): digital silence at a STOP window's start would mark it as a segment boundary."""
    loud = np.flatnonzero(np.abs(audio) > threshold)
    if loud.size == 0:
        return audio
    return audio[max(0, int(loud[0]) - int(preroll * sr)):]


def _write_flac(path: Path, audio: np.ndarray, sr: int) -> None:
    peak = float(np.abs(audio).max())
    if peak > 1.0:
        raise ValueError(f"{path}: session audio peaks at {peak:.3f} > 1.0 and would clip")
    # Explicit int16 rounding (as the audio store does): bytes independent of libsndfile's float path.
    sf.write(path, np.round(audio * 32767.0).astype(np.int16), sr, format="FLAC", subtype="PCM_16")


def _fade_out(x: np.ndarray, n: int) -> np.ndarray:
    x = x.copy()
    n = min(n, len(x))
    x[len(x) - n:] *= np.linspace(1.0, 0.0, n, dtype=np.float32)
    return x


def simulate_masterclasses(labels: pd.DataFrame, store, teachers: list[Teacher], out_dir: str | Path, *,
                           seed: int = 0, sessions_per_teacher: int = 2, min_segments: int = 10,
                           max_segments: int = 16, max_play_seconds: float = 240.0, pause_seconds: float = 0.6,
                           feedback_seconds: tuple[float, float] = (6.0, 16.0), lead_seconds: float = 1.0,
                           stop_delay_seconds: tuple[float, float] = (0.5, 2.5), window_jitter_seconds: float = 1.5,
                           feedback_overlap_seconds: tuple[float, float] = (0.0, 1.5),
                           speech_rms_dbfs: float = -36.0, noise_floor_dbfs: float = -90.0) -> dict:
    """Write simulated sessions (FLAC), ``all_moments.jsonl`` and ``provenance.json`` to ``out_dir``.

    Parameters
    ----------
    labels : labels table. store : :class:`pianoeval.audio_store.AudioStore` with the performances.
    teachers : from :func:`parse_teachers`; session i goes to teacher ``i % len(teachers)``.
    out_dir : replaced as a whole (written next to it first, then swapped in).
    min_segments, max_segments, max_play_seconds : session length rules (:func:`eligible_sessions`).
    feedback_seconds : (low, high) of the uniform feedback length. lead_seconds : room tone before
        the first and after the last note. noise_floor_dbfs : level of the seeded room noise.
    stop_delay_seconds : (low, high): the teacher interrupts this long after the judged performance's
        last note-off, while the student has gone on into the next one.
    window_jitter_seconds : the moment's ``playing_before_start`` is the judged performance's onset
        +- this (uniform): annotated windows are imprecise.
    feedback_overlap_seconds : (low, high): the annotated feedback ends this long after the replay onset.

    Returns
    -------
    report : sessions, moments per teacher, stop rates, seconds of audio, exclusions.

    Notes
    -----
    Without the interruption delay and the jitters every STOP window would start exactly on a
    performance onset and end exactly before the next one, every CONTINUE window would start on a
    replay onset; a classifier reads such edges from pooled log-mel frames (AUC ~0.9 for aligned vs
    0.3-3 s shifted windows of the same performances), and the random teacher's AUC would not be 0.5.
    """
    lo, hi = map(float, feedback_seconds)
    if not 0 < lo <= hi:
        raise ValueError(f"feedback_seconds must satisfy 0 < low <= high, got {feedback_seconds}")
    d_lo, d_hi = map(float, stop_delay_seconds)
    o_lo, o_hi = map(float, feedback_overlap_seconds)
    if not (0 <= d_lo <= d_hi and 0 <= o_lo <= o_hi and window_jitter_seconds >= 0):
        raise ValueError(f"need 0 <= low <= high for stop_delay_seconds {stop_delay_seconds} and "
                         f"feedback_overlap_seconds {feedback_overlap_seconds}, window_jitter_seconds >= 0")
    z_all, z_rep = category_z_scores(labels)
    durations = {k: store.duration(k) for k in store.keys}
    groups, g_rep = eligible_sessions(labels, durations, min_segments, max_segments, max_play_seconds)
    sessions = select_sessions(groups, sessions_per_teacher * len(teachers), seed)
    sr = int(store.sample_rate)
    tail_n = int(round(float(store.meta.get("tail_seconds", 0.0)) * sr))  # the renderer's release tail
    react, fade = int(0.3 * sr), int(0.05 * sr)  # the student stops 0.3 s after the stop, over 50 ms
    # The teacher's voice: a few speech clips of the longest feedback length, synthesised once; each
    # feedback is the seeded choice of one clip, cut to its seeded length (the talk is never inside a
    # STOP or CONTINUE window, so a pool of voices is enough and saves most of the synthesis time).
    voices = [synth_speech(hi, sr, [seed, v], speech_rms_dbfs) for v in range(N_VOICES)]
    out_dir = Path(out_dir)
    tmp = temp_path(out_dir)  # in the stage's scratch folder: a killed run leaves nothing beside out_dir
    tmp.mkdir(parents=True)

    moments, provenance = [], {}
    per_teacher = {t.name: {"sessions": 0, "segments_played": 0, "moments": 0} for t in teachers}
    total_seconds = 0.0
    for i, s in enumerate(sessions):
        teacher = teachers[i % len(teachers)]
        vid = f"sim{i:02d}_{teacher.name}"
        rng = np.random.default_rng([seed, zlib.crc32(vid.encode())])
        dec = decide(teacher, z_all.loc[s["keys"]].to_numpy(), rng)
        perf = [trim_onset(store.read(key), sr) for key in s["keys"]]
        tl = _Timeline(sr)
        tl.silence(lead_seconds)
        entries, stops, overlap, prev_fb_end = [], [], 0, 0.0

        def entry(k, role, start, end, audio_end, stop=False):
            e = {"key": s["keys"][k], "pianist_id": s["pianist_id"], "role": role, "start": start, "end": end,
                 "audio_end": audio_end, "score": None, "noise": None, "stop": stop}
            if role == "play":
                e.update(score=float(dec["score"][k]), noise=float(dec["noise"][k]), moment_id=None)
            entries.append(e)

        for k, audio in enumerate(perf):
            tail = min(tail_n, len(audio) // 2)
            # The next performance starts at this one's last note-off, under its release tail.
            start, audio_end = tl.add(audio, overlap)
            end = audio_end - tail / sr
            entry(k, "play", start, end, audio_end, stop=bool(dec["stop"][k]))
            overlap = tail
            if not dec["stop"][k]:
                continue
            stop_t = end + float(rng.uniform(d_lo, d_hi))
            if k + 1 < len(perf):  # the student has gone on into the next performance: cut it off
                n = int(round((stop_t - end) * sr)) + react
                frag = _fade_out(perf[k + 1][:n], fade)
                f_start, f_end = tl.add(frag, overlap)
                entry(k + 1, "interrupted", f_start, f_end, f_end)
            else:  # the last performance: the teacher speaks into its release tail
                stop_t = min(stop_t, audio_end)
            tl.cursor = max(tl.cursor, int(round(stop_t * sr)) + react)
            tl.silence(pause_seconds)
            fb_len = int(round(float(rng.uniform(lo, hi)) * sr))
            fb_start, _ = tl.add(_fade_out(voices[int(rng.integers(len(voices)))][:fb_len], fade))
            tl.silence(pause_seconds)
            r_start, r_audio_end = tl.add(audio)
            entry(k, "replay", r_start, r_audio_end - tail / sr, r_audio_end)
            # Annotated edges are imprecise (see Notes): no window edge sits on a performance boundary.
            fb_end = min(r_start + float(rng.uniform(o_lo, o_hi)), r_audio_end)
            pbs = start + float(rng.uniform(-window_jitter_seconds, window_jitter_seconds))
            pbs = float(np.clip(pbs, prev_fb_end, stop_t - 1.0))
            stops.append((k, pbs, stop_t, fb_start, fb_end, bool(rng.random() < 0.25)))
            prev_fb_end = fb_end
        tl.silence(lead_seconds)
        audio = tl.render()
        # Room noise under everything (no digital silence marks a boundary): one seeded second of noise
        # per session, tiled, at the noise floor (inaudible; ~1 LSB at -90 dBFS).
        noise = np.float32(10 ** (noise_floor_dbfs / 20)) * rng.standard_normal(sr, dtype=np.float32)
        audio += np.resize(noise, audio.size)
        _write_flac(tmp / f"{vid}.flac", audio, sr)
        total_seconds += audio.size / sr

        composer, piece = _composer_piece(s["work"])
        for j, (k, start, end, fb_start, fb_end, demo) in enumerate(stops, start=1):  # end = stop time
            cat = CATEGORY_NAMES[dec["dimension"][k]]
            zc = float(z_all.loc[s["keys"][k], cat])
            next(e for e in entries if e["role"] == "play" and e["key"] == s["keys"][k])["moment_id"] = \
                f"{vid}-m{j:02d}"
            moments.append(Moment(
                moment_id=f"{vid}-m{j:02d}", video_id=vid,
                video_title=f"Simulated masterclass {i:02d}: {teacher.name} with pianist {s['player']} "
                            f"({composer} {piece})",
                teacher=teacher.name, stop_timestamp=end, feedback_start=fb_start, feedback_end=fb_end,
                playing_before_start=start, playing_before_end=end,
                transcript_text=FEEDBACK[cat][0],
                feedback_summary=f"{FEEDBACK[cat][1]} (crowd z-score {zc:+.2f} within the piece)",
                musical_dimension=cat, secondary_dimensions=dec["secondary"][k], severity=_severity(zc),
                feedback_type="correction", piece=piece, composer=composer,
                passage_description=f"segment {s['segment'][k]} ({s['bars']} bars)", student_level="advanced",
                stop_order=j, total_stops=len(stops), time_spent_seconds=fb_end - fb_start, confidence=1.0,
                demonstrated=demo, extracted_at=EXTRACTED_AT, extraction_model="simulated",
            ))
        provenance[vid] = {"teacher": teacher.name, "pianist_id": s["pianist_id"], "player": s["player"],
                           "work": s["work"], "audio": f"{vid}.flac", "duration": audio.size / sr,
                           "performances": entries}
        pt = per_teacher[teacher.name]
        pt["sessions"] += 1
        pt["segments_played"] += len(s["keys"])
        pt["moments"] += len(stops)

    moments.sort(key=lambda m: (m.video_id, m.stop_timestamp))
    write_moments(tmp / MOMENTS_FILE, moments)
    write_json(tmp / PROVENANCE_FILE, {"source": "masterclass_simulate", "sample_rate": sr, "videos": provenance})
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    for pt in per_teacher.values():
        pt["stop_rate"] = pt["moments"] / pt["segments_played"]
    n_without = sum(1 for v in provenance if not any(e["stop"] for e in provenance[v]["performances"]))
    return {"n_sessions": len(sessions), "n_moments": len(moments), "n_teachers": len(teachers),
            "sessions_without_stops": n_without, "n_pianists": len({s["pianist_id"] for s in sessions}),
            "audio_seconds": total_seconds, "sample_rate": sr, "teachers": per_teacher,
            "session_groups": g_rep, "z_scores": z_rep}
