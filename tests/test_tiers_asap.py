"""ASAP reading: round/year from MAESTRO names, performer-years, annotations, the T2/T3 selection."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pianoeval.tiers.asap import (aligned_with_score, check_available, furthest_round, load_asap_metadata,
                                  overlap_reference_ids, parse_maestro_name, performer_from_stem, read_beats,
                                  select_t2_t3)
from pianoeval.tiers.manifest import placement_code, read_user_manifest, t2_from_asap
from tiers_fixtures import small_asap

SEL = {"t2": {"performances_per_performer_year": 1, "rounds": [1, 2, 3]},
       "t3": {"n_folders": 5, "performers_per_folder": 3, "min_performers": 3, "seed": 0}}
T2P = {"asap_rounds": {1: "stage1", 2: "stage2", 3: "final"}, "competition": "e-Competition", "licence": "CC BY-NC-SA 4.0",
       "placement_codes": {"final": 7, "stage3": 20, "stage2": 40, "stage1": 80, "preliminary": 160}}


def test_maestro_names_and_performers():
    assert parse_maestro_name("{maestro}/2008/MIDI-Unprocessed_02_R1_2008_01-05_ORIG_MID--AUDIO_02_R1_2008_wav--1.midi") == (1, 2008)
    assert parse_maestro_name("{maestro}/2013/ORIG-MIDI_02_7_8_13_Group__MID--AUDIO_08_R2_2013_wav--1.midi") == (2, 2013)
    assert parse_maestro_name("{maestro}/2017/MIDI-Unprocessed_049_PIANO049_MID--AUDIO-split_07-06-17_Piano-e_2-06_wav--1.midi") == (None, None)
    assert parse_maestro_name("") == (None, None) and parse_maestro_name(float("nan")) == (None, None)
    assert [performer_from_stem(s) for s in ("Avdeeva02", "LuM02M", "Na_2009_02", "Richardson_2013_03M", "FALIKS01_2004")] \
        == ["Avdeeva", "LuM", "Na", "Richardson", "FALIKS"]
    with pytest.raises(ValueError, match="no performer name"):
        performer_from_stem("0123")


def test_metadata_performer_years_and_furthest_round(tmp_path):
    meta = load_asap_metadata(small_asap(tmp_path))
    assert len(meta) == 7 and meta["available"].all()
    row = meta.set_index("id")
    assert row.loc["Chopin/Etude/Alpha01M", "round"] == 3 and row.loc["Chopin/Etude/Alpha01M", "year"] == 2008
    # Alpha01M (R3) and Alpha02M (R1) are one performer-year: same name and year, same MAESTRO recording
    assert row.loc["Chopin/Etude/Alpha01M", "performer_year"] == row.loc["Bach/Prelude/Alpha02M", "performer_year"] == "Alpha_2008"
    assert pd.isna(row.loc["Chopin/Etude/Delta01", "performer_year"])  # no MAESTRO name: no round
    fr = furthest_round(meta)
    assert fr.to_dict() == {"Alpha_2008": 3, "Beta_2008": 1, "Eps_2009": 1, "Gamma_2011": 2, "Zeta_2009": 2}


def test_recording_merges_differently_spelled_names(tmp_path):
    from tiers_fixtures import make_asap, maestro
    root = make_asap(tmp_path, {"A/B": [
        {"stem": "RichardsonC02M", "maestro": maestro(1, 2015, 8, 2), "bar_seconds": 2.0, "velocity": 60},
        {"stem": "Richardson_2015_03M", "maestro": maestro(1, 2015, 8, 3), "bar_seconds": 2.0, "velocity": 61},
        {"stem": "Other01", "maestro": maestro(1, 2015, 9, 1), "bar_seconds": 2.0, "velocity": 62}]})
    meta = load_asap_metadata(root)
    # the file names give two performers, the shared MAESTRO recording makes them one performer-year
    assert meta["performer_year"].tolist() == ["RichardsonC_2015", "RichardsonC_2015", "Other_2015"]


def test_metadata_errors_name_the_line(tmp_path):
    root = small_asap(tmp_path)
    t = pd.read_csv(root / "metadata.csv", dtype=str, keep_default_na=False)
    t.loc[2, "folder"] = ""
    t.to_csv(root / "metadata.csv", index=False)
    with pytest.raises(ValueError, match=r"line 4: empty folder"):
        load_asap_metadata(root)
    t = pd.read_csv(root / "metadata.csv", dtype=str, keep_default_na=False).drop(columns=["midi_score_annotations"])
    t.to_csv(root / "metadata.csv", index=False)
    with pytest.raises(ValueError, match="missing columns"):
        load_asap_metadata(root)
    with pytest.raises(FileNotFoundError, match="metadata not found"):
        load_asap_metadata(tmp_path / "nowhere")


def test_read_beats_and_alignment(tmp_path):
    root = small_asap(tmp_path)
    score = read_beats(root / "Chopin/Etude/midi_score_annotations.txt")
    t, down = read_beats(root / "Chopin/Etude/Alpha01M_annotations.txt")
    assert down.sum() == 13 and len(t) == 25 and np.all(np.diff(t) > 0)
    assert aligned_with_score((t, down), score)
    assert not aligned_with_score(read_beats(root / "Chopin/Etude/Delta01_annotations.txt"), score)
    bad = tmp_path / "bad.txt"
    bad.write_text("0.5\t0.5\tdb\n0.2\t0.2\tb\n")
    with pytest.raises(ValueError, match=r"bad.txt: line 2: time 0.2 goes back"):
        read_beats(bad)
    bad.write_text("0.5\t0.5\tdb\n0.7\t0.7\tx\n")
    with pytest.raises(ValueError, match=r"line 2: label 'x'"):
        read_beats(bad)


def test_selection_is_pure_and_follows_the_rules(tmp_path):
    meta = load_asap_metadata(small_asap(tmp_path))
    sel = select_t2_t3(meta, SEL)
    assert sel.equals(select_t2_t3(meta.copy(), SEL))
    t2 = sel.loc[sel["tier"] == "t2", "id"].tolist()
    # one performance per performer-year; Alpha_2008 plays in both folders: the folder with more
    # round-labelled performer-years (the Etude: 3 vs 3 -> tie -> the later round R3) wins
    assert len(t2) == 5 and "Chopin/Etude/Alpha01M" in t2 and "Bach/Prelude/Alpha02M" not in t2
    t3 = sel.loc[sel["tier"] == "t3", "id"].tolist()
    assert len(t3) == 6 and {i.rsplit("/", 1)[0] for i in t3} == {"Chopin/Etude", "Bach/Prelude"}
    # files gone (a vendored copy with other params) -> the same selection, and a clear error
    meta2 = meta.assign(available=meta["id"] != "Chopin/Etude/Beta02")
    assert select_t2_t3(meta2, SEL).equals(sel)
    with pytest.raises(FileNotFoundError, match="Beta02"):
        check_available(meta2, t2, tmp_path)
    capped = select_t2_t3(meta, {**SEL, "t2": {**SEL["t2"], "max_performer_years": 2, "seed": 1}})
    assert (capped["tier"] == "t2").sum() == 2
    # the overlap check also reads Alpha's other performance
    assert "Bach/Prelude/Alpha02M" in overlap_reference_ids(meta, t2)


def test_t2_manifest_placements_and_overlap_flags(tmp_path):
    meta = load_asap_metadata(small_asap(tmp_path))
    ids = ["Chopin/Etude/Alpha01M", "Chopin/Etude/Beta02", "Bach/Prelude/Zeta05"]
    # PercePiano holds Alpha's OTHER performance: Alpha's T2 row is flagged through its performer-year
    m = t2_from_asap(meta, ids, T2P, {"Bach/Prelude/Alpha02M": {7}})
    m = m.set_index("id")
    assert m.loc["Chopin/Etude/Alpha01M", "placement"] == 7 and m.loc["Chopin/Etude/Beta02", "placement"] == 80
    assert m.loc["Bach/Prelude/Zeta05", "placement"] == 40
    assert m.loc["Chopin/Etude/Alpha01M", "percepiano_overlap"] and m.loc["Chopin/Etude/Alpha01M", "percepiano_pianist_ids"] == "7"
    assert not m.loc["Chopin/Etude/Beta02", "percepiano_overlap"]


def test_placement_codes_and_user_manifest(tmp_path):
    codes = T2P["placement_codes"]
    assert placement_code("final", "", codes) == 7 and placement_code("final", "2", codes) == 2
    assert placement_code("stage2", None, codes) == 40
    with pytest.raises(ValueError, match="outside 1-6"):
        placement_code("final", 9, codes)
    path = tmp_path / "chopin2021.csv"
    path.write_text("id,url,performer,year,round,prize,title,withdrawn\n"
                    "a,https://x/a,Kim,2021,final,1,Sonata,\n"
                    "b,https://x/b,Lee,2021,stage2,,Ballade,\n"
                    "c,https://x/c,Park,2021,preliminary,,Etude,1\n")
    t = read_user_manifest(path, T2P)
    assert t["placement"].tolist() == [1, 40, 160] and t["withdrawn"].tolist() == [False, False, True]
    assert t["performer_year"].tolist() == ["Kim_2021", "Lee_2021", "Park_2021"]
    path.write_text("id,url,performer,year,round\na,https://x/a,Kim,2021,semifinal\n")
    with pytest.raises(ValueError, match=r"chopin2021.csv: line 2: round 'semifinal' not in"):
        read_user_manifest(path, T2P)
    path.write_text("id,url,performer,year,round,prize\na,https://x/a,Kim,2021,final,9\nb,ftp://x,Lee,2021,final,\n")
    with pytest.raises(ValueError, match=r"chopin2021.csv:2: .*prize.*\n.*chopin2021.csv:3: .*url"):
        read_user_manifest(path, T2P)


def test_smaller_settings_select_subsets_of_the_default(tmp_path):
    from tiers_fixtures import make_asap, maestro
    pieces = {f"C/P{f}": [{"stem": f"N{chr(65 + f)}x{chr(65 + k)}01", "maestro": maestro(1 + k % 3, 2008 + f, k), "bar_seconds": 2.0,
                           "velocity": 50 + k} for k in range(5)] for f in range(6)}
    meta = load_asap_metadata(make_asap(tmp_path, pieces, n_bars=4))
    big = {"t2": {**SEL["t2"], "max_performer_years": 20, "seed": 3},
           "t3": {"n_folders": 5, "performers_per_folder": 4, "min_performers": 3, "seed": 3}}
    small = {"t2": {**big["t2"], "max_performer_years": 4}, "t3": {**big["t3"], "n_folders": 2, "performers_per_folder": 2}}
    a, b = select_t2_t3(meta, big), select_t2_t3(meta, small)
    assert (b["tier"] == "t2").sum() == 4 and (b["tier"] == "t3").sum() == 4
    assert set(b["id"]) <= set(a["id"])
