"""Section 2: factor structure of the labels (PCA + Horn's parallel analysis)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from pianoeval.audit import _as_2d, _check_variance, _fl, _leading_count, _names


def random_correlation_eigenvalues(
    n_obs: int, n_vars: int, *, n_iter: int = 1000, seed: int = 0, max_batch_bytes: int = 2**26,
    method: str = "wishart",
) -> np.ndarray:
    """Eigenvalues (descending) of correlation matrices of ``n_iter`` random normal matrices.

    ``method="wishart"`` (default): the correlation matrix of an (n_obs, n_vars) matrix of iid
    normals depends on it only through the centred scatter matrix S ~ Wishart(n_obs - 1, I), so
    S is drawn directly by the Bartlett decomposition S = A A^T (A lower triangular,
    A_ii = sqrt(chi2(n_obs - 1 - i)), A_ij ~ N(0, 1) below the diagonal): n_vars^2 / 2 random
    numbers per matrix instead of n_obs * n_vars, the same distribution. It needs
    n_obs - 1 >= n_vars; otherwise (and with ``method="data"``) the matrices themselves are drawn
    in batches (at most ``max_batch_bytes`` of float64 each) and standardised. Either way the
    correlation matrices are decomposed with one batched ``np.linalg.eigvalsh`` call per batch.

    Returns
    -------
    (n_iter, n_vars) float64, each row sorted descending.
    """
    if n_obs < 3 or n_vars < 1 or n_iter < 1:
        raise ValueError(f"parallel analysis: need n_obs >= 3, n_vars >= 1, n_iter >= 1; "
                         f"got {n_obs}, {n_vars}, {n_iter}")
    if method not in ("wishart", "data"):
        raise ValueError(f"method: expected 'wishart' or 'data', got {method!r}")
    rng = np.random.default_rng(seed)
    if method == "wishart" and n_obs - 1 >= n_vars:
        A = np.zeros((n_iter, n_vars, n_vars))
        il = np.tril_indices(n_vars, k=-1)
        A[:, il[0], il[1]] = rng.standard_normal((n_iter, il[0].size))
        d = np.arange(n_vars)
        A[:, d, d] = np.sqrt(rng.chisquare(n_obs - 1 - d, size=(n_iter, n_vars)))
        S = np.matmul(A, A.transpose(0, 2, 1))
        isd = 1.0 / np.sqrt(S[:, d, d])
        return np.linalg.eigvalsh(S * isd[:, :, None] * isd[:, None, :])[:, ::-1]
    batch = max(1, min(n_iter, max_batch_bytes // (8 * n_obs * n_vars)))
    out = np.empty((n_iter, n_vars))
    for start in range(0, n_iter, batch):
        b = min(batch, n_iter - start)
        z = rng.standard_normal((b, n_obs, n_vars))
        z -= z.mean(axis=1, keepdims=True)
        z /= np.sqrt((z * z).sum(axis=1, keepdims=True))
        corr = np.matmul(z.transpose(0, 2, 1), z)
        out[start:start + b] = np.linalg.eigvalsh(corr)[:, ::-1]
    return out


def parallel_analysis_thresholds(
    n_obs: int, n_vars: int, *, n_iter: int = 1000, percentile: float = 95, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Per-component noise thresholds for parallel analysis.

    Returns
    -------
    thresholds : (n_vars,) ``percentile``-th percentile of the k-th random eigenvalue.
    mean : (n_vars,) mean random eigenvalue (Horn's original criterion).
    """
    ev = random_correlation_eigenvalues(n_obs, n_vars, n_iter=n_iter, seed=seed)
    return np.percentile(ev, percentile, axis=0), ev.mean(axis=0)


