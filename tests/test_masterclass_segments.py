import json
import random

import numpy as np
import pytest

from pianoeval.masterclass.moments import Moment, load_moments
from pianoeval.masterclass.segments import (
    CONTINUE,
    STOP,
    build_segments,
    duration_matched,
    overlap_seconds,
    subtract_spans,
)


def mk(mid, vid, pbs, pbe, stop=None, fs=None, fe=None, teacher="T", dim="timing") -> Moment:
    """Moment with playing window [pbs, pbe]; stop defaults to pbe, feedback to [stop, stop + 5]."""
    stop = pbe if stop is None else stop
    fs = stop if fs is None else fs
    fe = fs + 5.0 if fe is None else fe
    return Moment(
        moment_id=mid, video_id=vid, video_title=f"title {vid}", teacher=teacher, stop_timestamp=float(stop),
        feedback_start=float(fs), feedback_end=float(fe), playing_before_start=float(pbs),
        playing_before_end=float(pbe), transcript_text="...", feedback_summary="...", musical_dimension=dim,
        secondary_dimensions=[], severity="minor", feedback_type="correction", piece="p", composer="c",
        passage_description=None, student_level=None, stop_order=1, total_stops=1, time_spent_seconds=1.0,
        confidence=1.0, demonstrated=False, extracted_at="2025-01-01", extraction_model="x",
    )


def windows(segs, label):
    return [(s.start, s.end) for s in segs if s.label == label]


def test_clean_video():
    ms = [
        mk("m1", "A", 10, 20, fe=30, dim="pedal_clarity"),
        mk("m2", "A", 40, 50, fe=60),
        mk("m3", "A", 62, 70, fe=80),  # gap 60 -> 62 is only 2 s
    ]
    segs, rep = build_segments(ms, {"A": 100.0})
    assert windows(segs, STOP) == [(10, 20), (40, 50), (62, 70)]
    assert windows(segs, CONTINUE) == [(30, 40)]
    assert [s.segment_id for s in segs] == [
        "A:stop:00010000-00020000", "A:cont:00030000-00040000", "A:stop:00040000-00050000", "A:stop:00062000-00070000"
    ]
    first, cont = segs[0], segs[1]
    assert (first.moment_id, first.musical_dimension, first.teacher, first.duration) == ("m1", "pedal_clarity", "T", 10.0)
    assert (cont.moment_id, cont.musical_dimension, cont.label) == (None, None, CONTINUE)
    assert rep["cont_dropped_too_short"] == 1
    assert (rep["n_stop"], rep["n_continue"], rep["stop_seconds"], rep["continue_seconds"]) == (3, 1, 28.0, 10.0)
    _, rep3 = build_segments(ms, {"A": 100.0}, min_continue_duration=1.5)
    assert rep3["n_continue"] == 2


def test_exact_duplicates_keep_smallest_moment_id():
    ms = [
        mk("m_b", "A", 10, 20, fe=30, dim="later"),
        mk("m_a", "A", 10.0005, 20.0004, stop=20.0009, fe=31, dim="kept"),  # within 1e-3 s: duplicate
        mk("m_c", "A", 10.002, 20.5, fe=25),  # 2 ms off: a different moment (overlap rule applies)
        mk("m_d", "A", 40, 50),
    ]
    segs, rep = build_segments(ms, {"A": 100.0})
    assert rep["duplicates_dropped"] == 1
    stops = [s for s in segs if s.label == STOP]
    assert [s.moment_id for s in stops] == ["m_a", "m_d"] and stops[0].musical_dimension == "kept"
    assert rep["stop_dropped_overlap"] == 1  # m_c is trimmed to [20.0004, 20.5] -> too short
    assert rep["cont_negative_gap"] == 1  # m_a's feedback (to 31) runs past m_c's playing start
    assert rep["cont_shrunk_by_other_moments"] == 1
    assert windows(segs, CONTINUE) == [(31, 40)]  # starts after m_a's feedback, not m_c's (25)


def test_negative_gap_gives_no_continue():
    ms = [mk("m1", "A", 10, 20, fe=45), mk("m2", "A", 40, 50, fe=55), mk("m3", "A", 70, 80)]
    segs, rep = build_segments(ms, {"A": 100.0})
    assert rep["cont_negative_gap"] == 1
    assert windows(segs, CONTINUE) == [(55, 70)]
    assert windows(segs, STOP) == [(10, 20), (40, 50), (70, 80)]


