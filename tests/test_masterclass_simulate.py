import hashlib

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from pianoeval.audio_store import AudioStore, AudioStoreWriter
from pianoeval.dimensions import CATEGORIES, DIMENSIONS
from pianoeval.io import read_json
from pianoeval.masterclass.moments import load_moments
from pianoeval.masterclass.segments import build_segments
from pianoeval.masterclass.simulate import (
    CATEGORY_NAMES,
    Teacher,
    category_z_scores,
    decide,
    eligible_sessions,
    parse_teachers,
    select_sessions,
    simulate_masterclasses,
    trim_onset,
)
from pianoeval.masterclass.speech import synth_speech

SR = 8000


def tiny_labels(n_players=6, n_segments=5, seed=0) -> pd.DataFrame:
    """One work of `n_segments` pieces (one piece per segment, like the Beethoven variations) + a Score."""
    rng = np.random.default_rng(seed)
    rows = []
    for player in [str(p) for p in range(n_players)] + ["Score"]:
        for seg in range(1, n_segments + 1):
            row = {"key": f"Op1_p{seg}_8bars_{player}_{seg}", "midi_file": "x.mid", "piece": f"Op1_p{seg}",
                   "work": "Comp_Op1_8bars", "bars": 8, "player": player, "segment": seg,
                   "is_score": player == "Score", "labeled": player != "Score",
                   "pianist_id": 100 + int(player) if player != "Score" else -1}
            row.update({f"mean_{d}": float(rng.uniform(0.2, 0.8)) if player != "Score" else np.nan
                        for d in DIMENSIONS})
            rows.append(row)
    return pd.DataFrame(rows)


TAIL = 0.2  # release tail of the tiny renders (seconds), recorded in the store meta like the render stage does


@pytest.fixture
def store(tmp_path):
    labels = tiny_labels()
    w = AudioStoreWriter(tmp_path / "store", SR)
    rng = np.random.default_rng(1)
    for i, key in enumerate(labels["key"]):
        t = np.arange(int(SR * (2.0 + 0.2 * (i % 4)))) / SR
        env = np.minimum(1.0, np.exp(-(t - t[-1] + TAIL) * 20))  # flat, then a decaying release tail
        x = 0.3 * env * np.sin(2 * np.pi * (220 + 10 * i) * t) + 0.01 * rng.standard_normal(t.size)
        x[: int(0.05 * SR)] = 0.0  # leading digital silence, as rendered MIDI often has
        w.append(key, x.astype(np.float32))
    w.close({"tail_seconds": TAIL})
    with AudioStore(tmp_path / "store") as s:
        yield labels, s


TEACHERS = {
    "dyn": {"weights": {"dynamics": 1}, "threshold": 0.0, "noise_sd": 0.0},
    "mix": {"weights": {"timing": 2, "pedal": 1, "emotion": 1}, "threshold": 0.2, "noise_sd": 0.3},
    "random": {"stop_probability": 0.5},
}
KW = dict(sessions_per_teacher=2, min_segments=4, max_segments=5, max_play_seconds=100.0,
          feedback_seconds=(0.6, 1.2), pause_seconds=0.2, lead_seconds=0.3, stop_delay_seconds=(0.2, 0.6),
          window_jitter_seconds=0.3, feedback_overlap_seconds=(0.0, 0.4))


