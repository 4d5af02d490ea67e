"""Section 4: inter-rater reliability and the noise ceiling of each dimension.

Crowd ratings are unbalanced (each segment is rated by a different subset of raters), so the
model is the one-way random-effects ANOVA: ICC(1,1) for a single rating and ICC(1,k) for the
mean of k ratings. Rater identity only serves to detect duplicate (segment, rater) pairs.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import sparse

from pianoeval.audit import _as_2d, _fl, _names


def _group_sums(group: np.ndarray, n_groups: int, vals: np.ndarray, valid: np.ndarray):
    """Per-group (count, sum, sum of squares) of ``vals`` (M, q) over ``valid`` entries."""
    ind = sparse.csr_matrix((np.ones(len(group)), (group, np.arange(len(group)))),
                            shape=(n_groups, len(group)))
    return ind @ valid.astype(np.float64), ind @ vals, ind @ (vals * vals)


def icc_oneway(k: np.ndarray, s: np.ndarray, ss: np.ndarray) -> dict[str, np.ndarray]:
    """One-way random ICCs from per-segment counts, sums and sums of squares, each (n_seg, q).

    Segments with no rating in a dimension are left out of that dimension. With
    N = sum k_i ratings on n segments: MSB = SSB / (n - 1), MSW = SSW / (N - n),
    k0 = (N - sum k_i^2 / N) / (n - 1) (the unbalanced-design group size),
    ICC(1,1) = (MSB - MSW) / (MSB + (k0 - 1) MSW), and ICC(1,k) = Spearman-Brown of ICC(1,1)
    to k = N / n, the mean number of ratings per segment.

    Returns
    -------
    dict of (q,) arrays: icc1_1, icc1_k, k_mean, k0, n_segments, n_ratings, msb, msw
    (NaN where undefined: fewer than 2 segments or no segment with 2+ ratings).
    """
    rated = k > 0
    n = rated.sum(0).astype(np.float64)
    N = k.sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        s2k = np.where(rated, s * s / np.where(rated, k, 1.0), 0.0).sum(0)
        grand = s.sum(0) / N
        ssb = s2k - N * grand * grand
        ssw = np.clip(ss.sum(0) - s2k, 0.0, None)
        msb = ssb / (n - 1)
        msw = ssw / (N - n)
        k0 = (N - (k * k).sum(0) / N) / (n - 1)
        icc1 = (msb - msw) / (msb + (k0 - 1) * msw)
        kbar = N / n
        icck = kbar * icc1 / (1 + (kbar - 1) * icc1)
    bad = (n < 2) | (N <= n)
    nan = np.full_like(icc1, np.nan)
    return {"icc1_1": np.where(bad, nan, icc1), "icc1_k": np.where(bad, nan, icck),
            "k_mean": kbar, "k0": k0, "n_segments": n, "n_ratings": N, "msb": msb, "msw": msw}


def split_half(seg: np.ndarray, n_seg: int, vals: np.ndarray, valid: np.ndarray, *,
               n_splits: int, seed: int) -> dict[str, np.ndarray]:
    """Split-half reliability, Spearman-Brown corrected, over ``n_splits`` random splits.

    In each split every segment's rating rows (raters) are shuffled and cut into halves of
    floor(k/2) and ceil(k/2) rows; the same row split is used for all dimensions. The half
    means are correlated (Pearson) across segments that have a valid rating in both halves,
    and r_SB = 2r / (1 + r). All splits are computed at once: a random key per (split, row),
    an argsort within segments, and one sparse (splits * 2 * segments, rows) sum matrix.

    Returns
    -------
    dict of (q,) arrays: r (mean half correlation), sb (mean r_SB), sb_std, n_segments
    (mean segments used per split).
    """
    M, q = vals.shape
    counts = np.bincount(seg, minlength=n_seg)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rng = np.random.default_rng(seed)
    order = np.argsort(seg[None, :] + rng.random((n_splits, M)), axis=1)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(M)[None, :].repeat(n_splits, 0), axis=1)
    half = (rank - start[seg] >= counts[seg] // 2).astype(np.int64)
    rows = (np.arange(n_splits)[:, None] * 2 + half) * n_seg + seg[None, :]
    ind = sparse.csr_matrix((np.ones(rows.size), (rows.ravel(), np.tile(np.arange(M), n_splits))),
                            shape=(n_splits * 2 * n_seg, M))
    k = (ind @ valid.astype(np.float64)).reshape(n_splits, 2, n_seg, q)
    s = (ind @ vals).reshape(n_splits, 2, n_seg, q)
    use = (k[:, 0] > 0) & (k[:, 1] > 0) & (counts >= 2)[None, :, None]
    w = use.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        m = np.where(k > 0, s / np.where(k > 0, k, 1.0), 0.0)
        a, b = m[:, 0], m[:, 1]
        nw = w.sum(1)
        ca = a - (w * a).sum(1, keepdims=True) / nw[:, None]
        cb = b - (w * b).sum(1, keepdims=True) / nw[:, None]
        r = (w * ca * cb).sum(1) / np.sqrt((w * ca * ca).sum(1) * (w * cb * cb).sum(1))
        sb = 2 * r / (1 + r)
    return {"r": r.mean(0), "sb": sb.mean(0), "sb_std": sb.std(0), "n_segments": nw.mean(0)}


def rater_reliability(
    segment_ids: np.ndarray,
    rater_ids: np.ndarray,
    ratings: np.ndarray,
    names: Sequence[str] | None = None,
    *,
    seed: int = 0,
    n_splits: int = 100,
    on_duplicate: str = "raise",
) -> dict:
    """Per-dimension rater reliability and noise ceiling from long-format ratings.

    Parameters
    ----------
    segment_ids : (M,) segment of each rating row (any hashable dtype numpy can sort).
    rater_ids : (M,) rater of each row.
    ratings : (M, q) float ratings (e.g. 1-7 Likert; reliability is scale-free); NaN = the
        rater did not rate that dimension.
    names : q dimension names.
    seed, n_splits : random split-half resamples.
    on_duplicate : "raise" (default) if a rater rated a segment more than once, "keep" to keep
        every row as a separate rating (the count is reported either way).

    Returns
    -------
    dict with ``per_dim`` ({name: {icc1_1, icc1_k, k_mean, k0, n_segments, n_ratings,
    split_half_r, split_half_sb, split_half_sb_std, noise_ceiling}}), ``mean`` (the same keys
    averaged over dimensions), ``counts`` (rows, segments, raters, duplicates, all-NaN rows,
    segments with a single rating row) and ``headline``.

    ``noise_ceiling`` = ICC(1,k) clipped to [0, 1]: the reliability of the mean rating, i.e.
    the largest R^2 any predictor of the mean rating can reach in expectation. The split-half
    Spearman-Brown value estimates the same quantity without the ANOVA model.
    """
    ratings = _as_2d("ratings", ratings, allow_nan=True)
    M, q = ratings.shape
    names = _names(names, q, "ratings")
    segment_ids, rater_ids = np.asarray(segment_ids), np.asarray(rater_ids)
    for nm, a in (("segment_ids", segment_ids), ("rater_ids", rater_ids)):
        if a.shape != (M,):
            raise ValueError(f"{nm}: expected shape ({M},) to match ratings, got {a.shape}")
    if n_splits < 1:
        raise ValueError(f"n_splits: must be >= 1, got {n_splits}")
    if on_duplicate not in ("raise", "keep"):
        raise ValueError(f"on_duplicate: expected 'raise' or 'keep', got {on_duplicate!r}")

    seg_codes, seg = np.unique(segment_ids, return_inverse=True)
    rater_codes, rater = np.unique(rater_ids, return_inverse=True)
    n_seg = len(seg_codes)
    _, pair_counts = np.unique(seg * len(rater_codes) + rater, return_counts=True)
    n_dup = int((pair_counts - 1).sum())
    if n_dup and on_duplicate == "raise":
        raise ValueError(f"ratings: {n_dup} duplicate (segment, rater) rows; pass "
                         "on_duplicate='keep' to treat them as separate ratings")

    valid = ~np.isnan(ratings)
    vals = np.where(valid, ratings, 0.0)
    icc = icc_oneway(*_group_sums(seg, n_seg, vals, valid))
    sh = split_half(seg, n_seg, vals, valid, n_splits=n_splits, seed=seed)
    ceiling = np.clip(icc["icc1_k"], 0.0, 1.0)

    table = {
        "icc1_1": icc["icc1_1"], "icc1_k": icc["icc1_k"], "k_mean": icc["k_mean"],
        "k0": icc["k0"], "n_segments": icc["n_segments"], "n_ratings": icc["n_ratings"],
        "split_half_r": sh["r"], "split_half_sb": sh["sb"], "split_half_sb_std": sh["sb_std"],
        "split_half_n_segments": sh["n_segments"], "noise_ceiling": ceiling,
    }
    per_dim = {n: {k: _fl(v[j]) for k, v in table.items()} for j, n in enumerate(names)}
    mean = {k: _fl(np.nanmean(v)) if np.isfinite(v).any() else None for k, v in table.items()}
    counts = np.bincount(seg, minlength=n_seg)
    return {
        "names": names,
        "per_dim": per_dim,
        "mean": mean,
        "counts": {
            "n_rows": M, "n_segments": n_seg, "n_raters": len(rater_codes),
            "n_duplicate_rows": n_dup, "n_all_nan_rows": int((~valid.any(1)).sum()),
            "n_segments_single_row": int((counts == 1).sum()),
            "mean_rows_per_segment": float(counts.mean()),
        },
        "model": "one-way random ICC(1,1); ICC(1,k) = Spearman-Brown to mean k; "
                 f"split-half over {n_splits} random rater splits; noise_ceiling = clip(ICC(1,k))",
        "headline": {
            "mean_icc1_1": mean["icc1_1"],
            "mean_icc1_k": mean["icc1_k"],
            "mean_split_half_sb": mean["split_half_sb"],
            "mean_noise_ceiling": mean["noise_ceiling"],
            "min_noise_ceiling": _fl(np.nanmin(ceiling)) if np.isfinite(ceiling).any() else None,
            "mean_raters_per_segment": float(counts.mean()),
        },
    }
