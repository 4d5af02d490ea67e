"""Robustness metrics of embeddings and quality predictions, clean vs augmented audio.

Every function takes arrays with the item axis first; item i of ``clean`` and of ``aug`` are the
same music (for T4 the same clip, for PercePiano the same segment). Intervals are percentile
bootstraps over items (T4 clips; PercePiano segments resampled within their passage, so every
resample keeps the same-passage pairs that ranking accuracy needs). A resample is a row of
multinomial draw counts, so a whole bootstrap is a few matrix products rather than a Python loop.

Embedding similarity is measured after standardising every feature with the clean set's mean and
std (what the quality head does before its MLP): raw log-mel mean‖std vectors all point the same way
(every value is a dB level), so the raw cosine of two unrelated clips is already close to 1 and says
nothing. The baseline is the mean standardised cosine between different clean items.
"""

from __future__ import annotations

import numpy as np


# -- embeddings -----------------------------------------------------------------------------------------

def standardizer(reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) per feature of ``reference`` (N, F); a constant feature gets std 1."""
    ref = np.asarray(reference, dtype=np.float64)
    std = ref.std(axis=0)
    return ref.mean(axis=0), np.where(std > 0, std, 1.0)


def _unit(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    z = (np.asarray(x, dtype=np.float64) - mean) / std
    norm = np.linalg.norm(z, axis=1, keepdims=True)
    return z / np.where(norm > 0, norm, 1.0)


def pair_cosine(clean: np.ndarray, aug: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(n, F), (n, F) -> (n,) cosine of each standardised clean/augmented pair."""
    return np.sum(_unit(clean, mean, std) * _unit(aug, mean, std), axis=1)


def between_item_cosine(clean: np.ndarray, mean: np.ndarray, std: np.ndarray) -> float:
    """Mean standardised cosine between DIFFERENT clean items (the chance level of ``pair_cosine``)."""
    u = _unit(clean, mean, std)
    sim = u @ u.T
    n = len(u)
    if n < 2:
        return float("nan")
    return float((sim.sum() - np.trace(sim)) / (n * (n - 1)))


def retrieval_hits(clean_all: np.ndarray, aug: np.ndarray, true_index: np.ndarray, mean: np.ndarray,
                   std: np.ndarray) -> np.ndarray:
    """(n_aug,) bool: is the augmented item's nearest clean item (standardised cosine, among all
    ``clean_all`` (N, F)) its own clean version ``true_index``? Chance is 1 / N."""
    sim = _unit(aug, mean, std) @ _unit(clean_all, mean, std).T
    return np.argmax(sim, axis=1) == np.asarray(true_index)


# -- predictions ----------------------------------------------------------------------------------------

def prediction_shift(pred_clean: np.ndarray, pred_aug: np.ndarray, label_std: np.ndarray) -> np.ndarray:
    """(n, K) shift of each prediction in units of that dimension's label std."""
    label_std = np.asarray(label_std, dtype=np.float64)
    if np.any(label_std <= 0):
        raise ValueError("label std must be > 0 for every dimension")
    return (np.asarray(pred_aug, dtype=np.float64) - np.asarray(pred_clean, dtype=np.float64)) / label_std


def _rank(x: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(x, axis=0)


def correlation_per_dim(a: np.ndarray, b: np.ndarray, method: str = "pearson") -> np.ndarray:
    """(n, K), (n, K) -> (K,) Pearson or Spearman r per column; NaN where a column is constant."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if method == "spearman":
        a, b = _rank(a), _rank(b)
    elif method != "pearson":
        raise ValueError(f"method must be pearson or spearman, got {method!r}")
    return weighted_pearson(a, b, np.ones((1, len(a))))[0]


def weighted_pearson(a: np.ndarray, b: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Pearson r per column under each row of item weights.

    a, b : (n, K); weights : (B, n) non-negative (bootstrap draw counts). Returns (B, K); NaN where
    a column has no spread under the weights.
    """
    w = np.asarray(weights, dtype=np.float64)
    tot = w.sum(axis=1, keepdims=True)
    ma, mb = (w @ a) / tot, (w @ b) / tot
    cov = (w @ (a * b)) / tot - ma * mb
    va = (w @ (a * a)) / tot - ma ** 2
    vb = (w @ (b * b)) / tot - mb ** 2
    den = np.sqrt(np.clip(va, 0, None) * np.clip(vb, 0, None))
    tiny = 1e-12 * (1.0 + np.abs(ma) * np.abs(mb))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > tiny, cov / np.where(den > tiny, den, 1.0), np.nan)