def test_overlapping_stop_windows_trimmed_or_dropped():
    ms = [
        mk("m1", "A", 10, 20, fs=20, fe=22),
        mk("m2", "A", 18, 25, fs=25, fe=26),     # starts inside m1's window -> trimmed to [20, 25]
        mk("m3", "A", 21, 25.5, fs=26, fe=27),   # trimmed to [25, 25.5] = 0.5 s -> dropped
    ]
    segs, rep = build_segments(ms, {"A": 100.0})
    assert windows(segs, STOP) == [(10, 20), (20, 25)]
    assert (rep["stop_trimmed_overlap"], rep["stop_dropped_overlap"]) == (1, 1)
    assert segs[1].segment_id == "A:stop:00020000-00025000" and segs[1].moment_id == "m2"


def test_too_short_and_zero_stop_windows_dropped():
    ms = [mk("m1", "A", 5, 5, fe=8), mk("m2", "A", 9, 9.5, fe=12), mk("m3", "A", 20, 21, fe=25)]
    segs, rep = build_segments(ms, {"A": 100.0}, min_continue_duration=1.0)
    assert rep["stop_dropped_too_short"] == 2
    assert windows(segs, STOP) == [(20, 21)]
    # moments whose STOP was dropped still delimit CONTINUE gaps (the stop happened)
    assert windows(segs, CONTINUE) == [(8, 9), (12, 20)]


def test_clamping_to_audio_length():
    ms = [
        mk("m1", "A", 10, 20, fe=30),
        mk("m2", "A", 60, 70, fe=90),
        mk("m3", "A", 95, 105, fe=110),   # playing window crosses the audio end -> clamped to [95, 100]
        mk("m4", "A", 120, 130),         # starts after the end -> dropped
        mk("m5", "B", 99.5, 100.5),      # clamped to 0.5 s -> dropped
    ]
    segs, rep = build_segments(ms, {"A": 100.0, "B": 100.0}, min_continue_duration=3.0)
    assert windows(segs, STOP) == [(10, 20), (60, 70), (95, 100)]
    assert (rep["stop_clamped"], rep["stop_dropped_after_audio_end"], rep["stop_dropped_too_short_after_clamp"]) == (2, 1, 1)
    # gaps: 30->60 kept; 90->95 kept; 110->120 starts after the end
    assert windows(segs, CONTINUE) == [(30, 60), (90, 95)]
    assert rep["cont_dropped_after_audio_end"] == 1
    segs2, rep2 = build_segments([mk("m1", "A", 10, 20, fe=30), mk("m2", "A", 130, 140)], {"A": 100.0})
    assert windows(segs2, CONTINUE) == [(30, 100)] and rep2["cont_clamped"] == 1


def test_continue_shrunk_by_out_of_order_moments():
    ms = [
        mk("m1", "A", 10, 20, fe=25),
        mk("m2", "A", 40, 50, fe=55),
        mk("m3", "A", 30, 52, fs=56, fe=60),  # later stop, but its playing window started at 30
    ]
    segs, rep = build_segments(ms, {"A": 100.0})
    assert windows(segs, CONTINUE) == [(25, 30)]  # not (25, 40): 30-40 is m3's STOP playing
    assert rep["cont_shrunk_by_other_moments"] == 1 and rep["cont_negative_gap"] == 1
    assert windows(segs, STOP) == [(10, 20), (40, 50), (50, 52)]
    ms[2] = mk("m3", "A", 22, 52, fs=56, fe=60)
    segs, rep = build_segments(ms, {"A": 100.0})
    assert rep["cont_dropped_by_other_moments"] == 1 and windows(segs, CONTINUE) == []


def test_missing_or_bad_durations():
    ms = [mk("m1", "A", 10, 20), mk("m2", "B", 10, 20), mk("m3", "C", 10, 20)]
    with pytest.raises(ValueError, match=r"2 video\(s\): \['B', 'C'\]"):
        build_segments(ms, {"A": 50.0})
    with pytest.raises(ValueError, match="finite and > 0"):
        build_segments(ms, {"A": 50.0, "B": float("nan"), "C": 0.0})


