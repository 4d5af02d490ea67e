import json

import numpy as np
import pytest

from pianoeval.audit.reliability import rater_reliability


def _design(n_seg, k_min, k_max, n_raters=40, seed=0):
    """Unbalanced crowd design: each segment rated by a random subset of raters."""
    rng = np.random.default_rng(seed)
    k = rng.integers(k_min, k_max + 1, n_seg)
    seg = np.repeat(np.arange(n_seg), k)
    rater = np.concatenate([rng.choice(n_raters, kk, replace=False) for kk in k])
    return seg, rater, rng


def _oneway_reference(seg, y):
    """Textbook one-way ANOVA ICC(1,1) with per-segment loops (unbalanced k0)."""
    groups = [y[seg == s] for s in np.unique(seg)]
    groups = [g[~np.isnan(g)] for g in groups]
    groups = [g for g in groups if len(g)]
    n, N = len(groups), sum(len(g) for g in groups)
    grand = np.concatenate(groups).mean()
    msb = sum(len(g) * (g.mean() - grand) ** 2 for g in groups) / (n - 1)
    msw = sum(((g - g.mean()) ** 2).sum() for g in groups) / (N - n)
    k0 = (N - sum(len(g) ** 2 for g in groups) / N) / (n - 1)
    return (msb - msw) / (msb + (k0 - 1) * msw), N / n


def test_perfect_agreement_is_one():
    seg, rater, rng = _design(150, 2, 7)
    truth = rng.integers(1, 8, (150, 3)).astype(float)
    out = rater_reliability(seg, rater, truth[seg], ["a", "b", "c"], n_splits=20)
    for d in "abc":
        r = out["per_dim"][d]
        assert r["icc1_1"] == pytest.approx(1.0) and r["icc1_k"] == pytest.approx(1.0)
        assert r["split_half_sb"] == pytest.approx(1.0) and r["noise_ceiling"] == pytest.approx(1.0)
    assert out["headline"]["mean_noise_ceiling"] == pytest.approx(1.0)


def test_pure_noise_is_zero():
    seg, rater, rng = _design(400, 3, 8, seed=1)
    ratings = rng.integers(1, 8, (len(seg), 4)).astype(float)
    out = rater_reliability(seg, rater, ratings, n_splits=50, seed=0)
    for r in out["per_dim"].values():
        assert abs(r["icc1_1"]) < 0.05
        assert abs(r["split_half_sb"]) < 0.2
        assert r["noise_ceiling"] < 0.25
    assert abs(out["mean"]["icc1_1"]) < 0.02


def test_known_icc_and_reference_and_nan():
    # true-score variance 1, rating noise variance 1 -> ICC(1,1) = 0.5; mean k = 4.5
    seg, rater, rng = _design(1500, 2, 7, seed=2)
    truth = rng.standard_normal((1500, 2))
    ratings = truth[seg] + rng.standard_normal((len(seg), 2))
    ratings[rng.random(ratings.shape) < 0.1] = np.nan  # missing ratings
    out = rater_reliability(seg, rater, ratings, ["x", "y"], n_splits=30, seed=0)
    json.dumps({k: v for k, v in out.items() if k != "scores"}, allow_nan=False)
    for j, d in enumerate("xy"):
        r = out["per_dim"][d]
        ref_icc, ref_k = _oneway_reference(seg, ratings[:, j])
        assert r["icc1_1"] == pytest.approx(ref_icc, abs=1e-10)
        assert r["k_mean"] == pytest.approx(ref_k)
        assert r["icc1_1"] == pytest.approx(0.5, abs=0.05)
        expected_k = ref_k * 0.5 / (1 + (ref_k - 1) * 0.5)
        assert r["icc1_k"] == pytest.approx(expected_k, abs=0.03)
        # split-half with Spearman-Brown estimates the same reliability of the mean
        assert r["split_half_sb"] == pytest.approx(r["icc1_k"], abs=0.05)
        assert r["n_ratings"] == int((~np.isnan(ratings[:, j])).sum())
    assert out["counts"]["n_segments"] == 1500 and out["counts"]["n_duplicate_rows"] == 0


def test_determinism_duplicates_and_validation():
    seg, rater, rng = _design(100, 2, 6, seed=3)
    ratings = rng.standard_normal((100, 2))[seg] + rng.standard_normal((len(seg), 2))
    a = rater_reliability(seg, rater, ratings, n_splits=10, seed=7)
    b = rater_reliability(seg, rater, ratings, n_splits=10, seed=7)
    c = rater_reliability(seg, rater, ratings, n_splits=10, seed=8)
    assert a == b
    assert a["per_dim"]["dim0"]["split_half_sb"] != c["per_dim"]["dim0"]["split_half_sb"]
    assert a["per_dim"]["dim0"]["icc1_1"] == c["per_dim"]["dim0"]["icc1_1"]
    seg2, rater2 = np.append(seg, seg[0]), np.append(rater, rater[0])
    ratings2 = np.vstack([ratings, ratings[:1]])
    with pytest.raises(ValueError, match="1 duplicate"):
        rater_reliability(seg2, rater2, ratings2)
    kept = rater_reliability(seg2, rater2, ratings2, on_duplicate="keep", n_splits=5)
    assert kept["counts"]["n_duplicate_rows"] == 1
    with pytest.raises(ValueError, match="segment_ids"):
        rater_reliability(seg[:-1], rater, ratings)
    # string ids work too
    out = rater_reliability(np.array([f"s{s}" for s in seg]), rater.astype(str), ratings,
                            n_splits=10, seed=7)
    assert out["per_dim"]["dim0"]["icc1_1"] == pytest.approx(a["per_dim"]["dim0"]["icc1_1"])
