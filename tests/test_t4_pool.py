"""The T4 pool rule (no competition round, single-performance titles, exclusion table), seeded clip
choice, and MIDI excerpts that carry the pedal state into the clip."""

from __future__ import annotations

import mido
import numpy as np
import pandas as pd
import pytest

from conftest import REPO, write_midi
from pianoeval.render import midi_events
from pianoeval.t4.pool import (competition_round, excerpt_midi, pool_candidates, read_exclusion_table, read_metadata,
                               select_clips)


def meta_table(rows) -> pd.DataFrame:
    return pd.DataFrame([{"composer": "C", "title": t, "folder": f"C/{t}", "midi_performance": p,
                          "maestro_midi_performance": m} for t, p, m in rows])


def test_competition_round_from_maestro_names():
    assert competition_round("{maestro}/2008/MIDI-Unprocessed_02_R1_2008_01-05_ORIG_MID--AUDIO_02_R1_2008_wav--1.midi") == 1
    assert competition_round("{maestro}/2011/MIDI-Unprocessed_22_R3_2011_MID--AUDIO_R3-D7_08_Track08_wav.midi") == 3
    assert competition_round("{maestro}/2017/MIDI-Unprocessed_066_PIANO066_MID--AUDIO-split_07-07-17_Piano-e_3-02_wav--3.midi") is None
    assert competition_round("") is None


def test_pool_rule_counts_every_exclusion():
    meta = meta_table([("A", "C/A/x.mid", "{maestro}/2009/a_R2_2009_b.midi"),   # competition round
                       ("B", "C/B/x.mid", ""), ("B", "C/B/y.mid", ""),          # shared title
                       ("D", "C/D/x.mid", ""),                                  # excluded by the table
                       ("E", "C/E/x.mid", ""), ("F", "C/F/x.mid", "")])         # candidates
    cand, rep = pool_candidates(meta, ["C/D/x.mid"])
    assert cand["midi_performance"].tolist() == ["C/E/x.mid", "C/F/x.mid"]
    assert rep == {"metadata_rows": 6, "excluded_competition_round": 1, "excluded_title_with_several_performances": 2,
                   "excluded_by_table": 1, "exclusion_table_rows": 1, "candidates": 2}
    assert sum(v for k, v in rep.items() if k.startswith("excluded")) + rep["candidates"] == rep["metadata_rows"]


def test_vendored_asap_gives_the_documented_pool(tmp_path):
    from pianoeval.io import load_params
    from pianoeval.tiers.asap import load_asap_metadata, select_t2_t3

    meta = read_metadata(REPO / "data/external/asap/metadata.csv")
    # the exclusion table of the default run: the T2/T3 selection (tiers_select's selected.csv, id column)
    sel = select_t2_t3(load_asap_metadata(REPO / "data/external/asap"), load_params("tiers_select", REPO / "params.yaml"))
    sel[["id", "tier"]].to_csv(tmp_path / "selected.csv", index=False)
    exclude = read_exclusion_table(tmp_path / "selected.csv", set(meta["midi_performance"]))
    assert len(exclude) == sel["id"].nunique() > 100
    cand, rep = pool_candidates(meta, exclude)
    assert rep["metadata_rows"] == 1067 and rep["excluded_competition_round"] == 422
    assert rep["candidates"] == 19
    assert not set(cand["midi_performance"]) & set(exclude)  # T4 never pools a T2/T3 performance
    # every candidate's MIDI is vendored
    assert all((REPO / "data/external/asap" / p).is_file() for p in cand["midi_performance"])


def test_exclusion_table_errors_name_file_and_line(tmp_path):
    good = tmp_path / "ex.csv"
    good.write_text("midi_performance,reason\nC/E/x.mid,T2\n")
    assert read_exclusion_table(good, {"C/E/x.mid"}) == ["C/E/x.mid"]
    bad = tmp_path / "bad.csv"
    bad.write_text("midi_performance,reason\nC/E/x.mid,T2\nC/E/typo.mid,T3\n")
    with pytest.raises(ValueError, match=r"bad\.csv:3: 'C/E/typo\.mid' is not a performance"):
        read_exclusion_table(bad, {"C/E/x.mid"})
    by_id = tmp_path / "selected.csv"  # tiers_select's table: performance ids (the path without .mid)
    by_id.write_text("id,tier\nC/E/x,t2\nC/E/x,t3\n")
    assert read_exclusion_table(by_id, {"C/E/x.mid"}) == ["C/E/x.mid"]
    nohead = tmp_path / "nohead.csv"
    nohead.write_text("performance\nC/E/x.mid\n")
    with pytest.raises(ValueError, match="'midi_performance' or 'id' column"):
        read_exclusion_table(nohead, {"C/E/x.mid"})


