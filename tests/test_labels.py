import json

import numpy as np
import pytest

from pianoeval.labels import LabelError, build_labels, load_labels, load_splits, make_splits, parse_name


def test_parse_name_player_then_segment():
    n = parse_name("Beethoven_WoO80_var3_8bars_12_2")
    assert (n.piece, n.bars, n.player, n.segment) == ("Beethoven_WoO80_var3", 8, "12", 2)
    assert n.work == "Beethoven_WoO80_8bars"  # variations are segments of one work
    assert parse_name("Schubert_D960_mv3_16bars_3_07").work == "Schubert_D960_mv3_16bars"
    with pytest.raises(LabelError, match="does not match"):
        parse_name("no_bars_here", source="x.mid")


def test_build_labels_counts_unlabeled_and_renamed(mini_percepiano):
    # A file name with a leading space, as in the real data: its key has none.
    src = mini_percepiano / "midi" / "PieceA_8bars_1_1.mid"
    src.rename(mini_percepiano / "midi" / " PieceA_8bars_1_1.mid")
    table, report = build_labels(mini_percepiano)
    assert report["midi_files"] == len(table) == 4 * 6 * 2
    assert report["unlabeled"] == 4 and report["excluded"]["unlabeled_score_renditions"] == 4
    assert report["renamed_midi_files"]["leading_or_trailing_space"] == 1
    row = table.set_index("key").loc["PieceA_8bars_1_1"]
    assert row["midi_file"] == " PieceA_8bars_1_1.mid" and row["labeled"]
    assert (table["n_annotators"][table["labeled"]] == 3).all()
    assert table["key"].is_monotonic_increasing


def test_label_key_without_midi_is_an_error(mini_percepiano):
    (mini_percepiano / "midi" / "PieceB_8bars_2_1.mid").unlink()
    with pytest.raises(LabelError, match=r"1 label key\(s\) have no MIDI file.*PieceB_8bars_2_1"):
        build_labels(mini_percepiano)


@pytest.mark.parametrize("bad, msg", [
    ([0.5] * 18 + [1], "expected 20 numbers, got 19"),
    ([0.5] * 18 + ["x", 1], r"value 18 \(interpretation\) is not a finite number"),
    ([0.5] * 18 + [1.5, 1], r"outside \[0, 1\] for interpretation"),
])
def test_malformed_label_row_names_file_and_key(mini_percepiano, bad, msg):
    path = mini_percepiano / "label_2round_mean_reg_19_with0_rm_highstd0.json"
    data = json.loads(path.read_text())
    data["PieceC_8bars_3_2"] = bad
    path.write_text(json.dumps(data))
    with pytest.raises(LabelError, match=f"label_2round_mean.*key 'PieceC_8bars_3_2'.*{msg}"):
        build_labels(mini_percepiano)


def test_splits_deterministic_and_grouped(mini_percepiano, tmp_path):
    table, _ = build_labels(mini_percepiano)
    a, b = make_splits(table, n_folds=4, seed=1), make_splits(table, n_folds=4, seed=1)
    assert a == b
    lab = table.set_index("key").loc[a["keys"]]
    for split, col in (("pianist", "pianist_id"), ("piece", "piece")):
        folds = np.asarray(a["folds"][split])
        for g in lab[col].unique():  # no group in two folds
            assert len(set(folds[(lab[col] == g).to_numpy()])) == 1
        assert set(folds) == {0, 1, 2, 3}
    seg = np.asarray(a["folds"]["segment"])
    for piece in lab["piece"].unique():  # stratified: every piece in every fold
        assert set(seg[(lab["piece"] == piece).to_numpy()]) == {0, 1, 2, 3}
    path = tmp_path / "splits.json"
    path.write_text(json.dumps(a))
    assert load_splits(path)["keys"] == a["keys"]


def test_subset_and_too_few_groups(mini_percepiano, tmp_path):
    table, report = build_labels(mini_percepiano, pieces=["PieceA", "PieceB"])
    assert set(table["piece"]) == {"PieceA", "PieceB"} and report["excluded"]["outside_selected_pieces"] == 24
    with pytest.raises(LabelError, match="split 'piece' needs at least 4 distinct piece values"):
        make_splits(table, n_folds=4)
    with pytest.raises(LabelError, match="unknown piece"):
        build_labels(mini_percepiano, pieces=["Nope"])
    table.to_csv(tmp_path / "labels.csv", index=False)
    back = load_labels(tmp_path / "labels.csv")
    assert back["labeled"].dtype == bool and back["player"].tolist() == table["player"].tolist()


# ---------------------------------------------------------------- the real splits

def _midi_track(path) -> bytes:
    data = path.read_bytes()
    return data[data.find(b"MTrk", 14) + 8:]


def test_real_splits_group_overlapping_cuts_and_pianists():
    """On the vendored PercePiano: the splits the labels stage writes (and, when present, the committed
    run's data/interim/splits.json) keep pianists apart and overlapping cuts of one player together."""
    from conftest import REPO
    from pianoeval.labels import overlap_groups, passage_ids

    src = REPO / "data" / "external" / "percepiano"
    table, _ = build_labels(src)
    splits = make_splits(table, n_folds=4, seed=42)
    committed = REPO / "data" / "interim" / "splits.json"
    if committed.is_file():
        assert load_splits(committed) == splits
    lab = table.set_index("key").loc[splits["keys"]]
    pianist, segment = (np.asarray(splits["folds"][s]) for s in ("pianist", "segment"))
    assert lab.assign(f=pianist).groupby("pianist_id")["f"].nunique().max() == 1  # pianist-disjoint
    # every (piece, player) of the two-length Schubert D960 cuts sits in one segment fold
    multi = lab[lab["piece"].str.startswith("Schubert_D960")]
    assert set(multi["bars"]) == {8, 16}
    per_player = lab.assign(f=segment).loc[multi.index].groupby(["piece", "player"])["f"].nunique()
    assert len(per_player) == 26 and per_player.max() == 1  # 12 pianists + the score rendition, 2 movements
    # content check, independent of the rule: any two files of one player sharing a 48-byte run of MIDI
    # track data (the middle of the shorter file) are in the same segment fold
    tracks = {k: _midi_track(src / "midi" / m) for k, m in zip(lab.index, lab["midi_file"])}
    fold_of = dict(zip(lab.index, segment))
    n_shared = 0
    for _, g in lab.groupby("player"):
        keys = sorted(g.index, key=lambda k: len(tracks[k]))
        for i, a in enumerate(keys):
            probe = tracks[a][len(tracks[a]) // 2:len(tracks[a]) // 2 + 48]
            for b in keys[i + 1:]:
                if probe in tracks[b]:
                    n_shared += 1
                    assert fold_of[a] == fold_of[b], f"{a} and {b} share MIDI content but not a segment fold"
    assert n_shared > 200  # the 16-bar files contain their 8-bar counterparts
    # stratified by piece: every piece in every segment fold; groups recorded for the inner splits
    assert lab.assign(f=segment).groupby("piece")["f"].nunique().min() == 4
    groups = np.asarray(splits["groups"]["segment"])
    assert np.unique(groups).size == np.unique(overlap_groups(lab.reset_index())).size == 368
    assert len(set(passage_ids(lab.reset_index()))) == 99
