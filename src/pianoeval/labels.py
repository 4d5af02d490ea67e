"""PercePiano labels: parse the vendored data into one labels table and deterministic CV splits.

Real quirks of the data, each handled by a stated rule and counted in the data report:

* 1202 MIDI files but 1189 label keys: 13 mechanical score renditions have no ratings. They stay in
  the table with ``labeled = False`` (they are still rendered) and are excluded from training.
* One MIDI file name starts with a space; its label key has none. Keys are the stripped stem and
  the original file name is kept in ``midi_file``.
* The 20th label value is the pianist id, not a rating.
* A label key with no MIDI file is an error: a rating we cannot render is a broken dataset.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .dimensions import DIMENSIONS, MEAN_COLUMNS, N_DIMENSIONS, STD_COLUMNS

MEAN_JSON = "label_2round_mean_reg_19_with0_rm_highstd0.json"
STD_JSON = "label_2round_std_reg_19_with0_rm_highstd0.json"
ANNOTATOR_CSV = "total_2rounds.csv"
SPLITS = ("pianist", "segment", "piece")

# `<piece>_<N>bars_<player>_<segment>`: player first, then the segment's place in the work.
FILENAME_RE = re.compile(r"^(?P<piece>.+)_(?P<bars>\d+)bars_(?P<player>[^_]+)_(?P<segment>\d+)$")
SCORE_PLAYERS = ("Score", "Score2")


class LabelError(ValueError):
    """Malformed PercePiano input; the message names the file and key."""


@dataclass(frozen=True)
class ParsedName:
    piece: str
    bars: int
    player: str
    segment: int

    @property
    def work(self) -> str:
        """The continuous work a segment belongs to: Beethoven WoO 80 variations form one work
        (each variation is one numbered segment of it); other pieces are works of their own,
        with the 8- and 16-bar cuts kept apart because they are separate segmentations."""
        base = "Beethoven_WoO80" if self.piece.startswith("Beethoven_WoO80_") else self.piece
        return f"{base}_{self.bars}bars"


def parse_name(stem: str, source: str = "") -> ParsedName:
    m = FILENAME_RE.match(stem)
    if not m:
        raise LabelError(f"{source}: name '{stem}' does not match '<piece>_<N>bars_<player>_<segment>'")
    return ParsedName(m["piece"], int(m["bars"]), m["player"], int(m["segment"]))


def _read_label_json(path: Path, n_values: int) -> dict[str, list[float]]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise LabelError(f"{path}: invalid JSON ({e})") from e
    if not isinstance(data, dict):
        raise LabelError(f"{path}: expected an object mapping segment key -> 20 numbers")
    for key, row in data.items():
        if not isinstance(row, list) or len(row) != n_values:
            n = len(row) if isinstance(row, list) else type(row).__name__
            raise LabelError(f"{path}: key '{key}': expected {n_values} numbers, got {n}")
        for i, v in enumerate(row):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                what = DIMENSIONS[i] if i < N_DIMENSIONS else "pianist_id"
                raise LabelError(f"{path}: key '{key}': value {i} ({what}) is not a finite number: {v!r}")
    return data


def _check_ratings(path: Path, data: dict[str, list[float]]) -> None:
    for key, row in data.items():
        bad = [DIMENSIONS[i] for i, v in enumerate(row[:N_DIMENSIONS]) if not 0.0 <= v <= 1.0]
        if bad:
            raise LabelError(f"{path}: key '{key}': ratings outside [0, 1] for {', '.join(bad)}")
        if float(row[N_DIMENSIONS]) != int(row[N_DIMENSIONS]) or row[N_DIMENSIONS] < 0:
            raise LabelError(f"{path}: key '{key}': pianist id must be a non-negative integer, got {row[-1]!r}")


def _check_stds(path: Path, data: dict[str, list[float]]) -> None:
    """Rating standard deviations on the [0, 1] scale lie in [0, 0.5] (0.5 = half the raters at each end)."""
    for key, row in data.items():
        bad = [f"{DIMENSIONS[i]}={v!r}" for i, v in enumerate(row) if not 0.0 <= v <= 0.5]
        if bad:
            raise LabelError(f"{path}: key '{key}': rating std outside [0, 0.5] for {', '.join(bad)}")


def _annotator_counts(path: Path) -> tuple[Counter, int]:
    """Ratings per segment key from the per-annotator CSV (file names carry a .wav suffix)."""
    counts: Counter = Counter()
    n_rows = 0
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or "filename" not in reader.fieldnames:
            raise LabelError(f"{path}: no 'filename' column")
        for lineno, row in enumerate(reader, start=2):
            name = (row["filename"] or "").strip()
            if not name:
                raise LabelError(f"{path}:{lineno}: empty filename")
            counts[re.sub(r"\.(wav|mid)$", "", name)] += 1
            n_rows += 1
    return counts, n_rows


def build_labels(source_dir: str | Path, pieces: list[str] | None = None) -> tuple[pd.DataFrame, dict]:
    """Parse the vendored PercePiano copy into one table (one row per MIDI file) and a data report.

    Parameters
    ----------
    source_dir : folder with ``midi/``, the two label JSON files and the annotator CSV.
    pieces : optional list of file-name pieces to keep (a subset for quick runs and tests).

    Returns
    -------
    table : DataFrame, one row per MIDI file, sorted by key, columns
        key, midi_file, piece, work, bars, player, segment, is_score, labeled, pianist_id,
        mean_<dim> x19, std_<dim> x19, n_annotators.
    report : dict of counts (MIDI, labeled, unlabeled, excluded with reasons).
    """
    src = Path(source_dir)
    midi_dir = src / "midi"
    if not midi_dir.is_dir():
        raise LabelError(f"{midi_dir}: MIDI folder not found")
    means = _read_label_json(src / MEAN_JSON, N_DIMENSIONS + 1)  # 19 ratings + pianist id
    stds = _read_label_json(src / STD_JSON, N_DIMENSIONS)
    _check_ratings(src / MEAN_JSON, means)
    _check_stds(src / STD_JSON, stds)
    if set(means) != set(stds):
        diff = sorted(set(means) ^ set(stds))[:10]
        raise LabelError(f"{src / STD_JSON}: keys differ from {MEAN_JSON}, e.g. {diff}")
    counts, n_rating_rows = _annotator_counts(src / ANNOTATOR_CSV)

    midi_files = sorted(p.name for p in midi_dir.iterdir() if p.suffix.lower() in (".mid", ".midi"))
    by_key: dict[str, str] = {}
    renamed = []
    for name in midi_files:
        key = Path(name).stem.strip()
        if key != Path(name).stem:
            renamed.append(name)
        if key in by_key:
            raise LabelError(f"{midi_dir}: '{name}' and '{by_key[key]}' map to the same key '{key}'")
        by_key[key] = name

    missing_midi = sorted(set(means) - set(by_key))
    if missing_midi:
        raise LabelError(
            f"{src / MEAN_JSON}: {len(missing_midi)} label key(s) have no MIDI file in {midi_dir}: "
            + ", ".join(missing_midi[:20])
        )

    # Pianist id must be a property of the player, consistent across works.
    ids_per_player: dict[str, set] = defaultdict(set)
    rows = []
    for key in sorted(by_key):
        name = parse_name(key, source=str(midi_dir / by_key[key]))
        row = {
            "key": key,
            "midi_file": by_key[key],
            "piece": name.piece,
            "work": name.work,
            "bars": name.bars,
            "player": name.player,
            "segment": name.segment,
            "is_score": name.player in SCORE_PLAYERS,
            "labeled": key in means,
            "pianist_id": int(means[key][N_DIMENSIONS]) if key in means else -1,
        }
        for i, col in enumerate(MEAN_COLUMNS):
            row[col] = float(means[key][i]) if key in means else np.nan
        for i, col in enumerate(STD_COLUMNS):
            row[col] = float(stds[key][i]) if key in means else np.nan
        row["n_annotators"] = int(counts.get(key, 0))
        if key in means:
            ids_per_player[name.player].add(row["pianist_id"])
        rows.append(row)
    inconsistent = {p: sorted(s) for p, s in ids_per_player.items() if len(s) > 1}
    if inconsistent:
        raise LabelError(f"{src / MEAN_JSON}: players with several pianist ids: {inconsistent}")

    table = pd.DataFrame(rows)
    n_all = len(table)
    excluded_pieces = 0
    if pieces:
        unknown = sorted(set(pieces) - set(table["piece"]))
        if unknown:
            raise LabelError(f"params labels.pieces: unknown piece(s) {unknown}")
        keep = table["piece"].isin(pieces)
        excluded_pieces = int((~keep).sum())
        table = table[keep].reset_index(drop=True)

    labeled = table[table["labeled"]]
    unlabeled = table[~table["labeled"]]
    no_annotations = labeled[labeled["n_annotators"] == 0]["key"].tolist()
    orphan_ratings = sorted(set(counts) - set(by_key))
    report = {
        "midi_files": n_all,
        "label_keys": len(means),
        "annotator_rating_rows": n_rating_rows,
        "selected_midi": len(table),
        "labeled": len(labeled),
        "unlabeled": len(unlabeled),
        "excluded": {
            # Not dropped: kept in the table (and rendered), left out of training for want of labels.
            "unlabeled_score_renditions": int(unlabeled["is_score"].sum()),
            "unlabeled_other": int((~unlabeled["is_score"]).sum()),
            "outside_selected_pieces": excluded_pieces,
        },
        "unlabeled_keys": unlabeled["key"].tolist(),
        "renamed_midi_files": {"leading_or_trailing_space": len(renamed), "files": renamed},
        "labeled_without_annotator_rows": len(no_annotations),
        "annotator_rows_without_midi": len(orphan_ratings),
        "pieces": int(table["piece"].nunique()),
        "works": int(table["work"].nunique()),
        "pianists": int(labeled["pianist_id"].nunique()),
        "score_renditions": int(table["is_score"].sum()),
        "annotators_per_segment": {
            "min": int(labeled["n_annotators"].min()) if len(labeled) else 0,
            "median": float(labeled["n_annotators"].median()) if len(labeled) else 0.0,
            "max": int(labeled["n_annotators"].max()) if len(labeled) else 0,
        },
    }
    return table, report


def passage_ids(table: pd.DataFrame) -> np.ndarray:
    """(N,) passage of each row: the same music, i.e. same file-name piece, cut length and segment number.

    Ratings are passage-relative (42% of the label variance lies between passages), so baselines,
    within-passage metrics and the simulated teachers standardise by passage.
    """
    return (table["piece"].astype(str) + "_" + table["bars"].astype(int).astype(str) + "bars_"
            + table["segment"].astype(int).astype(str)).to_numpy()


def overlap_groups(table: pd.DataFrame) -> np.ndarray:
    """(N,) groups of rows that may hold the same playing: the ``segment`` split keeps each in one fold.

    PercePiano cuts the Schubert D960 movements twice, in 8- and 16-bar segments, from the same
    performances: 143 of the 145 16-bar files contain an 8-bar file of the same player note for note
    (the segment boundaries of the two cuts do not line up by bar arithmetic). Rule: on a piece cut
    at more than one length, all segments of one player form one group; every other row is a group
    of its own. ``tests/test_labels.py`` checks on the real data that no two files of one player that
    share MIDI content end up in different folds.
    """
    multi_cut = table.groupby("piece")["bars"].transform("nunique").to_numpy() > 1
    own = table["key"].astype(str).to_numpy()
    shared = ("cuts:" + table["piece"].astype(str) + ":" + table["player"].astype(str)).to_numpy()
    return np.where(multi_cut, shared, own)


def make_splits(table: pd.DataFrame, n_folds: int = 4, seed: int = 42) -> dict:
    """Three deterministic k-fold assignments over the labeled rows.

    * ``pianist``: grouped by pianist id (no pianist in two folds). Default for training.
    * ``segment``: random over groups of :func:`overlap_groups` (overlapping 8- and 16-bar cuts of one
      player stay together), stratified by piece: the published MuQ protocol minus its leak (there,
      208 of 273 overlapping 16-bar/8-bar pairs of the same player were split across folds).
    * ``piece``: grouped by file-name piece: generalisation to unseen music.

    Returns ``{"keys": [...], "n_folds": k, "seed": s, "folds": {split: [fold per key]},
    "groups": {"segment": [overlap group index per key]}}``.
    """
    from sklearn.model_selection import GroupKFold, StratifiedGroupKFold  # here: importing labels stays cheap

    lab = table[table["labeled"]].sort_values("key").reset_index(drop=True)
    n = len(lab)
    for col, split in (("pianist_id", "pianist"), ("piece", "piece")):
        if lab[col].nunique() < n_folds:
            raise LabelError(
                f"split '{split}' needs at least {n_folds} distinct {col} values, "
                f"the selection has {lab[col].nunique()}"
            )
    folds = {}
    idx = np.arange(n)
    # Unshuffled GroupKFold assigns the largest groups first to the smallest fold: the most balanced
    # fold sizes, and deterministic without a seed.
    gkf = GroupKFold(n_splits=n_folds)
    for split, col in (("pianist", "pianist_id"), ("piece", "piece")):
        f = np.full(n, -1)
        for k, (_, test) in enumerate(gkf.split(idx, groups=lab[col].to_numpy())):
            f[test] = k
        folds[split] = f.tolist()
    # Stratify by piece; pieces with fewer members than folds would make the splitter warn,
    # so rare pieces share one stratum.
    strata = lab["piece"].where(lab["piece"].map(lab["piece"].value_counts()) >= n_folds, "_rare")
    _, seg_groups = np.unique(overlap_groups(lab), return_inverse=True)
    if np.unique(seg_groups).size < n_folds:
        raise LabelError(f"split 'segment' needs at least {n_folds} overlap groups, the selection has "
                         f"{np.unique(seg_groups).size}")
    f = np.full(n, -1)
    sgkf = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for k, (_, test) in enumerate(sgkf.split(idx, strata, groups=seg_groups)):
        f[test] = k
    folds["segment"] = f.tolist()
    return {"keys": lab["key"].tolist(), "n_folds": n_folds, "seed": seed, "folds": folds,
            "groups": {"segment": seg_groups.tolist()}}


def split_summary(splits: dict, table: pd.DataFrame) -> dict:
    """Fold sizes and group counts per split, for the data report."""
    lab = table.set_index("key").loc[splits["keys"]]
    out = {}
    for split, folds in splits["folds"].items():
        f = np.asarray(folds)
        out[split] = {
            "fold_sizes": [int((f == k).sum()) for k in range(splits["n_folds"])],
            "pianists_per_fold": [int(lab["pianist_id"][f == k].nunique()) for k in range(splits["n_folds"])],
            "pieces_per_fold": [int(lab["piece"][f == k].nunique()) for k in range(splits["n_folds"])],
        }
    groups = np.asarray(splits["groups"]["segment"])
    sizes = np.bincount(groups)
    out["segment"].update(n_groups=int(sizes.size), n_multi_file_groups=int((sizes > 1).sum()),
                          n_rows_in_multi_file_groups=int(sizes[sizes > 1].sum()))
    return out


def load_labels(path: str | Path) -> pd.DataFrame:
    """Read labels.csv written by the labels stage (keys as strings, booleans restored)."""
    return pd.read_csv(path, dtype={"key": str, "midi_file": str, "player": str}, keep_default_na=False,
                       na_values={c: [""] for c in (*MEAN_COLUMNS, *STD_COLUMNS)})


def load_splits(path: str | Path) -> dict:
    with open(path) as fh:
        splits = json.load(fh)
    for split in SPLITS:
        if split not in splits.get("folds", {}):
            raise LabelError(f"{path}: split '{split}' missing")
        if len(splits["folds"][split]) != len(splits["keys"]):
            raise LabelError(f"{path}: split '{split}' has {len(splits['folds'][split])} folds for "
                             f"{len(splits['keys'])} keys")
    groups = splits.get("groups", {}).get("segment")
    if groups is None or len(groups) != len(splits["keys"]):
        raise LabelError(f"{path}: 'groups.segment' (overlap groups of the segment split) missing or of the "
                         "wrong length: rerun the labels stage")
    return splits