def long_performance(path, seconds: float, pedal_down_at: float = 0.5):
    notes = [(0.5 + 0.5 * i, 0.5 + 0.5 * i + 0.3, 60 + i % 12, 70) for i in range(int((seconds - 1) / 0.5))]
    write_midi(path, notes, pedal=[(pedal_down_at, 127)])


def test_select_clips_is_seeded_and_clips_fit(tmp_path):
    for name, secs in (("a.mid", 40), ("b.mid", 70), ("c.mid", 12)):
        long_performance(tmp_path / name, secs)
    cand = meta_table([(n, n, "") for n in ("a.mid", "b.mid", "c.mid")])
    clips, rep = select_clips(cand, tmp_path, n_clips=3, clips_per_performance=1, clip_seconds=10.0, seed=1)
    again, _ = select_clips(cand, tmp_path, n_clips=3, clips_per_performance=1, clip_seconds=10.0, seed=1)
    pd.testing.assert_frame_equal(clips, again)
    assert rep["performances_used"] == 3 and rep["skipped_too_short"] == 0
    for row in clips.itertuples():
        first, last = 0.5, (40, 70, 12)[("a.mid", "b.mid", "c.mid").index(row.midi_performance)] - 1.0
        assert row.end - row.start == pytest.approx(10.0)
        assert first - 1e-6 <= row.start and row.end <= last + 0.3
    two, rep2 = select_clips(cand, tmp_path, n_clips=4, clips_per_performance=2, clip_seconds=15.0, seed=0)
    assert rep2["skipped_too_short"] == 1 and rep2["skipped_too_short_ids"] == ["c.mid"]  # 12 s: no two 15 s clips
    for _, g in two.groupby("midi_performance"):
        s = g.sort_values("start")
        assert (s["start"].to_numpy()[1:] >= s["end"].to_numpy()[:-1]).all()  # no overlap
    with pytest.raises(ValueError, match="n_clips=9"):
        select_clips(cand, tmp_path, n_clips=9, clips_per_performance=1, clip_seconds=10.0, seed=0)


def test_excerpt_keeps_pedal_state_shifts_time_and_counts_cut_notes(tmp_path):
    # a note held across the clip start (cut), pedal pressed before the clip, notes inside the clip
    notes = [(1.0, 6.0, 48, 80), (5.5, 6.5, 60, 70), (7.0, 12.0, 64, 60)]
    write_midi(tmp_path / "p.mid", notes, pedal=[(2.0, 127)])
    counts = excerpt_midi(midi_events(tmp_path / "p.mid"), tmp_path / "x.mid", start=5.0, end=10.0)
    assert counts == {"notes": 2, "notes_cut_at_start": 1}
    ev = midi_events(tmp_path / "x.mid")
    pedal = [(t, m.value) for t, m in ev if m.type == "control_change" and m.control == 64]
    assert pedal[0] == (0.0, 127)  # the pedal is down from the clip's first sample
    ons = [(round(t, 3), m.note) for t, m in ev if m.type == "note_on" and m.velocity > 0]
    assert ons == [(0.5, 60), (2.0, 64)]
    offs = {m.note: round(t, 3) for t, m in ev if m.type == "note_off"}
    assert offs == {60: 1.5, 64: 5.0}  # 64 ends after the clip: released at its end
    assert 48 not in offs
    assert max(t for t, _ in ev) == pytest.approx(5.0, abs=1e-3)
    assert any(m.type == "control_change" and m.control == 123 for _, m in ev)
    assert isinstance(mido.MidiFile(tmp_path / "x.mid"), mido.MidiFile)
    again = tmp_path / "y.mid"
    excerpt_midi(midi_events(tmp_path / "p.mid"), again, start=5.0, end=10.0)
    assert again.read_bytes() == (tmp_path / "x.mid").read_bytes()


def test_excerpt_renders(tmp_path):
    """The excerpt goes through the T1 renderer: audio of the clip length plus the release tail."""
    pytest.importorskip("fluidsynth")
    from pianoeval.render import SynthConfig, render_midi, resolve_soundfont

    long_performance(tmp_path / "p.mid", 30)
    excerpt_midi(midi_events(tmp_path / "p.mid"), tmp_path / "x.mid", start=10.0, end=15.0)
    cfg = SynthConfig(soundfont=str(resolve_soundfont("pretty_midi")), sample_rate=16000, tail_seconds=1.0)
    audio = render_midi(tmp_path / "x.mid", cfg)
    assert audio.size == pytest.approx(6.0 * 16000, abs=2)
    assert np.abs(audio[: 16000 * 5]).max() > 0.01  # sound from the start: the clip starts playing
