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
