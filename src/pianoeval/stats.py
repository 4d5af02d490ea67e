"""Shared inference helpers: permutation p-values and intervals, paired tests, TOST, Holm.

Every stage that reports a p-value, an interval or an equivalence claim uses these functions, so the
same procedure (and its tested behaviour on null data, ``tests/test_stats.py``) stands behind every
number. Conventions:

* p-values from Monte-Carlo permutations are ``(1 + #{null >= observed}) / (n_perm + 1)``: never 0,
  exact level under exchangeability (1 / (n_perm + 1) is the smallest possible value).
* An interval for a statistic with a permutation null is the **shift-model inversion** of the
  permutation test (:func:`permutation_interval`): it covers the null value exactly when the
  two-sided permutation test does not reject, so its coverage on null data is the test's level.
  Cluster (video) bootstrap percentile intervals of a cross-validated AUC covered 0.5 in only 56-78%
  of null data sets with 5-27 videos, the permutation interval in 93-97% (docs/masterclass.md,
  tests/test_masterclass_classify.py), which is why the bootstrap is not used for AUCs.
* A family of p-values reported by one stage is corrected with :func:`holm_adjust` (Holm's
  step-down, strong control of the family-wise error rate); both raw and corrected values are
  reported.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from scipy.stats import rankdata


# --------------------------------------------------------------------------- multiple testing
def holm_adjust(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone), in input order.

    Parameters
    ----------
    pvalues : m raw p-values; None or NaN entries are not tests (they stay None and do not count
        towards the family size).

    Returns
    -------
    list of m adjusted p-values: ``p_(i) * (m - i + 1)`` for the i-th smallest, made monotone by a
    running maximum and capped at 1. Reject at level alpha when the adjusted value is <= alpha.
    """
    raw = [None if p is None or not np.isfinite(float(p)) else float(p) for p in pvalues]
    bad = [p for p in raw if p is not None and not 0.0 <= p <= 1.0]
    if bad:
        raise ValueError(f"holm_adjust: p-values must lie in [0, 1], got {bad[:5]}")
    idx = [i for i, p in enumerate(raw) if p is not None]
    m = len(idx)
    out: list[float | None] = [None] * len(raw)
    if not m:
        return out
    order = sorted(idx, key=lambda i: (raw[i], i))
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * raw[i]))
        out[i] = running
    return out


def holm_family(named: Mapping[str, float | None]) -> dict[str, float | None]:
    """:func:`holm_adjust` over a mapping name -> raw p (None = not a test); same keys back."""
    keys = list(named)
    return dict(zip(keys, holm_adjust([named[k] for k in keys])))


# --------------------------------------------------------------------------- permutation basics
def permutation_pvalue(null, observed: float, alternative: str = "greater") -> float:
    """Monte-Carlo permutation p-value ``(1 + #{null at least as extreme}) / (n + 1)``.

    ``alternative``: "greater" (large statistics are evidence), "less", or "two-sided" (distance
    from the null's median in either direction). Ties count against the alternative.
    """
    null = np.asarray(null, dtype=float).ravel()
    if null.size == 0 or not np.isfinite(null).all():
        raise ValueError(f"permutation_pvalue: need a non-empty finite null, got {null.size} values")
    obs = float(observed)
    tol = 1e-12
    if alternative == "greater":
        k = int((null >= obs - tol).sum())
    elif alternative == "less":
        k = int((null <= obs + tol).sum())
    elif alternative == "two-sided":
        c = float(np.median(null))
        k = int((np.abs(null - c) >= abs(obs - c) - tol).sum())
    else:
        raise ValueError(f"alternative must be 'greater', 'less' or 'two-sided', got {alternative!r}")
    return (1 + k) / (null.size + 1)


def within_group_permutations(y, groups, n_perm: int, seed=0) -> np.ndarray:
    """(N, n_perm) copies of ``y`` shuffled independently inside each group (e.g. video).

    Group sizes and each group's label counts are kept, so a classifier cannot profit under the
    null from a group's base rate. ``seed``: anything ``np.random.default_rng`` takes.
    """
    y = np.asarray(y)
    groups = np.asarray(groups)
    if y.ndim != 1 or groups.shape != y.shape:
        raise ValueError(f"y {y.shape} and groups {groups.shape} must be 1-D of equal length")
    if n_perm < 1:
        raise ValueError(f"n_perm must be >= 1, got {n_perm}")
    _, code = np.unique(groups, return_inverse=True)
    by_group = np.argsort(code, kind="stable")
    rng = np.random.default_rng(seed)
    keys = rng.random((n_perm, y.size))
    # lexsort on (random key, group) per permutation: groups stay in place, members are shuffled
    order = np.lexsort((keys, np.broadcast_to(code, keys.shape)), axis=-1)  # (n_perm, N)
    out = np.empty((y.size, n_perm), dtype=y.dtype)
    out[by_group] = y[order].T
    return out


