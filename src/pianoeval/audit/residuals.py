"""Section 6: structure left in cross-validated residuals.

If the residuals Y - OOF prediction still share components beyond what same-shaped noise
produces, the embedding misses a common (audible or rater-level) factor rather than only
dimension-specific noise.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from pianoeval.audit import _as_2d, _check_variance, _fl, _leading_count, _names, _r2
from pianoeval.audit.factors import parallel_analysis_thresholds, pca_correlation


def residual_structure(
    Y: np.ndarray,
    oof_pred: np.ndarray,
    names: Sequence[str] | None = None,
    *,
    n_iter: int = 200,
    seed: int = 0,
    percentile: float = 95,
    loading_threshold: float = 0.3,
) -> dict:
    """PCA of OOF residuals against a parallel-analysis noise baseline.

    Parameters
    ----------
    Y : (N, q) labels. oof_pred : (N, q) out-of-fold predictions (e.g. a probe's ``"oof"``).
    names : q names. n_iter, seed, percentile : parallel analysis on random normal matrices of
        shape (N, q), as in ``factors.factor_structure``.
    loading_threshold : list dimensions with |loading| above this per structured component.

    Returns
    -------
    dict with ``eigenvalues`` / ``pa_threshold`` (residual correlation spectrum vs noise),
    ``n_structured`` (leading residual components above the noise threshold), ``components``
    (their dominant dimensions and loadings), ``residual_corr`` (q x q),
    ``mean_abs_residual_corr`` vs ``mean_abs_label_corr``, ``r2`` ({dim: pooled OOF R^2}),
    ``unexplained`` ({dim: 1 - clip(R^2, 0, 1)}) and ``headline``.
    """
    Y = _as_2d("Y", Y)
    pred = _as_2d("oof_pred", oof_pred, n_rows=Y.shape[0])
    if pred.shape != Y.shape:
        raise ValueError(f"oof_pred: shape {pred.shape} does not match Y {Y.shape}")
    n, q = Y.shape
    names = _names(names, q)
    res = Y - pred
    _check_variance("residuals (Y - oof_pred)", res, names)
    evals, evecs, _ = pca_correlation(res)
    thr, _ = parallel_analysis_thresholds(n, q, n_iter=n_iter, percentile=percentile, seed=seed)
    n_struct = _leading_count(evals, thr)
    loadings = evecs * np.sqrt(evals)
    components = []
    for k in range(n_struct):
        idx = np.flatnonzero(np.abs(loadings[:, k]) > loading_threshold)
        idx = idx[np.argsort(-np.abs(loadings[idx, k]), kind="stable")]
        components.append({"component": k + 1, "eigenvalue": float(evals[k]),
                           "dims": [{"dim": names[i], "loading": float(loadings[i, k])}
                                    for i in idx]})
    rc = np.corrcoef(res, rowvar=False)
    iu = np.triu_indices(q, k=1)
    mean_abs_res = float(np.abs(rc[iu]).mean())
    mean_abs_lab = float(np.abs(np.corrcoef(Y, rowvar=False)[iu]).mean())
    r2 = _r2(Y, pred)
    unexplained = 1.0 - np.clip(r2, 0.0, 1.0)
    return {
        "names": names,
        "eigenvalues": evals.tolist(),
        "pa_threshold": thr.tolist(),
        "pa_percentile": percentile,
        "pa_n_iter": n_iter,
        "n_structured": n_struct,
        "components": components,
        "residual_corr": rc.tolist(),
        "mean_abs_residual_corr": mean_abs_res,
        "mean_abs_label_corr": mean_abs_lab,
        "r2": {nm: _fl(v) for nm, v in zip(names, r2)},
        "unexplained": {nm: _fl(v) for nm, v in zip(names, unexplained)},
        "headline": {
            "n_structured_residual_components": n_struct,
            "first_residual_eigenvalue": _fl(evals[0]),
            "first_residual_pa_threshold": _fl(thr[0]),
            "mean_abs_residual_corr": mean_abs_res,
            "mean_unexplained_fraction": _fl(np.nanmean(unexplained)),
        },
    }
