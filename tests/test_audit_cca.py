import numpy as np
import pytest

from pianoeval.audit.cca import _pca_fit, cca_analysis, cca_fit, null_canonical_correlations
from pianoeval.io import read_json, write_json

from conftest import linear_labels


def _encoded(n=300, q=5, p=40, seed=0):
    return linear_labels(n, q, p, noise=0.05, seed=seed)


def test_cca_fit_matches_eigen_formula():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 6))
    Y = X[:, :3] @ rng.standard_normal((3, 4)) + rng.standard_normal((200, 4))
    rho, Wx, Wy = cca_fit(X, Y)
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    Sxx, Syy, Sxy = Xc.T @ Xc, Yc.T @ Yc, Xc.T @ Yc
    M = np.linalg.solve(Syy, Sxy.T) @ np.linalg.solve(Sxx, Sxy)
    ref = np.sqrt(np.sort(np.linalg.eigvals(M).real)[::-1])
    assert np.allclose(rho, ref, atol=1e-8)
    U, V = Xc @ Wx, Yc @ Wy
    assert np.allclose(U.T @ U, np.eye(4), atol=1e-8)
    assert np.allclose(np.diag(U.T @ V), rho, atol=1e-8)
    # a duplicated label column is harmless (rank-reduced)
    rho2, _, _ = cca_fit(X, np.column_stack([Y, Y[:, 0]]))
    assert np.allclose(rho2, rho, atol=1e-8)


def test_linear_encoding_high_canonical_corr(tmp_path):
    X, Y, folds, _ = _encoded()
    out = cca_analysis(X, Y, folds, n_pca=20, seed=0)
    assert out["canonical_corr"][0] > 0.95 and out["heldout_mean"][0] > 0.95
    assert out["n_above_threshold"] == 5 and out["n_heldout_above_threshold"] == 5
    assert out["n_above_null"] == 5 and out["n_pca_used"] == 20
    assert len(out["heldout_fold"]) == 4 and len(out["heldout_fold"][0]) == 5
    # Stewart-Love redundancy = mean in-sample OLS R^2 of standardised labels on the PCs
    Xs = (X - X.mean(0)) / X.std(0)
    P = Xs @ np.linalg.svd(Xs, full_matrices=False)[2][:20].T
    A = np.column_stack([np.ones(len(P)), P])
    res = Y - A @ np.linalg.lstsq(A, Y, rcond=None)[0]
    r2 = 1 - res.var(0) / Y.var(0)
    assert out["redundancy_y_given_x"] == pytest.approx(r2.mean(), abs=1e-8)
    write_json(tmp_path / "cca.json", out)
    assert read_json(tmp_path / "cca.json")["n_pca_used"] == 20


def test_random_features_do_not_transfer():
    _, Y, folds, rng = _encoded(seed=1)
    X = rng.standard_normal((len(Y), 40))
    out = cca_analysis(X, Y, folds, n_pca=20, seed=0)
    assert out["heldout_mean"][0] < 0.3
    assert out["n_above_null"] == 0
    # in-sample rho_1 is inflated by fitting 20 + 5 directions on 300 rows
    assert out["canonical_corr"][0] > out["heldout_mean"][0]
    assert out["canonical_corr"][0] < out["null_threshold"][0]
    a = cca_analysis(X, Y, folds, n_pca=20, seed=0)
    assert a["null_threshold"] == out["null_threshold"]


def test_null_and_caps():
    null = null_canonical_correlations(100, 4, 3, n_iter=30, seed=0,
                                       max_batch_bytes=8 * 100 * 7 * 4)
    assert null.shape == (30, 3) and np.all((null >= 0) & (null <= 1))
    assert np.allclose(null, null_canonical_correlations(100, 4, 3, n_iter=30, seed=0))
    X, Y, folds, _ = _encoded(n=40, p=8)
    out = cca_analysis(X, Y, folds, n_pca=50)
    assert out["n_pca_used"] == 8


def test_pca_gram_paths_match_svd():
    rng = np.random.default_rng(4)
    for n, p in ((60, 10), (30, 80)):  # primal and kernel (p > n) paths
        X = rng.standard_normal((n, p)) @ rng.standard_normal((p, p))
        Z = (X - X.mean(0)) / X.std(0)
        ref = Z @ np.linalg.svd(Z, full_matrices=False)[2][:5].T
        got = _pca_fit(X, 5)(X)
        assert np.allclose(np.abs(got), np.abs(ref), atol=1e-6)
