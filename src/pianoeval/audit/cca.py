"""Section 7: canonical correlation analysis between the embedding (PCA-reduced) and the labels.

CCA is computed in closed form: centre both blocks, take their thin SVDs (dropping
numerically null directions, so collinear label dimensions are harmless), and the singular
values of U_x^T U_y are the canonical correlations. No iterations, unlike sklearn's CCA.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from pianoeval.audit import _as_2d, _fl, _folds, _leading_count, _names


def _orth(A: np.ndarray, rtol: float = 1e-10):
    """Thin SVD of column-centred ``A`` keeping directions with s > rtol * s_max."""
    U, s, Vt = np.linalg.svd(A - A.mean(0), full_matrices=False)
    keep = s > rtol * s[0] if s.size and s[0] > 0 else np.zeros(s.size, bool)
    return U[:, keep], s[keep], Vt[keep]


def cca_fit(X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Canonical correlations and directions of X (n, p) and Y (n, q).

    Returns
    -------
    rho : (m,) canonical correlations, descending, m = min(rank X, rank Y).
    Wx : (p, m), Wy : (q, m) directions: (X - mean) @ Wx are the X canonical variates
        (orthonormal columns), likewise for Y.
    """
    Ux, sx, Vx = _orth(X)
    Uy, sy, Vy = _orth(Y)
    P, rho, Qt = np.linalg.svd(Ux.T @ Uy, full_matrices=False)
    m = min(len(sx), len(sy))
    return np.clip(rho[:m], 0.0, 1.0), (Vx.T / sx) @ P[:, :m], (Vy.T / sy) @ Qt.T[:, :m]


def _pca_fit(X: np.ndarray, n_comp: int):
    """z-score + PCA fit on X (n, p); returns a transform for new rows.

    The leading directions come from the eigendecomposition of the smaller Gram matrix
    (Z^T Z, or Z Z^T when p > n), much cheaper than an SVD of Z for MuQ-sized p.
    """
    mu, sd = X.mean(0), X.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    Z = (X - mu) / sd
    if Z.shape[1] <= Z.shape[0]:
        V = np.linalg.eigh(Z.T @ Z)[1][:, ::-1][:, :n_comp]
    else:
        lam, U = np.linalg.eigh(Z @ Z.T)
        lam, U = lam[::-1][:n_comp], U[:, ::-1][:, :n_comp]
        V = Z.T @ U / np.sqrt(np.maximum(lam, 1e-300))
    return lambda A: ((A - mu) / sd) @ V


