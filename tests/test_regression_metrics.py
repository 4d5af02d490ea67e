import numpy as np
import pytest

from pianoeval.regression_metrics import pairwise_ranking_accuracy, r2_per_dim, summarize_regression


def _y(n=50, k=3, seed=0):
    return np.random.default_rng(seed).random((n, k))


def test_r2_perfect_and_mean():
    y = _y()
    np.testing.assert_allclose(r2_per_dim(y, y), 1.0)
    np.testing.assert_allclose(r2_per_dim(y, np.broadcast_to(y.mean(0), y.shape)), 0.0, atol=1e-12)


def test_r2_matches_sklearn_and_constant_column_is_nan():
    from sklearn.metrics import r2_score

    y, p = _y(seed=1), _y(seed=2)
    np.testing.assert_allclose(r2_per_dim(y, p), r2_score(y, p, multioutput="raw_values"))
    y[:, 1] = 0.3
    assert np.isnan(r2_per_dim(y, p)[1])


def test_ranking_accuracy_monotone_reversed_constant():
    y = _y(n=40)
    np.testing.assert_allclose(pairwise_ranking_accuracy(y, 2 * y + 1), 1.0)
    np.testing.assert_allclose(pairwise_ranking_accuracy(y, -y), 0.0)
    np.testing.assert_allclose(pairwise_ranking_accuracy(y, np.zeros_like(y)), 0.5)


def test_ranking_accuracy_brute_force_with_ties():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, (30, 2)).astype(float)  # ties in truth
    p = rng.integers(0, 4, (30, 2)).astype(float)  # ties in prediction
    g = rng.integers(0, 3, 30)
    for groups in (None, g):
        expect = []
        for k in range(2):
            s = c = 0.0
            for i in range(30):
                for j in range(i + 1, 30):
                    if y[i, k] == y[j, k] or (groups is not None and g[i] != g[j]):
                        continue
                    c += 1
                    dp = p[i, k] - p[j, k]
                    s += 0.5 if dp == 0 else float(np.sign(dp) == np.sign(y[i, k] - y[j, k]))
            expect.append(s / c)
        np.testing.assert_allclose(pairwise_ranking_accuracy(y, p, groups, chunk_size=7), expect)


def test_ranking_accuracy_groups_restrict_pairs():
    # Within each piece the order is right, but piece B is rated higher overall and predicted lower.
    y = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    p = np.array([0.5, 0.6, 0.7, 0.1, 0.2, 0.3])
    g = np.array(["A", "A", "A", "B", "B", "B"])
    assert pairwise_ranking_accuracy(y, p, g)[0] == 1.0
    assert pairwise_ranking_accuracy(y, p)[0] == pytest.approx(6 / 15)  # 6 within-piece pairs of 15


def test_summarize_regression_keys_and_folds():
    y = _y(n=60, k=2, seed=4)
    p = y + np.random.default_rng(5).normal(0, 0.1, y.shape)
    folds = np.repeat([0, 1, 2], 20)
    s = summarize_regression(y, p, ["a", "b"], fold_ids=folds, groups=np.repeat(np.arange(6), 10))
    assert s["n"] == 60 and list(s["r2"]) == ["a", "b"] and list(s["ranking_accuracy"]) == ["a", "b"]
    assert s["r2_mean"] == pytest.approx(np.mean(r2_per_dim(y, p)))
    assert set(s["fold_r2_mean"]) == {"0", "1", "2"}
    assert s["fold_r2_mean"]["1"] == pytest.approx(np.mean(r2_per_dim(y[20:40], p[20:40])))
    assert 0.5 < s["ranking_accuracy_mean"] <= 1.0
    assert "fold_r2_mean" not in summarize_regression(y, p, ["a", "b"])


def test_bad_input_raises():
    y = _y()
    with pytest.raises(ValueError, match="shape"):
        r2_per_dim(y, y[:, :2])
    with pytest.raises(ValueError, match="dim_names"):
        summarize_regression(y, y, ["a"])
    bad = y.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        pairwise_ranking_accuracy(bad, y)


def test_within_group_r2_ignores_group_levels():
    from pianoeval.regression_metrics import within_group_r2

    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(10), 6)
    level = rng.normal(0, 5, 10)[groups][:, None]
    within = rng.normal(0, 1, (60, 2))
    y = level + within
    # knowing only the group levels: 0 within groups (yet a high ordinary R²)
    assert within_group_r2(y, level + 0.0 * within, groups) == pytest.approx([0.0, 0.0], abs=1e-12)
    assert r2_per_dim(y, np.broadcast_to(level, y.shape)).min() > 0.9
    # right within groups, wrong levels: 1 within groups
    assert within_group_r2(y, within - 100.0, groups) == pytest.approx([1.0, 1.0])
    assert within_group_r2(y, -within, groups) == pytest.approx([-3.0, -3.0])  # 1 - 4 SS / SS
    s = summarize_regression(y, level + 0.5 * within, ["a", "b"], passages=groups)
    assert s["within_passage"]["n_passages"] == 10 and s["within_passage"]["ranking_accuracy_mean"] == 1.0
    assert s["within_passage"]["r2_mean"] == pytest.approx(0.75)
