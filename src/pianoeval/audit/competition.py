"""Section 9: does predicted quality track competition placement?

Spearman rank correlation between each predicted dimension (and their mean) and the placement
of each performance. Placement 1 is the winner, so a model that agrees with the jury has a
**negative** rho; ``rho_agreement`` = -rho is reported alongside so that "higher = agrees".

With a T2 table (a ``performer_year`` column: the ``t2_scores`` stage output) the section runs
:func:`t2_validation`: the overall score is the mean of the 19 predicted dimensions (fixed a
priori, no fitting), rho at segment and at performer-year level, a 95% CI resampling
performer-years, a permutation p shuffling placements across performer-years, per-dimension rhos
with Holm correction, and the baselines that could explain a rho away (window duration, the piece's
mean prediction, within-piece centring).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from pianoeval.audit import _as_2d, _fl, _names
from pianoeval.dimensions import DIMENSIONS
from pianoeval.stats import group_bootstrap_ci, group_permutation_p, holm_adjust

SKIPPED = "skipped: no competition data"


def _spearman(x: np.ndarray, y: np.ndarray) -> tuple[float | None, float | None]:
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return None, None  # rank correlation undefined for a constant variable
    r, p = spearmanr(x, y)
    return _fl(r), _fl(p)


def competition_validation(
    predictions: np.ndarray,
    placements: np.ndarray,
    names: Sequence[str] | None = None,
    *,
    groups: np.ndarray | None = None,
) -> dict:
    """Spearman rho (and p) between predicted quality and placement.

    Parameters
    ----------
    predictions : (N, q) predicted quality per performance.
    placements : (N,) placement (1 = best); ties allowed.
    names : q names (default ``DIMENSIONS`` for q == 19).
    groups : optional (N,) competition/round of each performance: placements are only
        comparable inside a group, so rho is then also computed within each group, and the
        pooled rho correlates within-group percentile ranks ((rank - 1) / (n_group - 1)) of
        both the predictions and the placements.

    Returns
    -------
    dict with ``per_dim`` ({name: {rho, p, rho_agreement}}), ``mean_quality`` (the same for the
    row mean of the predictions), ``per_group`` (if groups: {group: mean-quality rho, p, n}),
    ``n`` and ``headline``.
    """
    P = _as_2d("predictions", predictions)
    n, q = P.shape
    names = _names(names, q, "predictions")
    place = np.asarray(placements, dtype=float)
    if place.shape != (n,):
        raise ValueError(f"placements: expected shape ({n},), got {place.shape}")
    if not np.isfinite(place).all():
        raise ValueError(f"placements: {int((~np.isfinite(place)).sum())} non-finite values")
    if n < 3:
        raise ValueError(f"predictions: need at least 3 performances, got {n}")
    per_group = None
    pred = np.column_stack([P, P.mean(1)])  # the 19 dimensions and the mean quality
    target = place
    if groups is not None:
        groups = np.asarray(groups).astype(str)
        if groups.shape != (n,):
            raise ValueError(f"groups: expected shape ({n},), got {groups.shape}")
        target, ranked = np.empty(n), np.empty_like(pred)
        per_group = {}
        for g in np.unique(groups):
            sel = groups == g
            scale = max(int(sel.sum()) - 1, 1)
            target[sel] = (pd.Series(place[sel]).rank().to_numpy() - 1) / scale
            ranked[sel] = (pd.DataFrame(pred[sel]).rank().to_numpy() - 1) / scale
            rho, p = _spearman(pred[sel, -1], place[sel]) if sel.sum() >= 3 else (None, None)
            per_group[g] = {"n": int(sel.sum()), "rho": rho, "p": p}
        pred = ranked
    per_dim = {}
    for j, name in enumerate(names):
        rho, p = _spearman(pred[:, j], target)
        per_dim[name] = {"rho": rho, "p": p, "rho_agreement": None if rho is None else -rho}
    rho, p = _spearman(pred[:, -1], target)
    mean_q = {"rho": rho, "p": p, "rho_agreement": None if rho is None else -rho}
    rhos = np.array([np.nan if v["rho"] is None else v["rho"] for v in per_dim.values()])
    return {
        "status": "ok",
        "n": n,
        "names": names,
        "per_dim": per_dim,
        "mean_quality": mean_q,
        "per_group": per_group,
        "headline": {
            "n": n,
            "mean_quality_rho": rho,
            "mean_quality_p": p,
            "n_dims_p_lt_0.05_agreeing": int(sum(v["rho"] is not None and v["rho"] < 0 and v["p"] < 0.05
                                                 for v in per_dim.values())),
            "best_dim_rho": _fl(np.nanmin(rhos)) if np.isfinite(rhos).any() else None,
        },
    }


def load_competition(path: str | Path, names: Sequence[str] = DIMENSIONS) -> dict:
    """Read a competition table: columns ``placement``, the predicted dimensions and optionally ``group``.

    Returns
    -------
    {"predictions": (N, q), "placements": (N,), "groups": (N,) or None, "ids": list or None}
    (``ids`` from an ``id`` column when present).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: competition table not found (params audit.competition)")
    t = pd.read_csv(path)
    missing = [c for c in ["placement", *names] if c not in t.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    bad = t[["placement", *names]].isna().any(axis=1).to_numpy()
    if bad.any():
        raise ValueError(f"{path}: line {int(np.argmax(bad)) + 2}: empty placement or prediction "
                         f"({int(bad.sum())} such rows)")
    return {"predictions": t[list(names)].to_numpy(float), "placements": t["placement"].to_numpy(float),
            "groups": t["group"].to_numpy(str) if "group" in t.columns else None,
            "ids": t["id"].astype(str).tolist() if "id" in t.columns else None}


def t2_validation(table: pd.DataFrame, names: Sequence[str] = DIMENSIONS, *, n_boot: int = 2000,
                  n_perm: int = 2000, seed: int = 0, exclude_overlap: bool = True) -> dict:
    """Competition validation of a T2 scores table.

    Parameters
    ----------
    table : one row per segment: placement, performer_year, the predicted dimensions; optional
        folder (piece), seconds (window duration), percepiano_overlap (bool).
    n_boot, n_perm : performer-year bootstrap resamples and placement permutations.
    exclude_overlap : drop rows flagged ``percepiano_overlap`` (their pianists are in the quality
        model's training data).

    Returns
    -------
    dict: ``segment`` and ``performer_year`` levels, each {n, n_groups, overall {rho, ci, p}, per_dim
    {name: rho, p, p_holm}, baselines (duration; piece_mean = the mean prediction of the piece played)},
    ``within_piece`` (pieces played by >= 2 performer-years: the overall score minus its piece's mean),
    ``excluded``, ``headline``.
    """
    names = list(names)
    missing = [c for c in ["placement", "performer_year", *names] if c not in table.columns]
    if missing:
        raise ValueError(f"competition table: missing columns {missing}")
    t = table.copy()
    n_in = len(t)
    overlap = t["percepiano_overlap"].astype(str).str.lower().isin(("true", "1")) if "percepiano_overlap" in t else None
    n_overlap = int(overlap.sum()) if overlap is not None else 0
    if exclude_overlap and overlap is not None:
        t = t[~overlap.to_numpy()]
    t = t.reset_index(drop=True)
    if t["performer_year"].nunique() < 3:
        raise ValueError(f"competition table: {t['performer_year'].nunique()} performer-years left, need >= 3")
    bad = t.groupby("performer_year")["placement"].nunique() > 1
    if bad.any():
        raise ValueError(f"competition table: performer-year '{bad[bad].index[0]}' has several placements")
    t["overall"] = t[names].mean(axis=1)
    groups, gi = np.unique(t["performer_year"].to_numpy(str), return_inverse=True)
    g_place = t.groupby("performer_year")["placement"].first().loc[groups].to_numpy(float)
    baseline_cols = {}
    if "folder" in t.columns:
        piece_mean = t.groupby("folder")["overall"].transform("mean")
        baseline_cols["piece_mean"] = piece_mean.to_numpy()  # which piece was played, nothing else
    if "seconds" in t.columns:
        baseline_cols["duration"] = t["seconds"].to_numpy(float)

    def level(values: np.ndarray, group_index: np.ndarray, y: np.ndarray, k: int) -> dict:
        cols = ["overall", *names, *baseline_cols]
        rho, p = group_permutation_p(values, g_place, group_index, n_perm=n_perm, seed=seed + k)
        lo, hi = group_bootstrap_ci(values, y, group_index, n_boot=n_boot, seed=seed + k)
        res = {c: {"rho": _fl(rho[j]), "ci_low": _fl(lo[j]), "ci_high": _fl(hi[j]), "p_perm": _fl(p[j])}
               for j, c in enumerate(cols)}
        p_holm = np.array([np.nan if v is None else v for v in holm_adjust(p[1:1 + len(names)])])
        for j, name in enumerate(names):
            res[name]["p_holm"] = _fl(p_holm[j])
        return {"overall": res["overall"], "per_dim": {n_: res[n_] for n_ in names},
                "baselines": {b: res[b] for b in baseline_cols}}

    seg_values = np.column_stack([t["overall"], t[names], *baseline_cols.values()])
    seg = level(seg_values, gi, t["placement"].to_numpy(float), 0)
    seg.update(n=int(len(t)), n_groups=int(len(groups)))
    py_values = pd.DataFrame(seg_values).groupby(gi).mean().to_numpy()
    py = level(py_values, np.arange(len(groups)), g_place, 1)
    py.update(n=int(len(groups)), n_groups=int(len(groups)))
    within = None
    if "folder" in t.columns:
        # Within piece: only pieces played by >= 2 performer-years; the overall score minus the piece's mean
        n_py = t.groupby("folder")["performer_year"].transform("nunique")
        sub = t[n_py.to_numpy() >= 2].reset_index(drop=True)
        if sub["performer_year"].nunique() >= 3:
            centred = (sub["overall"] - sub.groupby("folder")["overall"].transform("mean")).to_numpy()
            sg, sgi = np.unique(sub["performer_year"].to_numpy(str), return_inverse=True)
            s_place = sub.groupby("performer_year")["placement"].first().loc[sg].to_numpy(float)
            rho_w, p_w = group_permutation_p(centred, s_place, sgi, n_perm=n_perm, seed=seed + 2)
            lo_w, hi_w = group_bootstrap_ci(centred, sub["placement"].to_numpy(float), sgi, n_boot=n_boot, seed=seed + 2)
            within = {"n": int(len(sub)), "n_performer_years": int(len(sg)), "n_pieces": int(sub["folder"].nunique()),
                      "rho": _fl(rho_w[0]), "ci_low": _fl(lo_w[0]), "ci_high": _fl(hi_w[0]), "p_perm": _fl(p_w[0])}
    n_holm = {lvl: int(sum(v["p_holm"] is not None and v["p_holm"] < 0.05 for v in r["per_dim"].values()))
              for lvl, r in (("segment", seg), ("performer_year", py))}
    return {
        "status": "ok", "kind": "t2", "overall_definition": "mean of the 19 predicted dimensions (fixed a priori)",
        "n_rows_in": n_in, "excluded": {"percepiano_overlap": n_overlap if exclude_overlap else 0},
        "n_overlap_rows": n_overlap, "placement_counts_performer_years": {
            str(int(k)): int(v) for k, v in pd.Series(g_place).value_counts().sort_index().items()},
        "segment": seg, "performer_year": py, "within_piece": within, "n_boot": n_boot, "n_perm": n_perm,
        "headline": {
            "n_segments": seg["n"], "n_performer_years": py["n"],
            "excluded_percepiano_overlap": n_overlap if exclude_overlap else 0,
            "segment.rho": seg["overall"]["rho"], "segment.ci_low": seg["overall"]["ci_low"],
            "segment.ci_high": seg["overall"]["ci_high"], "segment.p_perm": seg["overall"]["p_perm"],
            "performer_year.rho": py["overall"]["rho"], "performer_year.ci_low": py["overall"]["ci_low"],
            "performer_year.ci_high": py["overall"]["ci_high"], "performer_year.p_perm": py["overall"]["p_perm"],
            "performer_year.n_dims_holm_lt_0.05": n_holm["performer_year"],
            "segment.n_dims_holm_lt_0.05": n_holm["segment"],
            **{f"baseline.{b}.performer_year.rho": py["baselines"][b]["rho"] for b in baseline_cols},
            **({f"within_piece.{k}": within[k] for k in ("n", "n_pieces", "rho", "ci_low", "ci_high", "p_perm")}
               if within else {}),
        },
    }


def competition_section(config: dict | str | None) -> dict:
    """Run section 9 if a competition table is configured, else report it as skipped.

    ``config``: None, a path, or {"table": path, optional n_boot, n_perm, seed, exclude_percepiano_overlap}.
    A table with a ``performer_year`` column (the T2 tier) gets :func:`t2_validation`.
    """
    if config is None:
        return {"status": SKIPPED, "headline": {}}
    path = config if isinstance(config, (str, Path)) else config.get("table")
    if not path:
        raise ValueError(f"params audit.competition: expected null, a path or {{table: path}}, got {config!r}")
    opts = config if isinstance(config, dict) else {}
    if Path(path).is_file() and "performer_year" in pd.read_csv(path, nrows=0).columns:
        out = t2_validation(pd.read_csv(path, dtype={"performer_year": str}), n_boot=int(opts.get("n_boot", 2000)),
                            n_perm=int(opts.get("n_perm", 2000)), seed=int(opts.get("seed", 0)),
                            exclude_overlap=bool(opts.get("exclude_percepiano_overlap", True)))
        out["table"] = str(path)
        return out
    data = load_competition(path)
    out = competition_validation(data["predictions"], data["placements"], groups=data["groups"])
    out["table"] = str(path)
    return out