def digest(folder):
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_simulation_is_deterministic_and_valid(store, tmp_path):
    labels, s = store
    teachers = parse_teachers(TEACHERS)
    rep = simulate_masterclasses(labels, s, teachers, tmp_path / "a", seed=3, **KW)
    simulate_masterclasses(labels, s, teachers, tmp_path / "b", seed=3, **KW)
    da, db = digest(tmp_path / "a"), digest(tmp_path / "b")
    assert da == db and len(da) == 6 + 2  # 6 sessions + moments + provenance
    simulate_masterclasses(labels, s, teachers, tmp_path / "c", seed=4, **KW)
    assert digest(tmp_path / "c") != da

    moments, load_rep = load_moments(tmp_path / "a" / "all_moments.jsonl")  # strict schema, fails on any bad line
    assert load_rep.n_skipped == 0 and len(moments) == rep["n_moments"] > 0
    assert rep["n_sessions"] == 6 and rep["n_pianists"] == 6  # distinct students while possible
    assert moments == sorted(moments, key=lambda m: (m.video_id, m.stop_timestamp))
    prov = read_json(tmp_path / "a" / "provenance.json")["videos"]
    for vid in {m.video_id for m in moments}:
        ms = [m for m in moments if m.video_id == vid]
        assert [m.stop_order for m in ms] == list(range(1, len(ms) + 1))
        assert {m.total_stops for m in ms} == {len(ms)}
        assert all(m.teacher == prov[vid]["teacher"] and vid.endswith(m.teacher) for m in ms)
        audio, sr = sf.read(tmp_path / "a" / f"{vid}.flac", dtype="float32")
        assert sr == SR and audio.ndim == 1
        perfs = prov[vid]["performances"]
        plays = [e for e in perfs if e["role"] == "play"]
        replays = [e for e in perfs if e["role"] == "replay"]
        assert [r["key"] for r in replays] == [e["key"] for e in plays if e["stop"]]
        for m, r in zip(ms, replays):
            assert m.extraction_model == "simulated" and m.musical_dimension in CATEGORIES
            assert m.playing_before_end == m.stop_timestamp < m.feedback_start < r["start"] <= m.feedback_end
            (e,) = [e for e in plays if e["moment_id"] == m.moment_id]
            assert e["stop"] and e["key"] == r["key"]
            # imprecise edges: onset +- 0.3 s, stop 0.2-0.6 s after the last note-off, feedback past the replay onset
            assert abs(m.playing_before_start - e["start"]) <= 0.3 + 1e-9
            assert e["end"] + 0.2 - 1e-9 <= m.stop_timestamp <= max(e["end"] + 0.6, e["audio_end"]) + 1e-9
            assert 0 <= m.feedback_end - r["start"] <= 0.4 + 1e-9
            # the judged performance lies in the session audio, onset silence trimmed, after the previous
            # tail (16-bit rounding + -90 dBFS room noise)
            t1 = trim_onset(s.read(e["key"]), sr)
            assert 0.0 < s.read(e["key"]).size - t1.size <= 0.05 * sr
            i0, i1, tn = round(e["start"] * sr), round(e["audio_end"] * sr), round(TAIL * sr)
            assert i1 - i0 == t1.size and e["end"] == pytest.approx(e["audio_end"] - TAIL)
            assert np.abs(audio[i0 + tn:i1 - tn] - t1[tn:-tn]).max() < 3e-4
            speech = audio[round(m.feedback_start * sr):round((r["start"] - 0.2) * sr)]
            assert 1e-3 < np.sqrt(np.mean(speech ** 2)) < 0.05  # speech present, quieter than the piano
        # performances follow each other without a gap: each starts at the previous last note-off
        cont = [e for e in perfs if e["role"] in ("play", "interrupted")]
        for a, b in zip(cont, cont[1:]):
            if a["role"] == "play" and not a["stop"]:
                assert b["start"] == pytest.approx(a["end"], abs=1.5 / sr)
    # stop counts agree with the provenance decisions, and the moments segment cleanly
    assert sum(e["stop"] for v in prov.values() for e in v["performances"]) == len(moments)
    durations = {v: p["duration"] for v, p in prov.items()}
    segs, seg_rep = build_segments(moments, durations, min_continue_duration=0.5)
    assert seg_rep["n_stop"] == len(moments) and seg_rep["duplicates_dropped"] == 0
    assert seg_rep["stop_trimmed_overlap"] == seg_rep["stop_clamped"] == seg_rep["cont_negative_gap"] == 0


def test_stop_rule_dynamics_only_teacher(store, tmp_path):
    labels, s = store
    teachers = parse_teachers({"dyn": TEACHERS["dyn"]})
    simulate_masterclasses(labels, s, teachers, tmp_path / "o", seed=0, **{**KW, "sessions_per_teacher": 6})
    z, _ = category_z_scores(labels)
    plays = [e for v in read_json(tmp_path / "o" / "provenance.json")["videos"].values()
             for e in v["performances"] if e["role"] == "play"]
    assert len(plays) == 30
    assert [e["stop"] for e in plays] == [bool(z.loc[e["key"], "dynamics"] < 0) for e in plays]
    assert 5 < sum(e["stop"] for e in plays) < 25
    moments, _ = load_moments(tmp_path / "o" / "all_moments.jsonl")
    assert {m.musical_dimension for m in moments} == {"dynamics"}


