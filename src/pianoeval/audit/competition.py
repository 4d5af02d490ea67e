"""Section 9: does predicted quality track competition placement?

Spearman rank correlation between each predicted dimension (and their mean) and the placement
of each performance. Placement 1 is the winner, so a model that agrees with the jury has a
**negative** rho; ``rho_agreement`` = -rho is reported alongside so that "higher = agrees".
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from pianoeval.audit import _as_2d, _fl, _names
from pianoeval.dimensions import DIMENSIONS

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


def competition_section(config: dict | str | None) -> dict:
    """Run section 9 if a competition table is configured, else report it as skipped.

    ``config``: None, a path, or {"table": path}.
    """
    if config is None:
        return {"status": SKIPPED, "headline": {}}
    path = config if isinstance(config, (str, Path)) else config.get("table")
    if not path:
        raise ValueError(f"params audit.competition: expected null, a path or {{table: path}}, got {config!r}")
    data = load_competition(path)
    out = competition_validation(data["predictions"], data["placements"], groups=data["groups"])
    out["table"] = str(path)
    return out
