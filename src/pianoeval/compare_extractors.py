"""Ridge-probe comparison of embedding stores: one row per extractor, per stored layer of multi-layer
stores and per member of ``concat`` stores, on the three T1 splits.

Each row is the out-of-fold prediction of the 19 mean ratings by the project's ridge core
(:func:`pianoeval.quality.cross_validate_ridge`: per-dimension alpha by inner CV, grouped like the
outer split) from the store's pooled mean‖std vectors. Beside every row:

* ``n`` segments; the two baselines that could explain a score away: **duration** (ridge on log
  duration) and **passage mean** (each segment predicted by its piece's mean rating in the training
  folds; R² of the piece-level signal alone);
* a 95% bootstrap interval of mean R² (resampling pianists, or segments for the segment split), and
  the paired difference to the reference row (``compare_extractors.reference``) with its interval,
  so "B beats A" is stated only when the interval excludes 0.
"""

from __future__ import annotations

import numpy as np

from .regression_metrics import r2_per_dim


def passage_mean_oof(Y: np.ndarray, folds: np.ndarray, pieces: np.ndarray) -> np.ndarray:
    """(N, K) out-of-fold prediction by the training folds' mean rating of the segment's piece
    (the overall training mean for a piece absent from the training folds)."""
    out = np.empty_like(Y, dtype=np.float64)
    for f in np.unique(folds):
        test, train = folds == f, folds != f
        glob = Y[train].mean(0)
        for piece in np.unique(pieces[test]):
            m = train & (pieces == piece)
            out[test & (pieces == piece)] = Y[m].mean(0) if m.any() else glob
    return out


def bootstrap_r2(Y: np.ndarray, preds: dict[str, np.ndarray], reference: str | None, groups: np.ndarray,
                 n_boot: int, seed: int) -> dict[str, dict]:
    """Mean-over-dimensions R² with a 95% percentile interval from resampling whole groups, and the
    paired difference to ``reference`` (same resamples for all rows).

    Parameters
    ----------
    Y : (N, K) truth.   preds : name -> (N, K) out-of-fold predictions.
    groups : (N,) resampling unit (pianist id, or arange(N) for independent segments).

    Returns
    -------
    name -> {"ci": [lo, hi], "delta": d, "delta_ci": [lo, hi], "p_delta_le_0": fraction of resamples
    with a difference <= 0} (delta keys only when ``reference`` is given and differs from the row).
    """
    rng = np.random.default_rng(seed)
    uniq, inv = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inv == g) for g in range(len(uniq))]
    boot = {name: np.empty(n_boot) for name in preds}
    for b in range(n_boot):
        idx = np.concatenate([members[g] for g in rng.integers(0, len(uniq), len(uniq))])
        for name, p in preds.items():
            boot[name][b] = np.nanmean(r2_per_dim(Y[idx], p[idx]))
    out = {}
    for name in preds:
        row = {"ci": np.percentile(boot[name], [2.5, 97.5]).tolist()}
        if reference is not None and name != reference:
            d = boot[name] - boot[reference]
            row["delta"] = float(np.nanmean(r2_per_dim(Y, preds[name])) - np.nanmean(r2_per_dim(Y, preds[reference])))
            row["delta_ci"] = np.percentile(d, [2.5, 97.5]).tolist()
            row["p_delta_le_0"] = float(np.mean(d <= 0))
        out[name] = row
    return out


def probe_rows(store, keys: list[str]) -> list[tuple[str, dict]]:
    """(row name, pooled-selection kwargs for ``store.pooled``) for every comparable view of a store:
    the store itself; each stored layer (multi-layer); each member (concat)."""
    rows = [(store.extractor, {})]
    if store.layers is not None:
        rows += [(f"{store.extractor}/layer{i}", {"layers": int(i)}) for i in store.layers]
    rows += [(f"{store.extractor}/{p['name']}", {"part": p["name"]}) for p in store.parts]
    return rows
