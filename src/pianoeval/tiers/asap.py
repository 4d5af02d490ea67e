"""Reading ASAP (Aligned Scores and Performances) and the T2/T3 selection.

ASAP (github.com/fosfrancesco/asap-dataset, CC BY-NC-SA 4.0) holds Disklavier performance MIDI of
the International Piano-e-Competition with beat/downbeat annotations aligned to each score. The
repository vendors the subset the default run uses (``data/external/asap``, built by
``scripts/vendor_asap.py``); every function here reads a full checkout the same way.

Facts the rules rely on (checked by the tests on generated files):

* ``metadata.csv`` has one row per performance; paths are relative to the ASAP root.
* The MAESTRO file name of a performance, when present, carries the competition round and year:
  ``..._R2_2013_...`` = semifinal of 2013 (R1 preliminary, R2 semifinal, R3 final). 2017 names and
  rows without a MAESTRO file carry no round.
* A performer-year is the file-name performer (``Richardson_2013_03M`` -> ``Richardson``: trailing
  digits, underscores and the ``M`` flag stripped) in one year, merged with every performance cut
  from the same MAESTRO recording (``..._wav--1``, ``..._wav--2`` are pieces of one sitting, so one
  pianist even when ASAP spells the name differently).
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

METADATA = "metadata.csv"
REQUIRED_COLUMNS = ("composer", "title", "folder", "midi_performance", "performance_annotations",
                    "midi_score_annotations", "maestro_midi_performance")
ROUND_RE = re.compile(r"_R([123])_((?:19|20)\d\d)_")
PERFORMER_RE = re.compile(r"^(.*?)[\d_]+M?$")
RECORDING_RE = re.compile(r"--\d+\.midi?$")


def parse_maestro_name(name: str | float | None) -> tuple[int | None, int | None]:
    """(round, year) from a MAESTRO file name; (None, None) when the name carries no round.

    >>> parse_maestro_name("{maestro}/2008/MIDI-Unprocessed_02_R1_2008_01-05_ORIG_MID--AUDIO_02_R1_2008_wav--1.midi")
    (1, 2008)
    """
    if not isinstance(name, str) or not name:
        return None, None
    m = ROUND_RE.search(name)
    if m is None:
        return None, None
    return int(m.group(1)), int(m.group(2))


def performer_from_stem(stem: str) -> str:
    """File-name performer: ``Avdeeva02`` -> ``Avdeeva``, ``Na_2009_02`` -> ``Na``, ``LuM02M`` -> ``LuM``."""
    m = PERFORMER_RE.match(stem)
    if m is None or not m.group(1):
        raise ValueError(f"ASAP performance '{stem}': no performer name before the take number")
    return m.group(1)


def recording_of(maestro_name: str) -> str:
    """The MAESTRO recording a performance was cut from (the name without its ``--N`` piece suffix)."""
    return RECORDING_RE.sub("", maestro_name)


def _union_find_groups(keys_a: list[str], keys_b: list[str | None]) -> list[int]:
    """Component index per row, rows joined when they share key a or (non-null) key b."""
    parent = list(range(len(keys_a)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict = {}
    for i, keys in enumerate(zip(keys_a, keys_b)):
        for k in keys:
            if k is None:
                continue
            if k in first:
                parent[find(i)] = find(first[k])
            else:
                first[k] = i
    return [find(i) for i in range(len(keys_a))]


def load_asap_metadata(root: str | Path) -> pd.DataFrame:
    """One row per ASAP performance with the columns the tiers use.

    Returns
    -------
    DataFrame: id (the performance MIDI path without ``.mid``, unique), composer, title, folder, midi,
    annotations, score_annotations (paths relative to ``root``), maestro, round (Int64, <NA> without),
    year (Int64), performer, performer_year (<NA> without a round), recording, available (both the
    MIDI and its annotations exist under ``root``).
    """
    root = Path(root)
    path = root / METADATA
    if not path.is_file():
        raise FileNotFoundError(f"{path}: ASAP metadata not found (params: asap root; see data/external/asap/README.md)")
    t = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in REQUIRED_COLUMNS if c not in t.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    for col in ("title", "folder", "midi_performance", "performance_annotations", "midi_score_annotations"):
        empty = np.flatnonzero(t[col].str.strip().to_numpy() == "")
        if empty.size:
            raise ValueError(f"{path}: line {empty[0] + 2}: empty {col} ({empty.size} such rows)")
    bad = ~t["midi_performance"].str.endswith(".mid")
    if bad.any():
        i = int(np.argmax(bad.to_numpy()))
        raise ValueError(f"{path}: line {i + 2}: midi_performance '{t['midi_performance'][i]}' is not a .mid path")
    ids = t["midi_performance"].str[:-4]
    dup = ids.duplicated()
    if dup.any():
        i = int(np.argmax(dup.to_numpy()))
        raise ValueError(f"{path}: line {i + 2}: performance '{ids[i]}' listed twice")
    rounds, years = zip(*(parse_maestro_name(n) for n in t["maestro_midi_performance"]))
    stems = ids.str.rsplit("/", n=1).str[-1]
    out = pd.DataFrame({
        "id": ids, "composer": t["composer"], "title": t["title"], "folder": t["folder"],
        "midi": t["midi_performance"], "annotations": t["performance_annotations"],
        "score_annotations": t["midi_score_annotations"], "maestro": t["maestro_midi_performance"],
        "round": pd.array(rounds, dtype="Int64"), "year": pd.array(years, dtype="Int64"),
        "performer": [performer_from_stem(s) for s in stems],
    })
    has_round = out["round"].notna().to_numpy()
    name_year = [f"{p}_{y}" if r else None for p, y, r in zip(out["performer"], out["year"], has_round)]
    recording = [recording_of(m) if r else None for m, r in zip(out["maestro"], has_round)]
    comp = _union_find_groups([k or f"#row{i}" for i, k in enumerate(name_year)], recording)
    # A component is named by its alphabetically first name-year, so ids are readable and stable.
    names: dict[int, str] = {}
    for c, k in zip(comp, name_year):
        if k is not None:
            names[c] = min(names.get(c, k), k)
    out["performer_year"] = pd.array([names[c] if r else pd.NA for c, r in zip(comp, has_round)], dtype="string")
    out["recording"] = pd.array(recording, dtype="string")
    out["available"] = [(root / a).is_file() and (root / b).is_file() for a, b in zip(out["midi"], out["annotations"])]
    return out


def furthest_round(table: pd.DataFrame) -> pd.Series:
    """performer_year -> the latest round any of its performances was played in (a lower bound of how
    far the pianist went: later-round pieces need not be in ASAP)."""
    t = table.dropna(subset=["performer_year"])
    return t.groupby("performer_year")["round"].max().astype(int)


# --------------------------------------------------------------------------- annotations
def read_beats(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """ASAP annotation file -> (beat times (n,) seconds, is_downbeat (n,) bool).

    Lines: ``time<TAB>time<TAB>label`` with label ``b`` (beat), ``bR`` (a beat ASAP marks as
    inferred, e.g. under a fermata: still a beat) or ``db`` (downbeat), optionally followed by
    ``,<time signature>,<key>``. A malformed line, an unknown label or times going backwards raise
    ValueError naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: annotation file not found")
    times, down = [], []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 3:
            raise ValueError(f"{path}: line {n}: expected 'time<TAB>time<TAB>label', got {line!r}")
        try:
            t = float(parts[0])
        except ValueError:
            raise ValueError(f"{path}: line {n}: time {parts[0]!r} is not a number") from None
        label = parts[2].split(",")[0].strip()
        if label not in ("b", "db", "bR"):
            raise ValueError(f"{path}: line {n}: label {label!r} is not 'b', 'bR' or 'db'")
        if times and t < times[-1]:
            raise ValueError(f"{path}: line {n}: time {t} goes back before {times[-1]}")
        times.append(t)
        down.append(label == "db")
    if not times:
        raise ValueError(f"{path}: no beats")
    return np.asarray(times), np.asarray(down)


