"""The T2 and T3 manifests: one row per performance, from ASAP (default) or a user's competition manifest.

Placement codes are the research's scale (prizes 1-6 as 1-6, finalist 7, stage 3 -> 20, stage 2 ->
40, stage 1 -> 80, preliminary -> 160), set in params ``tiers_select.t2.placement_codes``. ASAP
gives the round a performance was played in, never prizes: ``t2.asap_rounds`` maps R1/R2/R3 onto
stages of that scale (default R1 -> stage1, R2 -> stage2, R3 -> final), and a performer-year's
placement is the code of the furthest round any of its ASAP performances was played in.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import Field

from ..acquire import ManifestRow, read_manifest

from .asap import furthest_round

T2_COLUMNS = ["id", "source", "competition", "year", "round", "performer_year", "title", "folder", "furthest_round",
              "placement", "licence", "midi", "annotations", "score_annotations", "url", "percepiano_overlap",
              "percepiano_pianist_ids"]
T3_COLUMNS = ["id", "source", "performer", "title", "folder", "midi", "annotations", "score_annotations",
              "percepiano_overlap", "percepiano_pianist_ids"]


def placement_code(stage: str, prize, codes: dict) -> int:
    """Code of a pianist who reached ``stage`` (a key of ``codes``) with an optional prize 1-6."""
    if prize is not None and not (isinstance(prize, float) and np.isnan(prize)) and str(prize).strip() != "":
        p = int(float(prize))
        if not 1 <= p <= 6:
            raise ValueError(f"prize {prize!r} outside 1-6")
        return p
    if stage not in codes:
        raise ValueError(f"round {stage!r} not in params tiers_select.t2.placement_codes ({', '.join(codes)})")
    return int(codes[stage])


def _overlap_columns(ids: pd.Series, groups: pd.Series, overlap: dict[str, set[int]],
                     metadata: pd.DataFrame) -> tuple[list[bool], list[str]]:
    """Flag a performance when it, or any ASAP performance of its performer-year, is in PercePiano
    (``overlap``: matched performance id -> PercePiano pianist ids)."""
    group_of = dict(zip(metadata["id"], metadata["performer_year"]))
    by_group: dict[str, set[int]] = {}
    for i, pids in overlap.items():
        g = group_of.get(i)
        if isinstance(g, str):
            by_group.setdefault(g, set()).update(pids)
    pids = [overlap.get(i, set()) | (by_group.get(g, set()) if isinstance(g, str) else set())
            for i, g in zip(ids, groups)]
    return [bool(p) for p in pids], [";".join(str(x) for x in sorted(p)) for p in pids]


def t2_from_asap(metadata: pd.DataFrame, ids: list[str], params: dict, overlap: dict[str, set[int]]) -> pd.DataFrame:
    """T2 manifest rows for the selected ASAP performances (see the module docstring for placement)."""
    t = metadata.set_index("id").loc[ids].reset_index()
    stages = {int(k): v for k, v in params["asap_rounds"].items()}
    fr = furthest_round(metadata)
    t["furthest_round"] = t["performer_year"].map(fr).astype(int)
    t["placement"] = [placement_code(stages[r], None, params["placement_codes"]) for r in t["furthest_round"]]
    t["source"] = "asap"
    t["competition"] = params["competition"]
    t["licence"] = params["licence"]
    t["url"] = ""
    t["percepiano_overlap"], t["percepiano_pianist_ids"] = _overlap_columns(t["id"], t["performer_year"], overlap, metadata)
    t["round"] = t["round"].astype(int)
    t["year"] = t["year"].astype(int)
    return t[T2_COLUMNS].sort_values("id").reset_index(drop=True)


def t3_from_asap(metadata: pd.DataFrame, ids: list[str], overlap: dict[str, set[int]]) -> pd.DataFrame:
    t = metadata.set_index("id").loc[ids].reset_index()
    t["source"] = "asap"
    t["percepiano_overlap"], t["percepiano_pianist_ids"] = _overlap_columns(t["id"], t["performer_year"], overlap, metadata)
    return t[T3_COLUMNS].sort_values("id").reset_index(drop=True)


class CompetitionRow(ManifestRow):
    """A competition manifest row (the acquisition module's row plus T2's label fields).

    ``round`` is the furthest stage the pianist reached (a key of ``placement_codes``: preliminary,
    stage1, stage2, stage3, final); ``prize`` 1-6 for prize winners; ``withdrawn`` (inherited) drops
    the row from every stage.
    """

    performer: str = Field(min_length=1)
    year: int
    round: str = Field(min_length=1)
    prize: int | None = Field(None, ge=1, le=6)
    title: str = ""
    competition: str = ""
    licence: str = ""


def read_user_manifest(path: str | Path, params: dict) -> pd.DataFrame:
    """A user's competition manifest (CSV or JSONL, :class:`CompetitionRow`) -> T2 manifest rows.

    Parsed by :func:`pianoeval.acquire.read_manifest` (every bad row listed as ``file:line: reason``);
    a round outside ``placement_codes`` raises naming the file and line. A performer-year is
    performer + year. The ``withdrawn`` column is returned for the caller to drop and count.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: competition manifest not found (params tiers_select.t2.manifest)")
    rows = read_manifest(path, CompetitionRow)
    codes = params["placement_codes"]
    bad = [(k + 2, r.round) for k, r in enumerate(rows) if r.round not in codes]
    if bad:
        raise ValueError(f"{path}: line {bad[0][0]}: round {bad[0][1]!r} not in params tiers_select.t2.placement_codes "
                         f"({', '.join(codes)}) ({len(bad)} such rows)")
    out = [{"id": r.id, "source": "manifest", "competition": r.competition or params["competition"], "year": r.year,
            "round": r.round, "performer_year": f"{r.performer}_{r.year}", "title": r.title, "folder": r.title,
            "furthest_round": r.round, "placement": placement_code(r.round, r.prize, codes), "licence": r.licence,
            "midi": "", "annotations": "", "score_annotations": "", "url": r.url, "percepiano_overlap": False,
            "percepiano_pianist_ids": "", "withdrawn": r.withdrawn} for r in rows]
    return pd.DataFrame(out)
