"""Bar alignment: bar plans, the same bars cut from every aligned performance, MIDI excerpts, the
note-sequence matching, and the pairs tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import write_midi
from pianoeval.midi_match import match_performances, ngram_hashes, overlap_summary
from pianoeval.midi_notes import read_performance
from pianoeval.tiers.asap import load_asap_metadata
from pianoeval.tiers.excerpt import excerpt_events, write_excerpt
from pianoeval.tiers.pairs import contrastive_pairs, ordinal_pairs
from pianoeval.tiers.segments import bar_windows
from pianoeval.tiers.windows import bars_for_target, plan_folder, spread_starts, window_times
from tiers_fixtures import small_asap


def test_bar_plan_rules():
    db = [np.arange(0, 41) * 2.0, np.arange(0, 41) * 3.0]  # 40 bars of 2 s and of 3 s
    assert bars_for_target(db, 10.0) == 4  # median bar 2.5 s
    assert spread_starts(41, 4, 1) == (20,)  # 10 windows fit; the middle one
    assert spread_starts(41, 4, 3) == (4, 20, 32)  # windows 1, 5, 8 of 10
    assert spread_starts(9, 4, 3) is None
    plan = plan_folder(db, 10.0, 3)
    assert plan.bars() == [(4, 8), (20, 24), (32, 36)]
    with pytest.raises(ValueError, match="not aligned"):
        plan_folder([np.arange(5.0), np.arange(6.0)], 2.0, 1)
    assert window_times(db[0], 4, 8, pre_roll=0.05) == (7.95, 16.0)
    with pytest.raises(ValueError, match="outside"):
        window_times(db[0], 38, 41)


def test_bar_windows_cut_the_same_bars_and_exclude_unaligned(tmp_path):
    root = small_asap(tmp_path)
    meta = load_asap_metadata(root)
    man = meta[meta["folder"] == "Chopin/Etude"]
    w, rep = bar_windows(man, root, target_seconds=4.0, count=2, pre_roll=0.0, min_performers=2)
    assert rep["excluded_unaligned"] == 1 and rep["excluded_ids"]["unaligned"] == ["Chopin/Etude/Delta01"]
    assert rep["performances_windowed"] == 3 and len(w) == 6
    assert set(zip(w["bar_start"], w["bar_end"])) == {(2, 4), (8, 10)}  # 2 bars ~ 4 s; 6 windows fit, the 2nd and 5th taken
    alpha = w[w["performance_id"] == "Chopin/Etude/Alpha01M"].sort_values("bar_start")
    assert alpha["start"].tolist() == [4.5, 16.5] and alpha["end"].tolist() == [8.5, 20.5]  # bar 2.0 s, first downbeat 0.5
    gamma = w[w["performance_id"] == "Chopin/Etude/Gamma03M"].sort_values("bar_start")
    assert np.allclose(gamma["seconds"], 3.6)  # the same bars at this pianist's tempo
    too_short, rep2 = bar_windows(man, root, target_seconds=4.0, count=7, pre_roll=0.0)
    assert len(too_short) == 0 and rep2["excluded_too_short"] == 3


def test_excerpt_keeps_window_notes_and_pedal_state(tmp_path):
    path = tmp_path / "p.mid"
    write_midi(path, [(0.0, 1.0, 60, 50), (1.5, 4.0, 64, 70), (2.5, 2.9, 67, 80), (5.0, 5.5, 72, 90)],
               pedal=[(0.5, 127), (3.0, 0)])
    perf = read_performance(path)
    ev = excerpt_events(perf, 2.0, 4.0)
    notes = [(round(t, 4), m.note) for t, m in ev if m.type == "note_on"]
    assert notes == [(0.5, 67)]  # only onsets inside [2, 4)
    cc = [(round(t, 4), m.control, m.value) for t, m in ev if m.type == "control_change"]
    assert cc[0] == (0.0, 64, 127)  # the pedal held into the window
    assert (1.0, 64, 0) in cc and (2.0, 64, 0) in cc  # release as played, and at the window end
    out = tmp_path / "ex.mid"
    assert write_excerpt(perf, 0.0, 2.0, out) == 2
    ex = read_performance(out)
    assert ex.pitch.tolist() == [60, 64] and np.allclose(ex.onset, [0.0, 1.5], atol=1e-4)
    assert np.allclose(ex.offset, [1.0, 2.0], atol=1e-4)  # the held note is cut at the window end
    with pytest.raises(ValueError, match="end"):
        excerpt_events(perf, 3.0, 3.0)


def test_note_matching_finds_the_same_performance_only(tmp_path):
    rng = np.random.default_rng(0)
    pitches = rng.integers(40, 90, 200)
    vel = rng.integers(30, 100, 200)
    t = np.cumsum(rng.uniform(0.1, 0.3, 200))
    write_midi(tmp_path / "perf.mid", [(a, a + 0.2, int(p), int(v)) for a, p, v in zip(t, pitches, vel)])
    other_vel = np.clip(vel + rng.integers(-8, 9, 200), 1, 127)  # same notes, another pianist's touch
    write_midi(tmp_path / "other.mid", [(a * 1.1, a * 1.1 + 0.2, int(p), int(v)) for a, p, v in zip(t, pitches, other_vel)])
    seg = slice(50, 90)  # a segment cut from perf, shifted in time
    write_midi(tmp_path / "seg.mid", [(a - t[50], a - t[50] + 0.2, int(p), int(v))
                                      for a, p, v in zip(t[seg], pitches[seg], vel[seg])])
    write_midi(tmp_path / "tiny.mid", [(0.0, 0.2, 60, 60)])
    m = match_performances({"seg": tmp_path / "seg.mid", "tiny": tmp_path / "tiny.mid"},
                           {"perf": tmp_path / "perf.mid", "other": tmp_path / "other.mid"})
    assert m[["query", "reference"]].values.tolist() == [["seg", "perf"]] and m["fraction"].iloc[0] == 1.0
    assert len(ngram_hashes(np.arange(5), 8)) == 0
    assert m.attrs["unreadable_queries"] == []
    # An unreadable query (render.on_bad_midi: skip) fails by default, naming the file; skipped, it is listed
    (tmp_path / "bad.mid").write_bytes(b"MThd\x00\x00\x00\x06\x20\x74garbage")
    queries = {"seg": tmp_path / "seg.mid", "bad": tmp_path / "bad.mid"}
    refs = {"perf": tmp_path / "perf.mid"}
    with pytest.raises(ValueError, match="bad.mid"):
        match_performances(queries, refs)
    skipped = match_performances(queries, refs, on_unreadable_query="skip")
    assert skipped["query"].tolist() == ["seg"] and skipped.attrs["unreadable_queries"] == ["bad"]
    assert overlap_summary(skipped, 2, 1)["n_queries_unreadable"] == 1


def test_pairs_tables():
    seg = pd.DataFrame({"segment_id": ["a", "b", "c", "d"], "folder": ["F", "F", "F", "G"], "bar_start": [2, 2, 2, 2],
                        "bar_end": [4, 4, 4, 4], "performer_year": ["x", "y", "z", "x"], "placement": [7, 80, 80, 7]})
    p = ordinal_pairs(seg)
    assert p[["better", "worse"]].values.tolist() == [["a", "b"], ["a", "c"]]  # b-c tie: no order; d alone in G
    w = pd.DataFrame({"segment_id": ["p1@0", "p1@4", "p2@0", "p2@4"], "performance_id": ["p1", "p1", "p2", "p2"],
                      "folder": "F", "bar_start": [0, 4, 0, 4]})
    c = contrastive_pairs(w)
    rel = {(a, o): r for a, o, r in zip(c["anchor"], c["other"], c["relation"])}
    assert rel[("p1@0", "p2@0")] == "positive" and rel[("p1@0", "p1@4")] == "neg_same_performance"
    assert rel[("p1@0", "p2@4")] == "neg_same_title" and len(c) == 12
