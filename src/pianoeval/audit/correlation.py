"""Section 1: correlation and redundancy between the label dimensions."""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
from scipy.cluster.hierarchy import leaves_list, linkage
from scipy.spatial.distance import squareform
from scipy.stats import rankdata

from pianoeval.audit import _as_2d, _check_variance, _fl, _names

VIF_CAP = 1e6


def vif(Y: np.ndarray, *, cap: float = VIF_CAP) -> tuple[np.ndarray, np.ndarray]:
    """Variance inflation factor of each column of ``Y`` (N, q) against the others.

    Uses statsmodels' ``variance_inflation_factor`` on ``[1, Y]`` (a constant column, so each
    auxiliary regression has an intercept). A perfectly collinear column gives an infinite or
    numerically huge VIF; such values are **capped at** ``cap`` (default 1e6) so they stay
    numeric, and the second array flags which ones were capped.

    Returns
    -------
    vifs : (q,) float, each in [1, cap]
    capped : (q,) bool
    """
    from statsmodels.stats.outliers_influence import variance_inflation_factor

    exog = np.column_stack([np.ones(len(Y)), Y])
    # Collinear labels make statsmodels warn (singular design); that case is what the cap
    # and the "capped" flags report.
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")
        raw = np.array([variance_inflation_factor(exog, j + 1) for j in range(Y.shape[1])])
    capped = ~np.isfinite(raw) | (raw > cap)
    return np.where(capped, cap, raw), capped


def correlation_redundancy(
    Y: np.ndarray,
    names: Sequence[str] | None = None,
    *,
    top_k: int = 10,
    high: float = 0.7,
    moderate: float = 0.5,
    vif_cap: float = VIF_CAP,
) -> dict:
    """Pearson/Spearman correlations, clustering order, top pairs and VIF of the labels.

    Parameters
    ----------
    Y : (N, q) mean ratings, one column per dimension.
    names : q dimension names (default ``DIMENSIONS`` when q == 19).
    top_k : number of pairs with the largest |Pearson r| to list.
    high, moderate : pair counts are for |r| > high and moderate < |r| <= high.
    vif_cap : VIFs that are infinite or above this value are reported as ``vif_cap``
        and listed under ``"vif_capped"``.

    Returns
    -------
    dict with ``names``, ``pearson`` / ``spearman`` (q x q nested lists), ``cluster_order``
    (indices) and ``cluster_names`` (average linkage on 1 - Pearson r), ``linkage`` (scipy
    linkage matrix as lists, for a dendrogram), ``top_pairs`` (list of {a, b, pearson,
    spearman}), ``n_pairs_high`` / ``n_pairs_moderate``, ``vif`` ({name: value}),
    ``vif_capped`` (names), ``vif_cap`` and ``headline``.
    """
    Y = _as_2d("Y", Y)
    q = Y.shape[1]
    names = _names(names, q)
    if Y.shape[0] < 3 or q < 2:
        raise ValueError(f"Y: need at least 3 rows and 2 columns, got shape {Y.shape}")
    _check_variance("Y", Y, names)

    pearson = np.corrcoef(Y, rowvar=False)
    spearman = np.corrcoef(rankdata(Y, axis=0), rowvar=False)

    dist = np.clip(1.0 - pearson, 0.0, 2.0)
    np.fill_diagonal(dist, 0.0)
    link = linkage(squareform(dist, checks=False), method="average")
    order = leaves_list(link)

    iu, ju = np.triu_indices(q, k=1)
    r_pairs = pearson[iu, ju]
    abs_r = np.abs(r_pairs)
    top = np.argsort(-abs_r, kind="stable")[:top_k]
    top_pairs = [
        {"a": names[iu[t]], "b": names[ju[t]], "pearson": float(r_pairs[t]),
         "spearman": float(spearman[iu[t], ju[t]])}
        for t in top
    ]
    n_high = int((abs_r > high).sum())
    n_mod = int(((abs_r > moderate) & (abs_r <= high)).sum())

    vifs, capped = vif(Y, cap=vif_cap)
    return {
        "names": names,
        "pearson": pearson.tolist(),
        "spearman": spearman.tolist(),
        "cluster_order": order.tolist(),
        "cluster_names": [names[i] for i in order],
        "linkage": link.tolist(),
        "top_pairs": top_pairs,
        "n_pairs_high": n_high,
        "n_pairs_moderate": n_mod,
        "thresholds": {"high": high, "moderate": moderate},
        "vif": {n: float(v) for n, v in zip(names, vifs)},
        "vif_capped": [n for n, c in zip(names, capped) if c],
        "vif_cap": float(vif_cap),
        "headline": {
            f"n_pairs_r_gt_{high}": n_high,
            f"n_pairs_r_{moderate}_{high}": n_mod,
            "n_pairs": int(abs_r.size),
            "mean_abs_r": _fl(abs_r.mean()),
            "max_abs_r": _fl(abs_r.max()),
            "max_vif": _fl(vifs.max()),
            "n_vif_gt_10": int((vifs > 10).sum()),
            "n_vif_capped": int(capped.sum()),
        },
    }
