import json

import numpy as np

from pianoeval.audit.factors import (factor_structure, parallel_analysis_thresholds,
                                     random_correlation_eigenvalues)


def _two_factor(seed=0, n=400, q=12, noise=0.6):
    rng = np.random.default_rng(seed)
    F = rng.standard_normal((n, 2))
    L = np.zeros((2, q))
    L[0, : q // 2] = 1.5  # unequal strengths: distinct eigenvalues, PCs align with the blocks
    L[1, q // 2:] = 1.0
    L += 0.2 * rng.standard_normal((2, q))
    return F @ L + noise * rng.standard_normal((n, q)), F


def test_parallel_analysis_finds_two_factors():
    Y, F = _two_factor()
    out = factor_structure(Y, n_iter=300, seed=0)
    json.dumps({k: v for k, v in out.items() if k != "scores"}, allow_nan=False)
    assert out["n_significant"] == 2
    ev, thr = np.array(out["eigenvalues"]), np.array(out["pa_threshold"])
    assert np.isclose(ev.sum(), Y.shape[1]) and np.all(np.diff(ev) <= 1e-12)
    assert ev[1] > thr[1] and ev[2] < thr[2]
    assert len(out["factors"]) == 2
    # PCs mix the blocks a little; the strongest loadings of PC1 are block 1, and after
    # varimax each factor loads on exactly its own half of the dimensions.
    assert {d["dim"] for d in out["factors"][0]["dims"][:6]} == {f"dim{i}" for i in range(6)}
    rotated = [{d["dim"] for d in f["dims"]} for f in out["rotated_factors"]]
    assert rotated == [{f"dim{i}" for i in range(6)}, {f"dim{i}" for i in range(6, 12)}]
    scores = out["scores"]
    assert scores.shape == (400, 2) and np.allclose(scores.std(0), 1.0)
    beta, *_ = np.linalg.lstsq(scores, F - F.mean(0), rcond=None)
    r2 = 1 - ((F - F.mean(0) - scores @ beta) ** 2).sum(0) / ((F - F.mean(0)) ** 2).sum(0)
    assert np.all(r2 > 0.9)
    assert out["n_components_90"] >= 2 and out["n_components_95"] >= out["n_components_90"]
    assert out["headline"]["n_significant_factors"] == 2
    assert abs(np.array(out["loadings"])).max() <= 1 + 1e-9


def test_noise_has_no_factors_and_determinism():
    # At the 95th percentile about 1 in 20 pure-noise data sets shows a spurious factor.
    found = [factor_structure(np.random.default_rng(s).standard_normal((300, 10)), n_iter=200,
                              seed=3)["n_significant"] for s in range(10)]
    assert sum(found) <= 2 and max(found) <= 1
    Y = np.random.default_rng(0).standard_normal((300, 10))
    a = factor_structure(Y, n_iter=200, seed=3)
    b = factor_structure(Y, n_iter=200, seed=3)
    c = factor_structure(Y, n_iter=200, seed=4)
    assert a["n_significant"] == 0 and a["factors"] == []
    assert a["scores"].shape == (300, 1)  # at least one score column is always returned
    assert a["pa_threshold"] == b["pa_threshold"] and a["pa_threshold"] != c["pa_threshold"]


def test_random_eigenvalues_batched_consistent():
    ev = random_correlation_eigenvalues(50, 6, n_iter=40, seed=1, max_batch_bytes=8 * 50 * 6 * 7,
                                        method="data")
    assert ev.shape == (40, 6)
    assert np.allclose(ev.sum(1), 6.0)  # trace of a correlation matrix
    assert np.all(np.diff(ev, axis=1) <= 1e-12)
    # batch size does not change the draws
    assert np.allclose(ev, random_correlation_eigenvalues(50, 6, n_iter=40, seed=1, method="data"))
    # one draw checked against a direct computation
    z = np.random.default_rng(1).standard_normal((1, 50, 6))[0]
    assert np.allclose(ev[0], np.linalg.eigvalsh(np.corrcoef(z, rowvar=False))[::-1])
    thr, mean = parallel_analysis_thresholds(50, 6, n_iter=40, seed=1)
    assert np.all(thr >= mean) and mean[0] > 1.0


def test_wishart_draws_match_data_draws_in_distribution():
    wish = random_correlation_eigenvalues(60, 8, n_iter=4000, seed=2)
    data = random_correlation_eigenvalues(60, 8, n_iter=4000, seed=3, method="data")
    assert np.allclose(wish.sum(1), 8.0) and np.all(np.diff(wish, axis=1) <= 1e-12)
    se = np.sqrt(wish.var(0) / 4000 + data.var(0) / 4000)
    assert np.all(np.abs(wish.mean(0) - data.mean(0)) < 4 * se)  # same mean eigenvalue profile
    for q in (50, 95):
        assert np.allclose(np.percentile(wish, q, axis=0), np.percentile(data, q, axis=0), atol=0.03)
    # too few rows for a non-singular Wishart: falls back to drawing the data
    assert random_correlation_eigenvalues(5, 8, n_iter=3, seed=0).shape == (3, 8)