def within_group_centered(x: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """(n, K) minus each group's mean: what is left once the passage mean is taken out."""
    x = np.asarray(x, dtype=np.float64).copy()
    for g in np.unique(groups):
        m = groups == g
        x[m] -= x[m].mean(axis=0)
    return x


def ranking_pairs(y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray):
    """Every within-group pair (i < j) with its ranking points and validity per dimension.

    Returns (i (P,), j (P,), points (P, K), valid (P, K) bool): a pair is valid in a dimension when
    the truths differ; it scores 1 if the predictions order it the same way, 0.5 on a tie, else 0.
    ``points.sum(0) / valid.sum(0)`` is :func:`pianoeval.regression_metrics.pairwise_ranking_accuracy`
    with ``groups``.
    """
    groups = np.asarray(groups)
    ii, jj = np.triu_indices(len(groups), 1)
    keep = groups[ii] == groups[jj]
    ii, jj = ii[keep], jj[keep]
    st = np.sign(y_true[ii] - y_true[jj])
    sp = np.sign(y_pred[ii] - y_pred[jj])
    valid = st != 0
    points = np.where(valid, np.where(sp == 0, 0.5, (st * sp > 0).astype(np.float64)), 0.0)
    return ii, jj, points, valid


def ranking_accuracy_mean(points: np.ndarray, valid: np.ndarray, ii: np.ndarray, jj: np.ndarray,
                          weights: np.ndarray) -> np.ndarray:
    """(B,) mean over dimensions of the ranking accuracy when item i is drawn weights[b, i] times
    (a pair then counts weights[b, i] * weights[b, j] times)."""
    pw = weights[:, ii] * weights[:, jj]  # (B, P)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nanmean((pw @ points) / (pw @ valid.astype(np.float64)), axis=1)


def bootstrap_weights(n: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) multinomial draw counts: row b is how often each item is drawn in resample b."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)


def percentile_ci(samples: np.ndarray, level: float = 0.95) -> list[float]:
    """[lo, hi] percentile interval of the finite bootstrap values."""
    s = np.asarray(samples, dtype=np.float64)
    s = s[np.isfinite(s)]
    if s.size == 0:
        return [float("nan"), float("nan")]
    a = (1 - level) / 2
    return [float(np.quantile(s, a)), float(np.quantile(s, 1 - a))]


def mean_abs_shift_ci(shift: np.ndarray, weights: np.ndarray) -> list[float]:
    """CI of the mean over dimensions of the mean |shift| (items resampled by ``weights`` (B, n))."""
    per_item = np.abs(shift).mean(axis=1)
    return percentile_ci((weights @ per_item) / weights.sum(axis=1))


def mean_shift_ci(shift: np.ndarray, weights: np.ndarray) -> list[float]:
    """CI of the mean signed shift (over items and dimensions): covers 0 when nothing moves on average."""
    per_item = shift.mean(axis=1)
    return percentile_ci((weights @ per_item) / weights.sum(axis=1))


def stratified_bootstrap_weights(groups: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) draw counts resampling items WITHIN each group (passage): every resample keeps the
    passages and their sizes, so same-passage pairs exist in every one even with few passages."""
    groups = np.asarray(groups)
    rng = np.random.default_rng(seed)
    w = np.zeros((n_boot, len(groups)))
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        w[:, idx] = rng.multinomial(len(idx), np.full(len(idx), 1.0 / len(idx)), size=n_boot)
    return w


def ranking_drop(y_true, pred_clean, pred_aug, groups, weights: np.ndarray | None = None):
    """Relative drop of the mean (over dimensions) same-group ranking accuracy,
    (acc_clean - acc_aug) / acc_clean, for the data (``weights`` None: scalars) or for each row of
    item weights (B, n): arrays (B,). Returns (acc_clean, acc_aug, drop)."""
    ii, jj, pts_c, valid = ranking_pairs(y_true, pred_clean, groups)
    _, _, pts_a, _ = ranking_pairs(y_true, pred_aug, groups)
    w = np.ones((1, len(groups))) if weights is None else weights
    acc_c = ranking_accuracy_mean(pts_c, valid, ii, jj, w)
    acc_a = ranking_accuracy_mean(pts_a, valid, ii, jj, w)
    drop = (acc_c - acc_a) / acc_c
    if weights is None:
        return float(acc_c[0]), float(acc_a[0]), float(drop[0])
    return acc_c, acc_a, drop


def weighted_r2_mean(y: np.ndarray, p: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(B,) mean over dimensions of R² under item weights (B, n)."""
    tot = weights.sum(axis=1, keepdims=True)
    my = (weights @ y) / tot
    ss_res = weights @ ((y - p) ** 2)
    ss_tot = weights @ (y ** 2) - tot * my ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nanmean(np.where(ss_tot > 0, 1 - ss_res / ss_tot, np.nan), axis=1)


# -- one condition ----------------------------------------------------------------------------------------

def embedding_metrics(clean_all: np.ndarray, clean: np.ndarray, aug: np.ndarray, true_index: np.ndarray,
                      mean: np.ndarray, std: np.ndarray) -> dict:
    cos = pair_cosine(clean, aug, mean, std)
    hits = retrieval_hits(clean_all, aug, true_index, mean, std)
    return {"cosine_mean": float(cos.mean()), "cosine_min": float(cos.min()),
            "retrieval_top1": float(hits.mean())}


def prediction_metrics(pred_clean: np.ndarray, pred_aug: np.ndarray, label_std: np.ndarray, weights: np.ndarray,
                       dims: list[str], pearson_target: float) -> dict:
    """Shift, Spearman and Pearson of predictions across items; ``weights`` (B, n) for the intervals."""
    shift = prediction_shift(pred_clean, pred_aug, label_std)
    pearson = correlation_per_dim(pred_clean, pred_aug, "pearson")
    spearman = correlation_per_dim(pred_clean, pred_aug, "spearman")
    boot_r = np.nanmean(weighted_pearson(pred_clean, pred_aug, weights), axis=1)
    abs_dim = np.abs(shift).mean(axis=0)
    top = np.argsort(-abs_dim)[:3]
    return {"shift_abs_mean": float(abs_dim.mean()), "shift_abs_mean_ci": mean_abs_shift_ci(shift, weights),
            "shift_mean": float(shift.mean()), "shift_mean_ci": mean_shift_ci(shift, weights),
            "most_shifted": {dims[i]: float(abs_dim[i]) for i in top},
            "spearman_mean": float(np.nanmean(spearman)), "pearson_mean": float(np.nanmean(pearson)),
            "pearson_mean_ci": percentile_ci(boot_r),
            "pearson_dims_below_target": int(np.sum(~(pearson >= pearson_target))),
            "meets_pearson_target": bool(np.nanmean(pearson) >= pearson_target)}