def aligned_with_score(perf: tuple[np.ndarray, np.ndarray], score: tuple[np.ndarray, np.ndarray]) -> bool:
    """True when a performance's beat/downbeat labels equal its score's, beat for beat: then bar k of
    every aligned performance of a score folder is the same music."""
    return len(perf[1]) == len(score[1]) and bool((perf[1] == score[1]).all())


# --------------------------------------------------------------------------- selection
def select_t2_t3(metadata: pd.DataFrame, params: dict) -> pd.DataFrame:
    """The default T2/T3 subset: a pure function of the metadata table and ``params`` (no file access).

    Parameters
    ----------
    metadata : :func:`load_asap_metadata` output. Every row is a candidate, whether or not its files are
        present: the vendored subset and a full checkout then give the same selection (the caller
        checks that the selected files exist).
    params : ``{"t2": {"performances_per_performer_year": k, "rounds": [...], optional
        "max_performer_years": cap (null = all), "seed": s},
        "t3": {"n_folders": F, "performers_per_folder": P, "min_performers": m, "seed": s}}``.

    Rules
    -----
    T2: every performance with a round in ``t2.rounds``, grouped by performer-year; per performer-year
    the ``k`` performances whose score folder has the most performer-years in the round-labelled set
    (ties: later round, then id). The folder rule puts performers of the same music side by side, which
    the ordinal pairs and the within-piece statistics need. ``max_performer_years`` (quick runs) keeps a
    seeded sample of that many performer-years.
    T3: score folders with at least ``m`` performances by distinct performers; the first ``F`` of a
    seeded order of them, then in each the first ``P`` of a seeded order of its performers (one
    performance each). Smaller ``F``, ``P`` or ``max_performer_years`` select subsets of the default.

    Returns
    -------
    DataFrame id, tier ('t2' or 't3'; a performance in both tiers has two rows), sorted.
    """
    t = metadata
    p2, p3 = params["t2"], params["t3"]
    rounds = set(int(r) for r in p2["rounds"])
    lab = t[t["round"].notna()]
    lab = lab[lab["round"].astype(int).isin(rounds)]
    per_folder = lab.groupby("folder")["performer_year"].nunique()
    lab = lab.assign(_folder_n=lab["folder"].map(per_folder), _round=lab["round"].astype(int))
    lab = lab.sort_values(["performer_year", "_folder_n", "_round", "id"], ascending=[True, False, False, True])
    picked = lab.groupby("performer_year", sort=True).head(int(p2["performances_per_performer_year"]))
    cap = p2.get("max_performer_years")
    if cap is not None and picked["performer_year"].nunique() > int(cap):  # quick runs and tests
        pys = sorted(picked["performer_year"].unique())
        order = np.random.default_rng(int(p2.get("seed", 0))).permutation(len(pys))
        keep = {pys[i] for i in order[:int(cap)]}
        picked = picked[picked["performer_year"].isin(keep)]
    t2 = picked["id"]

    # Nested draws: a seeded order of the candidate folders, and per folder a seeded order of its
    # performers seeded by (seed, folder); taking fewer folders or performers (quick runs) keeps a
    # subset of the default selection, so the vendored copy serves every smaller setting.
    first_take = t.sort_values("id").drop_duplicates(["folder", "performer"])
    counts = first_take.groupby("folder").size()
    folders = sorted(counts[counts >= int(p3["min_performers"])].index)
    order = np.random.default_rng(int(p3["seed"])).permutation(len(folders))
    chosen = sorted(folders[i] for i in order[:int(p3["n_folders"])])
    t3 = []
    for f in chosen:
        ids = sorted(first_take.loc[first_take["folder"] == f, "id"])
        rng = np.random.default_rng([int(p3["seed"]), zlib.crc32(f.encode())])
        t3 += sorted(ids[i] for i in rng.permutation(len(ids))[:int(p3["performers_per_folder"])])
    out = pd.concat([pd.DataFrame({"id": sorted(t2), "tier": "t2"}), pd.DataFrame({"id": t3, "tier": "t3"})])
    return out.sort_values(["tier", "id"]).reset_index(drop=True)


def overlap_reference_ids(metadata: pd.DataFrame, ids) -> list[str]:
    """The selected performances plus every other performance of their performer-years: the set a
    leakage check must match against (a pianist whose OTHER piece is in PercePiano is in the quality
    model's training data too)."""
    ids = set(ids)
    pys = set(metadata.loc[metadata["id"].isin(ids), "performer_year"].dropna())
    return sorted(ids | set(metadata.loc[metadata["performer_year"].isin(pys), "id"]))


def check_available(metadata: pd.DataFrame, ids, root: str | Path) -> None:
    """Raise naming the missing performances when selected files are absent (a vendored copy with other params)."""
    avail = dict(zip(metadata["id"], metadata["available"]))
    missing = sorted(i for i in set(ids) if not avail[i])
    if missing:
        raise FileNotFoundError(
            f"{root}: {len(missing)} selected performance(s) have no MIDI/annotation file here, e.g. {missing[:3]}: "
            "the vendored copy holds only the default selection; point tiers_select.asap_root at a full ASAP "
            "checkout or add them with scripts/vendor_asap.py")