def auc_columns(labels, scores) -> np.ndarray:
    """ROC AUC of every column at once (rank-sum formula, ties count 1/2).

    Parameters
    ----------
    labels : (N,) or (N, P) 0/1. scores : (N,) or (N, P) finite. One of them may be 1-D and is then
        shared by every column.

    Returns
    -------
    (P,) AUCs; NaN for a column with one class only.
    """
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=float)
    if not np.isfinite(s).all():
        raise ValueError("auc_columns: scores must be finite")
    if y.shape[0] != s.shape[0]:
        raise ValueError(f"auc_columns: labels have {y.shape[0]} rows, scores {s.shape[0]}")
    y2 = y.reshape(len(y), -1).astype(float)
    ranks = rankdata(s, axis=0) if s.ndim == 2 else rankdata(s)[:, None]
    n1 = y2.sum(0)
    n0 = y2.shape[0] - n1
    rank_sum = (ranks * y2).sum(0)  # broadcasts a shared label or score column
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (rank_sum - n1 * (n1 + 1) / 2) / (n1 * n0)
    return np.where((n1 > 0) & (n0 > 0), auc, np.nan)


def permutation_interval(observed: float, null, *, null_value: float = 0.5, level: float = 0.95
                         ) -> tuple[float, float]:
    """Interval for a statistic from its permutation null, by inverting the test under a shift model.

    Assumes ``observed - true`` is distributed like ``null - null_value`` (the null distribution
    translated): then ``[observed - (c_hi - null_value), observed + (null_value - c_lo)]`` covers the
    true value with probability >= ``level``. The critical values are order statistics of the n null
    values chosen to match :func:`permutation_pvalue`: with ``m = floor((1 - level) / 2 * (n + 1)) - 1``,
    ``c_lo`` is the (m+1)-th smallest and ``c_hi`` the (m+1)-th largest. The interval contains
    ``null_value`` exactly when neither one-sided permutation p-value is <= (1 - level) / 2, so on null
    data (observed exchangeable with the null draws) its coverage is >= ``level`` exactly, for any
    number of videos; tested on the real design. The null's own bias (a cross-validated AUC under the
    null averages slightly below 0.5) is corrected by the same shift. With too few permutations to
    ever reject (m < 0) the interval is unbounded: (-inf, inf).
    """
    null = np.sort(np.asarray(null, dtype=float).ravel())
    if null.size < 2 or not np.isfinite(null).all():
        raise ValueError(f"permutation_interval: need >= 2 finite null values, got {null.size}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    m = int(np.floor((1 - level) / 2 * (null.size + 1) + 1e-9)) - 1
    if m < 0:
        return float("-inf"), float("inf")
    c_lo, c_hi = null[m], null[null.size - 1 - m]
    return float(observed - (c_hi - null_value)), float(observed + (null_value - c_lo))


def tost_pvalue(observed: float, null, margin: float) -> float:
    """Two one-sided tests (equivalence within +-``margin``) with a permutation null of the difference.

    ``null``: the statistic's distribution when the true difference is 0 (e.g. paired swaps of two
    models' scores). Under the shift model the null distribution at a true difference ``d`` is
    ``null + d``; the p-value is the larger of P(null >= observed + margin) (H0: d <= -margin) and
    P(null <= observed - margin) (H0: d >= +margin), each with the +1 correction. Equivalence is
    claimed when it is below alpha.
    """
    if not margin > 0:
        raise ValueError(f"tost: margin must be > 0, got {margin}")
    null = np.asarray(null, dtype=float).ravel()
    p_low = permutation_pvalue(null, observed + margin, "greater")
    p_high = permutation_pvalue(null, observed - margin, "less")
    return max(p_low, p_high)


# --------------------------------------------------------------------------- paired comparisons
def _group_codes(groups, n: int) -> tuple[np.ndarray, int]:
    groups = np.asarray(groups)
    if groups.shape != (n,):
        raise ValueError(f"groups: expected shape ({n},), got {groups.shape}")
    uniq, code = np.unique(groups, return_inverse=True)
    return code, uniq.size


def paired_auc_test(y, score_ref, score_other, groups, *, n_perm: int = 2000, seed=0,
                    margin: float | None = None, level: float = 0.95) -> dict:
    """Paired permutation test of ``AUC(score_other) - AUC(score_ref)`` on the same samples.

    Each model's scores are first replaced by their ranks (AUC is rank-based, and swapped scores must
    be on one scale). Under H0 (the two models are exchangeable) swapping the two scores of every
    sample of a randomly chosen set of groups (videos: swaps respect the dependence inside a video)
    leaves the distribution unchanged; ``n_perm`` random swap patterns give the null of the
    difference, from which come a two-sided p-value, the shift-model interval and, with ``margin``,
    the TOST equivalence p-value.

    Returns
    -------
    dict: auc_ref, auc_other, delta, p (two-sided), ci_low, ci_high (``level``), p_tost and margin
    (None without ``margin``), n, n_groups, n_perm.
    """
    y = np.asarray(y).astype(int)
    a = np.asarray(score_ref, dtype=float)
    b = np.asarray(score_other, dtype=float)
    if not (y.shape == a.shape == b.shape) or y.ndim != 1:
        raise ValueError(f"y {y.shape}, score_ref {a.shape}, score_other {b.shape} must be 1-D of equal length")
    code, n_groups = _group_codes(groups, y.size)
    ra, rb = rankdata(a) / y.size, rankdata(b) / y.size
    auc_a, auc_b = auc_columns(y, np.column_stack([ra, rb]))
    rng = np.random.default_rng(seed)
    flip = rng.random((n_perm, n_groups)) < 0.5  # (B, G)
    swap = flip[:, code].T  # (N, B)
    null = (auc_columns(y, np.where(swap, ra[:, None], rb[:, None]))
            - auc_columns(y, np.where(swap, rb[:, None], ra[:, None])))
    delta = float(auc_b - auc_a)
    lo, hi = permutation_interval(delta, null, null_value=0.0, level=level)
    return {"auc_ref": float(auc_a), "auc_other": float(auc_b), "delta": delta,
            "p": permutation_pvalue(null, delta, "two-sided"), "ci_low": lo, "ci_high": hi,
            "p_tost": tost_pvalue(delta, null, margin) if margin is not None else None,
            "margin": margin, "n": int(y.size), "n_groups": int(n_groups), "n_perm": int(n_perm)}


def sign_flip_test(group_differences, *, n_perm: int = 10000, seed=0, alternative: str = "greater") -> dict:
    """Paired sign-flip test of a sum of per-group differences (e.g. loss of A minus loss of B).

    Under H0 the two compared predictions are exchangeable inside each group, so every group's
    difference is symmetric about 0 and flipping its sign leaves the distribution of the total
    unchanged. ``group_differences`` (G,) or (G, K): with K columns the statistic is their sum over
    groups of the mean over columns (e.g. over the 19 dimensions).

    Returns
    -------
    dict: statistic, p (``alternative`` "greater" = the total is larger than chance), n_groups, n_perm.
    """
    d = np.asarray(group_differences, dtype=float)
    d = d.mean(axis=1) if d.ndim == 2 else d
    if d.ndim != 1 or d.size < 2 or not np.isfinite(d).all():
        raise ValueError(f"sign_flip_test: need >= 2 finite group differences, got shape {np.shape(group_differences)}")
    rng = np.random.default_rng(seed)
    signs = np.where(rng.random((n_perm, d.size)) < 0.5, -1.0, 1.0)
    null = signs @ d
    stat = float(d.sum())
    return {"statistic": stat, "p": permutation_pvalue(null, stat, alternative), "n_groups": int(d.size),
            "n_perm": int(n_perm)}


def group_sums(values, groups) -> np.ndarray:
    """Sum of the rows of ``values`` (N,) or (N, K) within each group, groups in sorted order: (G,) or (G, K)."""
    values = np.asarray(values, dtype=float)
    code, n_groups = _group_codes(groups, values.shape[0])
    out = np.zeros((n_groups, *values.shape[1:]))
    np.add.at(out, code, values)
    return out


# --------------------------------------------------------------------------- rank statistics over groups (T2)
# The unit of independence in T2 is the performer-year (placement is a property of the pianist in that
# year, and a pianist's segments share it), so intervals resample performer-years and the null shuffles
# placements across performer-years, whatever level rho is computed at.


def _corr_rows(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r between each column of A (n, q) and each row of b (m, n) -> (m, q)."""
    A = A - A.mean(0)
    b = b - b.mean(1, keepdims=True)
    num = b @ A
    den = np.sqrt((b * b).sum(1))[:, None] * np.sqrt((A * A).sum(0))[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def spearman_columns(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman rho of each column of X (n, q) with y (n,) -> (q,); NaN where a variable is constant."""
    X = np.asarray(X, dtype=float)
    X = X[:, None] if X.ndim == 1 else X
    y = np.asarray(y, dtype=float)
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"spearman: X has {X.shape[0]} rows, y has {y.shape[0]}")
    return _corr_rows(rankdata(X, axis=0), rankdata(y)[None, :])[0]


def group_permutation_p(X: np.ndarray, group_values: np.ndarray, group_index: np.ndarray, *, n_perm: int,
                        seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided permutation p of Spearman rho between X's columns and a group-level variable.

    Parameters
    ----------
    X : (n, q) row values (segments, or one row per group).
    group_values : (G,) the variable per group (e.g. placement per performer-year).
    group_index : (n,) int in [0, G): the group of each row.
    n_perm : shuffles of ``group_values`` across groups; p = (1 + #{|rho*| >= |rho|}) / (n_perm + 1).

    Returns
    -------
    (rho (q,), p (q,)).
    """
    X = np.asarray(X, dtype=float)
    X = X[:, None] if X.ndim == 1 else X
    gv = np.asarray(group_values, dtype=float)
    gi = np.asarray(group_index, dtype=np.int64)
    if gi.shape != (X.shape[0],) or gi.min(initial=0) < 0 or gi.max(initial=0) >= len(gv):
        raise ValueError("group_index must give each row of X a group in [0, len(group_values))")
    rx = rankdata(X, axis=0)
    rho = _corr_rows(rx, rankdata(gv[gi])[None, :])[0]
    rng = np.random.default_rng(seed)
    perms = np.stack([gv[rng.permutation(len(gv))][gi] for _ in range(n_perm)])
    null = _corr_rows(rx, rankdata(perms, axis=1))
    with np.errstate(invalid="ignore"):
        exceed = (np.abs(null) >= np.abs(rho)[None, :] - 1e-12).sum(0)
    p = (1.0 + exceed) / (n_perm + 1.0)
    return rho, np.where(np.isfinite(rho), p, np.nan)


def _weighted_ranks(values: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Average ranks of ``values`` (N,) in each weighted sample (rows of W (B, N): how many times each
    row is drawn), equal to ``rankdata`` of the sample with row i repeated W[b, i] times."""
    uniq, inv = np.unique(values, return_inverse=True)
    block = np.zeros((W.shape[0], len(uniq)))
    np.add.at(block.T, inv, W.T)  # total weight of each distinct value, per sample
    before = np.cumsum(block, axis=1) - block
    return (before + (block + 1.0) / 2.0)[:, inv]


def _weighted_corr(A: np.ndarray, b: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Weighted Pearson r per sample: A (B, N, q), b (B, N), W (B, N) -> (B, q)."""
    w = W / W.sum(1, keepdims=True)
    A = A - np.einsum("bn,bnq->bq", w, A)[:, None, :]
    b = b - (w * b).sum(1, keepdims=True)
    num = np.einsum("bn,bnq,bn->bq", w, A, b)
    den = np.sqrt(np.einsum("bn,bnq->bq", w, A * A) * (w * b * b).sum(1, keepdims=True))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 1e-12, num / np.where(den > 1e-12, den, 1.0), np.nan)


def group_bootstrap_rhos(X: np.ndarray, y: np.ndarray, group_index: np.ndarray, *, n_boot: int,
                         seed: int) -> np.ndarray:
    """Spearman rho of X's columns vs y in each of ``n_boot`` resamples of whole groups -> (n_boot, q).

    Each resample is a weight per row (how often its group was drawn); ranks and correlations are
    computed on the weighted sample, which equals the rho of the explicitly duplicated rows (a test
    checks this) at a fraction of the cost. A resample where a variable is constant gives NaN. All
    columns share the resamples, so differences between columns are paired.
    """
    X = np.asarray(X, dtype=float)
    X = X[:, None] if X.ndim == 1 else X
    y = np.asarray(y, dtype=float)
    gi = np.unique(np.asarray(group_index), return_inverse=True)[1].ravel()
    G = gi.max() + 1
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, G, size=(n_boot, G))
    counts = np.zeros((n_boot, G))
    np.add.at(counts, (np.repeat(np.arange(n_boot), G), draws.ravel()), 1.0)
    W = counts[:, gi]  # (B, N)
    ry = _weighted_ranks(y, W)
    RX = np.stack([_weighted_ranks(X[:, j], W) for j in range(X.shape[1])], axis=2)  # (B, N, q)
    return _weighted_corr(RX, ry, W)


def group_bootstrap_ci(X: np.ndarray, y: np.ndarray, group_index: np.ndarray, *, n_boot: int, seed: int,
                       level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile CI of Spearman rho (X columns vs y) resampling whole groups with replacement
    (:func:`group_bootstrap_rhos`). Resamples where a variable is constant are skipped.

    Returns (low (q,), high (q,)).
    """
    X = np.asarray(X, dtype=float)
    X = X[:, None] if X.ndim == 1 else X
    B = group_bootstrap_rhos(X, y, group_index, n_boot=n_boot, seed=seed)
    alpha = (1.0 - level) / 2.0
    low, high = np.full(X.shape[1], np.nan), np.full(X.shape[1], np.nan)
    for j in range(X.shape[1]):
        ok = np.isfinite(B[:, j])
        if ok.any():
            low[j], high[j] = np.quantile(B[ok, j], alpha), np.quantile(B[ok, j], 1.0 - alpha)
    return low, high