def random_messy_moments(seed: int, n_videos: int = 4) -> tuple[list[Moment], dict]:
    """Realistic-ish timelines with duplicates, overlaps, short windows and stops past the audio end."""
    rng = np.random.default_rng(seed)
    ms, durations, k = [], {}, 0
    for v in range(n_videos):
        vid, t = f"vid{v}", 5.0
        for _ in range(int(rng.integers(4, 12))):
            t += float(rng.choice([-6.0, 0.0, 3.0, 20.0], p=[0.15, 0.15, 0.3, 0.4]))
            pbs = max(0.0, t)
            pbe = pbs + float(rng.choice([0.0, 0.5, 4.0, 15.0], p=[0.1, 0.1, 0.4, 0.4]))
            fe = pbe + float(rng.uniform(0, 25))
            ms.append(mk(f"m{k:03d}", vid, round(pbs, 3), round(pbe, 3), fe=round(fe, 3)))
            k += 1
            if rng.random() < 0.15:
                ms.append(mk(f"m{k:03d}", vid, round(pbs, 3), round(pbe, 3), fe=round(fe, 3)))
                k += 1
            t = fe
        durations[vid] = float(round(t * 0.9, 3))
    return ms, durations


@pytest.mark.parametrize("seed", range(5))
def test_invariants_and_accounting(seed):
    ms, durations = random_messy_moments(seed)
    segs, rep = build_segments(ms, durations)
    assert rep["n_moments"] == len(ms)
    stop_drops = sum(v for k, v in rep.items() if k.startswith("stop_dropped"))
    assert rep["n_moments"] == rep["duplicates_dropped"] + rep["n_stop"] + stop_drops
    n_gaps = rep["n_moments"] - rep["duplicates_dropped"] - rep["n_videos"]
    cont_drops = sum(rep[k] for k in ("cont_negative_gap", "cont_dropped_by_other_moments",
                                      "cont_dropped_after_audio_end", "cont_dropped_too_short"))
    assert n_gaps == rep["n_continue"] + cont_drops
    assert len({s.segment_id for s in segs}) == len(segs)
    assert segs == sorted(segs, key=lambda s: (s.video_id, s.start))
    for vid, dur in durations.items():
        vs = [s for s in segs if s.video_id == vid]
        for a, b in zip(vs, vs[1:]):
            assert a.end <= b.start + 1e-9, (a, b)  # no overlap of any two segments, STOP or CONTINUE
        for s in vs:
            assert 0 <= s.start < s.end <= dur
            assert s.duration >= (1.0 if s.label == STOP else 5.0) - 1e-9


def test_input_order_does_not_change_segments():
    ms, durations = random_messy_moments(11, n_videos=5)
    ref = build_segments(ms, durations)
    for k in range(5):
        shuffled = list(ms)
        random.Random(k).shuffle(shuffled)
        assert build_segments(shuffled, durations) == ref


def test_shuffled_jsonl_lines_give_identical_ids(tmp_path):
    ms, durations = random_messy_moments(3)
    rows = [json.dumps(m.model_dump(mode="json")) for m in ms]
    ids = []
    for k in range(3):
        random.Random(k).shuffle(rows)
        p = tmp_path / f"m{k}.jsonl"
        p.write_text("\n".join(rows) + "\n")
        loaded, _ = load_moments(p)
        ids.append([s.segment_id for s in build_segments(loaded, durations)[0]])
    assert ids[0] == ids[1] == ids[2] and len(ids[0]) > 10


def test_replays_are_cut_out_of_continue_windows():
    ms = [mk("m1", "A", 10, 20, fe=30), mk("m2", "A", 60, 70, fe=75), mk("m3", "A", 95, 100)]
    # replays: 28-41 (starts under m1's feedback), 75-78 (3 s), 85-88 (mid-window)
    replays = {"A": [(28.0, 41.0), (75.0, 78.0), (85.0, 88.0)]}
    segs, rep = build_segments(ms, {"A": 120.0}, replays=replays)
    assert windows(segs, CONTINUE) == [(41, 60), (78, 85), (88, 95)]
    assert rep["cont_cut_by_replay"] == 2 and rep["cont_replay_seconds_removed"] == pytest.approx(11 + 3 + 3)
    assert overlap_seconds(segs, replays) == 0.0
    plain, prep_ = build_segments(ms, {"A": 120.0})
    assert windows(plain, CONTINUE) == [(30, 60), (75, 95)] and prep_["cont_cut_by_replay"] == 0
    assert overlap_seconds(plain, replays) == pytest.approx(11 + 3 + 3)
    # a part shorter than min_continue_duration is dropped and counted
    segs, rep = build_segments(ms, {"A": 120.0}, replays={"A": [(33.0, 58.0)]})
    assert windows(segs, CONTINUE) == [(75, 95)] and rep["cont_dropped_too_short"] == 2