def test_category_z_scores_by_hand():
    labels = tiny_labels(n_players=3, n_segments=2)
    labels.loc[labels["player"] == "0", "mean_timing"] = 0.2
    labels.loc[labels["player"] == "1", "mean_timing"] = 0.4
    labels.loc[labels["player"] == "2", "mean_timing"] = 0.9
    z, rep = category_z_scores(labels)
    assert rep == {"n_rated_performances": 6, "n_passages": 2, "zero_spread_cells": 0}
    x = np.array([0.2, 0.4, 0.9])
    expect = (x - x.mean()) / x.std()
    got = z.loc[[f"Op1_p1_8bars_{p}_1" for p in "012"], "timing"].to_numpy()
    assert np.allclose(got, expect)
    pedal = labels.loc[labels["player"] == "1", ["mean_pedal_amount", "mean_pedal_clarity"]].mean(axis=1)
    assert "Op1_p1_8bars_Score_1" not in z.index and pedal.size == 2
    labels["mean_dynamic_range"] = 0.5  # no spread: z = 0, counted
    z, rep = category_z_scores(labels)
    assert (z["dynamics"] == 0).all() and rep["zero_spread_cells"] == 6


def test_decide_weights_noise_and_random_teacher():
    z = np.zeros((4, len(CATEGORY_NAMES)))
    z[:, CATEGORY_NAMES.index("timing")] = [-2.0, -0.5, 0.5, 2.0]
    z[:, CATEGORY_NAMES.index("pedal")] = [1.0, -1.0, -1.0, 1.0]
    (t,) = parse_teachers({"t": {"weights": {"timing": 3, "pedal": 1}, "threshold": -0.2}})
    assert t.weights[CATEGORY_NAMES.index("timing")] == 0.75
    d = decide(t, z, np.random.default_rng(0))
    assert np.allclose(d["score"], [-1.25, -0.625, 0.125, 1.75])
    assert d["stop"].tolist() == [True, True, False, False]
    assert [CATEGORY_NAMES[i] for i in d["dimension"][:2]] == ["timing", "timing"]
    assert d["secondary"][1] == ["pedal"]  # the other negative contribution
    noisy = Teacher("n", t.weights, -0.2, noise_sd=5.0)
    dn = decide(noisy, z, np.random.default_rng(0))
    assert np.allclose(dn["noise"], 5.0 * np.random.default_rng(0).standard_normal(4))
    assert dn["stop"].tolist() == (dn["score"] + dn["noise"] < -0.2).tolist()
    (r,) = parse_teachers({"random": {"stop_probability": 0.3}})
    stops = decide(r, np.random.default_rng(1).normal(size=(4000, 8)), np.random.default_rng(2))["stop"]
    assert abs(stops.mean() - 0.3) < 0.03


@pytest.mark.parametrize("cfg,match", [
    ({"t": {"weights": {"tempo": 1}, "threshold": 0}}, "unknown categories"),
    ({"t": {"weights": {"timing": -1, "pedal": 2}, "threshold": 0}}, "non-negative"),
    ({"t_1": {"weights": {"timing": 1}, "threshold": 0}}, "name must match"),
    ({"t": {"weights": {"timing": 1}}}, "need weights and threshold"),
    ({"t": {"stop_probability": 1.5}}, "random teacher"),
    ({}, "non-empty"),
])
def test_parse_teachers_rejects(cfg, match):
    with pytest.raises(ValueError, match=match):
        parse_teachers(cfg)


def test_eligible_sessions_counts_exclusions():
    labels = tiny_labels(n_players=4, n_segments=5)
    durations = {k: 10.0 for k in labels["key"]}
    del durations["Op1_p3_8bars_1_3"]
    labels.loc[labels["key"] == "Op1_p2_8bars_2_2", "labeled"] = False
    groups, rep = eligible_sessions(labels, durations, min_segments=4, max_segments=5, max_play_seconds=100.0)
    assert rep == {"groups": 4, "excluded_unlabeled": 1, "excluded_missing_audio": 1, "excluded_overlapping_cut": 0,
                   "chunks": 2, "chunks_too_few_segments": 0, "eligible": 2}
    assert [g["player"] for g in groups] == ["0", "3"] and groups[0]["segment"] == [1, 2, 3, 4, 5]
    groups, rep = eligible_sessions(labels, durations, min_segments=4, max_segments=5, max_play_seconds=35.0)
    # 5 segments of 10 s in chunks of <= 35 s: 3 + 2 segments, both shorter than 4
    assert rep["chunks"] == 4 and rep["chunks_too_few_segments"] == 4 and rep["eligible"] == 0
    groups, _ = eligible_sessions(labels, durations, min_segments=2, max_segments=5, max_play_seconds=35.0)
    assert [g["segment"] for g in groups] == [[1, 2, 3], [4, 5], [1, 2, 3], [4, 5]]  # consecutive, disjoint chunks
    with pytest.raises(ValueError, match="5 sessions requested but only 4"):
        select_sessions(groups, 5, seed=0)
    chosen = select_sessions(groups, 3, seed=0)
    assert len({g["pianist_id"] for g in chosen[:2]}) == 2  # both pianists before a second session of one