def null_canonical_correlations(n: int, p: int, q: int, *, n_iter: int = 100, seed: int = 0,
                                max_batch_bytes: int = 2**26) -> np.ndarray:
    """Canonical correlations of independent random normal blocks (n, p) and (n, q).

    Batched: centre, batched QR for orthonormal bases, batched singular values of Qx^T Qy.

    Returns
    -------
    (n_iter, min(p, q)) descending.
    """
    rng = np.random.default_rng(seed)
    batch = max(1, min(n_iter, max_batch_bytes // (8 * n * (p + q))))
    out = np.empty((n_iter, min(p, q)))
    for s in range(0, n_iter, batch):
        b = min(batch, n_iter - s)
        z = rng.standard_normal((b, n, p + q))  # one draw per batch: results ignore batching
        z -= z.mean(1, keepdims=True)
        qx, qy = np.linalg.qr(z[..., :p])[0], np.linalg.qr(z[..., p:])[0]
        out[s:s + b] = np.linalg.svd(qx.transpose(0, 2, 1) @ qy, compute_uv=False)
    return out


def cca_analysis(
    X: np.ndarray,
    Y: np.ndarray,
    fold_ids: np.ndarray,
    names: Sequence[str] | None = None,
    *,
    n_pca: int = 50,
    seed: int = 0,
    threshold: float = 0.3,
    n_null: int = 100,
    null_percentile: float = 95,
) -> dict:
    """In-sample and held-out CCA between PCA-reduced embeddings and labels.

    Definitions
    -----------
    * X is z-scored and reduced to its first ``n_pca`` principal components (capped at p and
      at the smallest training set size - 1; the used value is reported).
    * ``mean_sq_canonical_corr`` = mean of rho_k^2 over all m canonical pairs: the average
      proportion of variance shared by a canonical pair.
    * ``redundancy_y_given_x`` (Stewart-Love) = sum_k rho_k^2 * mean_j corr(Y_j, v_k)^2 with
      v_k the label canonical variates: the fraction of total standardised label variance
      explained by the embedding PCs (equals the mean in-sample OLS R^2 of the labels on the
      PCs when Y has full rank <= n_pca).
    * In-sample correlations are optimistic: random blocks of this shape already give
      rho_1 of about sqrt(n_pca / N) + sqrt(q / N). ``null_threshold`` is the
      ``null_percentile``-th percentile of canonical correlations of ``n_null`` random normal
      block pairs of the same shapes; ``n_above_null`` counts leading components above it.
    * Held out: for each fold, z-scoring, PCA and CCA directions are fit on the other folds;
      the held-out fold is projected and each pair of variates is correlated there (signed: a
      negative value means the direction does not transfer).

    Parameters
    ----------
    X : (N, p) pooled embeddings. Y : (N, q) labels. fold_ids : (N,) int.
    names : q names. seed : seed of the null draws. threshold : counts of rho > threshold.

    Returns
    -------
    dict with ``canonical_corr`` (m,), ``n_above_threshold``, ``mean_sq_canonical_corr``,
    ``redundancy_y_given_x``, ``y_structure`` ({dim: [corr with v_1..v_k]} for the first 3),
    ``null_threshold`` (m,), ``n_above_null``, ``heldout_fold`` ([folds][m]),
    ``heldout_mean`` (m,), ``n_heldout_above_threshold``, ``n_pca_used`` and ``headline``.
    """
    Y = _as_2d("Y", Y)
    X = _as_2d("X", X, n_rows=Y.shape[0])
    names = _names(names, Y.shape[1])
    fold_ids, folds = _folds(fold_ids, len(Y))
    n, q = Y.shape
    min_train = min(int((fold_ids != f).sum()) for f in folds)
    k = int(min(n_pca, X.shape[1], min_train - 1))
    if k < 1:
        raise ValueError(f"n_pca: no components possible (n_pca={n_pca}, p={X.shape[1]}, "
                         f"smallest training fold {min_train})")

    P = _pca_fit(X, k)(X)
    rho, _, Wy = cca_fit(P, Y)
    m = rho.size
    v = (Y - Y.mean(0)) @ Wy
    ys = (Y - Y.mean(0)) / np.where(Y.std(0) > 0, Y.std(0), 1.0)
    vs = (v - v.mean(0)) / v.std(0)
    structure = ys.T @ vs / n  # (q, m) corr(Y_j, v_k)
    redundancy = float(np.sum(rho ** 2 * (structure ** 2).mean(0)))

    null = null_canonical_correlations(n, k, q, n_iter=n_null, seed=seed)
    null_thr = np.percentile(null, null_percentile, axis=0)[:m]

    held = np.full((len(folds), m), np.nan)
    for i, f in enumerate(folds):
        tr, te = fold_ids != f, fold_ids == f
        transform = _pca_fit(X[tr], k)
        Ptr, Pte = transform(X[tr]), transform(X[te])
        _, wx, wy = cca_fit(Ptr, Y[tr])
        u, w = (Pte - Ptr.mean(0)) @ wx, (Y[te] - Y[tr].mean(0)) @ wy
        mm = min(m, u.shape[1])
        u, w = u[:, :mm] - u[:, :mm].mean(0), w[:, :mm] - w[:, :mm].mean(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            held[i, :mm] = (u * w).sum(0) / np.sqrt((u * u).sum(0) * (w * w).sum(0))
    held_mean = np.nanmean(held, axis=0)

    n_above = int((rho > threshold).sum())
    n_held = int((held_mean > threshold).sum())
    n_null = _leading_count(rho, null_thr)
    return {
        "names": names,
        "n_pca_used": k,
        "canonical_corr": rho.tolist(),
        "threshold": threshold,
        "n_above_threshold": n_above,
        "mean_sq_canonical_corr": float(np.mean(rho ** 2)),
        "redundancy_y_given_x": redundancy,
        "y_structure": {nm: structure[j, :3].tolist() for j, nm in enumerate(names)},
        "null_threshold": null_thr.tolist(),
        "null_percentile": null_percentile,
        "n_above_null": n_null,
        "heldout_fold": [[_fl(x) for x in row] for row in held],
        "heldout_mean": [_fl(x) for x in held_mean],
        "n_heldout_above_threshold": n_held,
        "headline": {
            "first_canonical_corr": _fl(rho[0]),
            f"n_canonical_gt_{threshold}": n_above,
            "n_canonical_above_null": n_null,
            "mean_sq_canonical_corr": _fl(np.mean(rho ** 2)),
            "redundancy_y_given_x": _fl(redundancy),
            "heldout_first_canonical_corr": _fl(held_mean[0]),
            f"n_heldout_canonical_gt_{threshold}": n_held,
        },
    }