def test_subtract_spans():
    assert subtract_spans(0, 10, []) == [(0, 10)]
    assert subtract_spans(0, 10, [(2, 3), (5, 12), (-1, 1)]) == [(1, 2), (3, 5)]
    assert subtract_spans(0, 10, [(0, 10)]) == []


def test_duration_matched_pairs_every_stop_within_its_video():
    ms, durations = random_messy_moments(7, n_videos=6)
    segs, _ = build_segments(ms, durations)
    out, rep = duration_matched(segs, seed=0)
    stops_in = [s for s in segs if s.label == STOP]
    conts_in = [s for s in segs if s.label == CONTINUE]
    stops = [s for s in out if s.label == STOP]
    pieces = [s for s in out if s.label == CONTINUE]
    assert set(stops) <= set(stops_in) and rep["n_stop_matched"] == len(stops) == len(pieces)
    assert rep["n_stop_unmatched_dropped"] == len(stops_in) - len(stops) > 0
    for v in {s.video_id for s in out}:  # per video: the same number and the same durations
        sd = sorted(round(s.duration, 9) for s in stops if s.video_id == v)
        cd = sorted(round(p.duration, 9) for p in pieces if p.video_id == v)
        assert sd == cd
        vp = sorted((p for p in pieces if p.video_id == v), key=lambda p: p.start)
        for a, b in zip(vp, vp[1:]):
            assert a.end <= b.start + 1e-9  # pieces never overlap
    for p in pieces:  # every piece lies inside a CONTINUE window of its video
        assert any(c.video_id == p.video_id and c.start - 1e-9 <= p.start and p.end <= c.end + 1e-9 for c in conts_in)
        assert p.segment_id == f"{p.video_id}:cont:{round(p.start * 1000):08d}-{round(p.end * 1000):08d}"
        assert p.moment_id is None and p.musical_dimension is None
    assert rep["duration_ks_statistic"] == 0.0
    # deterministic, order-independent, seed-dependent
    shuffled = list(segs)
    random.Random(0).shuffle(shuffled)
    assert duration_matched(shuffled, seed=0) == (out, rep)
    assert duration_matched(segs, seed=1)[0] != out


def test_duration_matched_hand_example_drops_stops_without_room():
    A = "A"
    segs, _ = build_segments([mk("m1", A, 0, 2, fe=3), mk("m2", A, 10, 22, fe=25), mk("m3", A, 37, 38)],
                             {A: 100.0}, min_continue_duration=1.0)
    assert windows(segs, CONTINUE) == [(3, 10), (25, 37)]
    for seed in range(5):
        out, rep = duration_matched(segs, seed=seed)
        # the 12 s STOP fits exactly in (25, 37) only; the 2 s and 1 s pieces then fit in (3, 10)
        assert rep["n_stop_unmatched_dropped"] == 0 and rep["unmatched_by_video"] == {}
        pieces = windows(out, CONTINUE)
        assert sorted(round(b - a, 9) for a, b in pieces) == [1.0, 2.0, 12.0] and (25, 37) in pieces
        assert all(3 <= a < b <= 10 for a, b in pieces if (a, b) != (25, 37))
    long_stop, _ = build_segments([mk("m1", A, 0, 20, fe=21), mk("m2", A, 30, 35)], {A: 100.0},
                                  min_continue_duration=1.0)
    out, rep = duration_matched(long_stop, seed=0)  # the only CONTINUE (21, 30) is shorter than the 20 s STOP
    assert windows(out, STOP) == [(30, 35)] and rep["unmatched_by_video"] == {"A": 1}
    with pytest.raises(ValueError, match="no STOP"):
        duration_matched([s for s in segs if s.label == CONTINUE])