def test_eligible_sessions_skip_the_longer_cut_of_the_same_playing():
    labels = tiny_labels(n_players=2, n_segments=4)
    longer = labels.assign(bars=16, key=labels["key"].str.replace("_8bars_", "_16bars_"),
                           work="Comp_Op1_16bars")
    both = pd.concat([labels, longer], ignore_index=True)
    durations = {k: 5.0 for k in both["key"]}
    groups, rep = eligible_sessions(both, durations, min_segments=2, max_segments=8, max_play_seconds=100.0)
    assert rep["excluded_overlapping_cut"] == 2 and {g["bars"] for g in groups} == {8}


def test_speech_deterministic_bounded_and_speech_like():
    a = synth_speech(4.0, 24000, [1, 2])
    assert a.dtype == np.float32 and a.shape == (96000,)
    assert np.array_equal(a, synth_speech(4.0, 24000, [1, 2]))
    assert not np.array_equal(a, synth_speech(4.0, 24000, [1, 3]))
    assert np.abs(a).max() <= 0.5 and np.isfinite(a).all()
    loud = synth_speech(3.0, 16000, 0, rms_dbfs=0.0)
    assert np.abs(loud).max() <= 0.5 + 1e-6  # peak cap wins over the requested level
    # 50 ms frame energies: syllable gaps and phrase pauses are (near) silent
    e = np.sqrt((a[: 80 * 1200].reshape(80, 1200) ** 2).mean(axis=1))
    voiced = e > 1e-3
    assert 0.4 < voiced.mean() < 0.95 and (~voiced).sum() >= 4
    assert 20 * np.log10(np.sqrt(np.mean(a[np.repeat(voiced, 1200)] ** 2))) == pytest.approx(-36.0, abs=3.0)
    spec = np.abs(np.fft.rfft(a)) ** 2
    f = np.fft.rfftfreq(a.size, 1 / 24000)
    assert spec[(f > 80) & (f < 4000)].sum() / spec.sum() > 0.95  # energy in the voice band
    with pytest.raises(ValueError):
        synth_speech(0.0, 24000, 0)


def test_continue_windows_hold_no_replayed_playing(store, tmp_path):
    """After a stop the student replays the stopped performance: that audio must not be CONTINUE."""
    from pianoeval.masterclass.features import make_segment_table, replay_spans
    from pianoeval.masterclass.segments import overlap_seconds

    labels, s = store
    teachers = parse_teachers({"mix": {"weights": {"timing": 1}, "threshold": 0.3, "noise_sd": 0.5}})
    simulate_masterclasses(labels, s, teachers, tmp_path / "sim", seed=1, **{**KW, "sessions_per_teacher": 6})
    table, rep = make_segment_table(tmp_path / "sim", min_continue_duration=0.5)
    assert rep["provenance"] is True
    for v in ("all", "duration_matched"):
        assert rep["replay_overlap"][v]["replay_seconds"] == 0.0 and rep["replay_overlap"][v]["fraction"] == 0.0
        assert rep["replay_overlap"][v]["continue_seconds"] > 1.0
    assert rep["segments"]["cont_cut_by_replay"] > 0 and rep["segments"]["cont_replay_seconds_removed"] > 1.0
    # without the cut, the same moments give CONTINUE windows that start inside the replay
    prov = read_json(tmp_path / "sim" / "provenance.json")
    moments, _ = load_moments(tmp_path / "sim" / "all_moments.jsonl")
    uncut, _ = build_segments(moments, {v: p["duration"] for v, p in prov["videos"].items()}, 0.5)
    assert overlap_seconds(uncut, replay_spans(prov)) > 1.0
    students = table.groupby("video_id")["student"].first()
    assert all(students[v] == f"pianist{prov['videos'][v]['pianist_id']}" for v in students.index)
