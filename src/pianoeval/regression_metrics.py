"""Per-dimension regression metrics: R² and pairwise ranking accuracy.

Ratings in PercePiano are piece-relative, so ranking accuracy can be restricted to pairs within
the same group (piece); R² is always computed over all samples.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def _as_2d(name: str, a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"{name}: expected shape (N, K) or (N,), got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: contains {int((~np.isfinite(a)).sum())} non-finite values")
    return a


def _check_pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    t, p = _as_2d("y_true", y_true), _as_2d("y_pred", y_pred)
    if t.shape != p.shape:
        raise ValueError(f"y_true shape {t.shape} != y_pred shape {p.shape}")
    if t.shape[0] < 2:
        raise ValueError(f"need at least 2 samples, got {t.shape[0]}")
    return t, p


def r2_per_dim(y_true, y_pred) -> np.ndarray:
    """Coefficient of determination per column.

    Parameters
    ----------
    y_true, y_pred : array (N, K) (or (N,), treated as K=1)

    Returns
    -------
    r2 : array (K,)
        ``1 - SS_res / SS_tot``; NaN for a column whose truth is constant (R² undefined there;
        we do not invent 0 or 1 the way sklearn's ``force_finite`` does).
    """
    t, p = _check_pair(y_true, y_pred)
    ss_res = ((t - p) ** 2).sum(axis=0)
    ss_tot = ((t - t.mean(axis=0)) ** 2).sum(axis=0)
    # Test constancy exactly (max == min): a rounding-level ss_tot would give R² ~ -1e30.
    varies = np.ptp(t, axis=0) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(varies, 1.0 - ss_res / np.where(varies, ss_tot, 1.0), np.nan)


def pairwise_ranking_accuracy(y_true, y_pred, groups=None, *, chunk_size: int = 128) -> np.ndarray:
    """Fraction of ordered-by-truth pairs whose predicted order agrees, per column.

    A pair (i, j), i < j, counts when ``y_true[i] != y_true[j]`` (and, if ``groups`` is given,
    ``groups[i] == groups[j]``). It scores 1 if the prediction orders it the same way, 0.5 if the
    predictions tie, else 0.

    Parameters
    ----------
    y_true, y_pred : array (N, K) (or (N,))
    groups : array (N,), optional
        Only pairs within the same group are counted.
    chunk_size : int
        Rows per vectorised block; memory is ``chunk_size * N * K`` floats.

    Returns
    -------
    acc : array (K,)
        NaN for a column with no countable pair.
    """
    t, p = _check_pair(y_true, y_pred)
    n, k = t.shape
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != (n,):
            raise ValueError(f"groups: expected shape ({n},), got {groups.shape}")
        # Pairs only exist inside a group: work group by group (sum of n_g^2 instead of N^2 pairs).
        blocks = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    else:
        blocks = [np.arange(n)]
    score = np.zeros(k)
    count = np.zeros(k)
    for idx in blocks:
        tb, pb, m = t[idx], p[idx], idx.size
        cols = np.arange(m)
        for a in range(0, m, chunk_size):
            b = min(a + chunk_size, m)
            pair_ok = cols[None, :] > np.arange(a, b)[:, None]  # (c, m): each unordered pair once
            if not pair_ok.any():
                continue
            st = np.sign(tb[a:b, None, :] - tb[None, :, :])  # (c, m, K)
            sp = np.sign(pb[a:b, None, :] - pb[None, :, :])
            valid = (st != 0) & pair_ok[:, :, None]
            pts = np.where(sp == 0, 0.5, (st * sp > 0).astype(np.float64))
            score += np.where(valid, pts, 0.0).sum(axis=(0, 1))
            count += valid.sum(axis=(0, 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count > 0, score / np.maximum(count, 1), np.nan)


def within_group_r2(y_true, y_pred, groups) -> np.ndarray:
    """R² per column after centring truth and prediction on their own group means (e.g. per passage).

    Measures what a prediction gets right *within* groups, whatever it does between them: a
    prediction that only knows each group's mean scores 0 (its centred values are 0), one that is
    anti-ordered within groups scores below 0. Singleton groups contribute nothing to either sum.

    Parameters
    ----------
    y_true, y_pred : (N, K) (or (N,)). groups : (N,).

    Returns
    -------
    (K,) float; NaN where the centred truth is constant.
    """
    t, p = _check_pair(y_true, y_pred)
    groups = np.asarray(groups)
    if groups.shape != (t.shape[0],):
        raise ValueError(f"groups: expected shape ({t.shape[0]},), got {groups.shape}")
    _, code = np.unique(groups, return_inverse=True)
    counts = np.bincount(code).astype(float)[:, None]

    def centre(a):
        sums = np.zeros((counts.shape[0], a.shape[1]))
        np.add.at(sums, code, a)
        return a - (sums / counts)[code]

    tc, pc = centre(t), centre(p)
    ss_tot = (tc ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ss_tot > 1e-15, 1.0 - ((tc - pc) ** 2).sum(axis=0) / np.where(ss_tot > 1e-15, ss_tot, 1.0),
                        np.nan)


def summarize_regression(
    y_true,
    y_pred,
    dim_names: Sequence[str],
    fold_ids=None,
    groups=None,
    passages=None,
) -> dict:
    """Metrics dict for one model's (out-of-fold) predictions.

    Parameters
    ----------
    y_true, y_pred : array (N, K)
    dim_names : sequence of K str
    fold_ids : array (N,), optional
        Adds ``fold_r2_mean``: {str(fold): mean R² over dims within that fold}.
    groups : array (N,), optional
        Passed to :func:`pairwise_ranking_accuracy` (within-group pairs only; the piece).
    passages : array (N,), optional
        Adds ``within_passage``: {``r2_mean``, ``r2`` (:func:`within_group_r2`), ``ranking_accuracy_mean``,
        ``ranking_accuracy`` (pairs of the same passage only), ``n_passages``}.

    Returns
    -------
    dict with keys ``n``, ``r2_mean``, ``r2``, ``ranking_accuracy_mean``, ``ranking_accuracy``
    and, with ``fold_ids``, ``fold_r2_mean``; with ``passages``, ``within_passage``.
    """
    t, p = _check_pair(y_true, y_pred)
    names = list(dim_names)
    if len(names) != t.shape[1]:
        raise ValueError(f"dim_names has {len(names)} names but y has {t.shape[1]} columns")
    r2 = r2_per_dim(t, p)
    acc = pairwise_ranking_accuracy(t, p, groups)
    out = {
        "n": int(t.shape[0]),
        "r2_mean": float(np.mean(r2)),
        "r2": {d: float(v) for d, v in zip(names, r2)},
        "ranking_accuracy_mean": float(np.mean(acc)),
        "ranking_accuracy": {d: float(v) for d, v in zip(names, acc)},
    }
    if passages is not None:
        wr2 = within_group_r2(t, p, passages)
        wacc = pairwise_ranking_accuracy(t, p, passages)
        out["within_passage"] = {
            "n_passages": int(np.unique(np.asarray(passages)).size),
            "r2_mean": float(np.mean(wr2)),
            "r2": {d: float(v) for d, v in zip(names, wr2)},
            "ranking_accuracy_mean": float(np.mean(wacc)),
            "ranking_accuracy": {d: float(v) for d, v in zip(names, wacc)},
        }
    if fold_ids is not None:
        fold_ids = np.asarray(fold_ids)
        if fold_ids.shape != (t.shape[0],):
            raise ValueError(f"fold_ids: expected shape ({t.shape[0]},), got {fold_ids.shape}")
        out["fold_r2_mean"] = {
            str(f): float(np.mean(r2_per_dim(t[fold_ids == f], p[fold_ids == f])))
            for f in np.unique(fold_ids)
        }
    return out