def pca_correlation(Z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PCA via eigendecomposition of the correlation matrix of ``Z`` (N, q).

    Returns
    -------
    eigenvalues : (q,) descending, clipped at 0 (they sum to q).
    vectors : (q, q) unit eigenvectors as columns; each is signed so that its largest-|.|
        entry is positive (deterministic signs).
    standardised : (N, q) column-standardised ``Z`` (population std).
    """
    Zs = (Z - Z.mean(0)) / Z.std(0)
    evals, evecs = np.linalg.eigh(np.corrcoef(Zs, rowvar=False))
    evals, evecs = np.clip(evals[::-1], 0.0, None), evecs[:, ::-1]
    sign = np.sign(evecs[np.argmax(np.abs(evecs), axis=0), np.arange(evecs.shape[1])])
    return evals, evecs * np.where(sign == 0, 1.0, sign), Zs


def varimax(L: np.ndarray, *, max_iter: int = 100, tol: float = 1e-8) -> np.ndarray:
    """Varimax rotation of a loading matrix L (q, k) (Kaiser's criterion, SVD iteration).

    Columns are signed so that each rotated factor's loadings sum to a positive value and
    ordered by decreasing explained variance (sum of squared loadings).
    """
    q, k = L.shape
    R, obj = np.eye(k), 0.0
    for _ in range(max_iter):
        B = L @ R
        U, s, Vt = np.linalg.svd(L.T @ (B ** 3 - B @ np.diag((B ** 2).sum(0)) / q))
        R = U @ Vt
        if s.sum() - obj < tol * max(s.sum(), 1.0):
            break
        obj = s.sum()
    B = L @ R
    B *= np.where(B.sum(0) < 0, -1.0, 1.0)
    return B[:, np.argsort(-(B ** 2).sum(0), kind="stable")]


def _dims_above(col: np.ndarray, names: Sequence[str], threshold: float) -> list[dict]:
    idx = np.flatnonzero(np.abs(col) > threshold)
    idx = idx[np.argsort(-np.abs(col[idx]), kind="stable")]
    return [{"dim": names[i], "loading": float(col[i])} for i in idx]


def factor_structure(
    Y: np.ndarray,
    names: Sequence[str] | None = None,
    *,
    n_iter: int = 1000,
    seed: int = 0,
    percentile: float = 95,
    loading_threshold: float = 0.3,
    n_scores: int | None = None,
) -> dict:
    """PCA of standardised labels with parallel analysis for the number of factors.

    A component is significant while its eigenvalue exceeds the ``percentile``-th percentile
    of the same-rank eigenvalue of random normal data of the same shape (counting stops at
    the first component that does not).

    Parameters
    ----------
    Y : (N, q) labels.
    names : q dimension names.
    n_iter : random matrices for parallel analysis.
    seed : seed of the random matrices.
    percentile : percentile of the random eigenvalues used as threshold.
    loading_threshold : loadings with |l| above this are listed per significant factor.
    n_scores : number of factor scores to return (default: the number of significant
        factors, at least 1).

    Returns
    -------
    dict with ``eigenvalues`` and ``pa_threshold`` / ``pa_mean`` (q each, for the scree
    plot), ``explained_variance_ratio``, ``cumulative_variance``, ``n_significant``,
    ``n_components_90`` / ``n_components_95``, ``loadings`` (q x q nested list; loading =
    eigenvector * sqrt(eigenvalue) = correlation of a dimension with the component),
    ``factors`` (per significant factor: its dimensions with |loading| > threshold, sorted),
    ``rotated_loadings`` (q x n_significant, varimax) and ``rotated_factors`` (same listing
    for the rotated factors, which are easier to name than the unrotated PCs),
    ``scores`` (**ndarray** (N, n_scores): standardised component scores, unit variance),
    and ``headline``.
    """
    Y = _as_2d("Y", Y)
    n, q = Y.shape
    names = _names(names, q)
    _check_variance("Y", Y, names)
    evals, evecs, Zs = pca_correlation(Y)
    thr, mean_rand = parallel_analysis_thresholds(n, q, n_iter=n_iter, percentile=percentile,
                                                  seed=seed)
    n_sig = _leading_count(evals, thr)
    ratio = evals / evals.sum()
    cum = np.cumsum(ratio)
    n90 = int(np.argmax(cum >= 0.90 - 1e-12) + 1)
    n95 = int(np.argmax(cum >= 0.95 - 1e-12) + 1)
    loadings = evecs * np.sqrt(evals)

    factors = [{"factor": k + 1, "eigenvalue": float(evals[k]),
                "dims": _dims_above(loadings[:, k], names, loading_threshold)}
               for k in range(n_sig)]
    rotated = varimax(loadings[:, :n_sig]) if n_sig >= 2 else loadings[:, :n_sig]
    rotated_factors = [{"factor": k + 1, "variance": float((rotated[:, k] ** 2).sum()),
                        "dims": _dims_above(rotated[:, k], names, loading_threshold)}
                       for k in range(n_sig)]

    k_scores = max(n_sig, 1) if n_scores is None else int(n_scores)
    if not 1 <= k_scores <= q:
        raise ValueError(f"n_scores: must be in [1, {q}], got {n_scores}")
    scores = Zs @ evecs[:, :k_scores] / np.sqrt(np.maximum(evals[:k_scores], 1e-12))

    return {
        "names": names,
        "eigenvalues": evals.tolist(),
        "pa_threshold": thr.tolist(),
        "pa_mean": mean_rand.tolist(),
        "pa_percentile": percentile,
        "pa_n_iter": n_iter,
        "explained_variance_ratio": ratio.tolist(),
        "cumulative_variance": cum.tolist(),
        "n_significant": n_sig,
        "n_components_90": n90,
        "n_components_95": n95,
        "loadings": loadings.tolist(),
        "loading_threshold": loading_threshold,
        "factors": factors,
        "rotated_loadings": rotated.tolist(),
        "rotated_factors": rotated_factors,
        "scores": scores,
        "headline": {
            "n_significant_factors": n_sig,
            "n_components_90": n90,
            "n_components_95": n95,
            "first_eigenvalue": _fl(evals[0]),
            "var_explained_first": _fl(ratio[0]),
            "var_explained_significant": _fl(cum[n_sig - 1]) if n_sig else 0.0,
        },
    }
