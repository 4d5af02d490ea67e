"""The shared inference helpers: exact values by hand, and their behaviour on null data."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from pianoeval.stats import (
    auc_columns,
    group_sums,
    holm_adjust,
    holm_family,
    paired_auc_test,
    permutation_interval,
    permutation_pvalue,
    sign_flip_test,
    tost_pvalue,
    within_group_permutations,
)


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04, 0.5 -> x4, x3, x2, x1 = 0.04, 0.09, 0.08 -> running max 0.09, 0.5
    assert holm_adjust([0.01, 0.04, None, 0.03, 0.5]) == pytest.approx([0.04, 0.09, None, 0.09, 0.5])
    assert holm_adjust([0.3, float("nan")]) == [0.3, None]  # one test: unchanged
    assert holm_adjust([0.6, 0.7]) == [1.0, 1.0]  # capped
    assert holm_family({"a": 0.02, "b": None, "c": 0.02}) == {"a": 0.04, "b": None, "c": 0.04}
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        holm_adjust([1.2])


def test_holm_controls_familywise_error_on_null_pvalues():
    rng = np.random.default_rng(0)
    p = rng.random((2000, 10))  # 2000 families of 10 true nulls
    rejected = np.array([min(holm_adjust(row)) <= 0.05 for row in p])
    assert rejected.mean() <= 0.06  # FWER <= alpha (Bonferroni-like: about 0.049)
    raw = (p <= 0.05).any(axis=1).mean()
    assert raw > 0.35  # uncorrected, some test of the 10 rejects in ~40% of the families


def test_permutation_pvalue_counts_ties_against_the_alternative():
    null = np.array([0.1, 0.2, 0.3, 0.3])
    assert permutation_pvalue(null, 0.3) == pytest.approx(3 / 5)
    assert permutation_pvalue(null, 0.35) == pytest.approx(1 / 5)
    assert permutation_pvalue(null, 0.1, "less") == pytest.approx(2 / 5)
    assert permutation_pvalue(np.array([-2.0, -1, 0, 1, 2]), 2.0, "two-sided") == pytest.approx(3 / 6)
    with pytest.raises(ValueError, match="alternative"):
        permutation_pvalue(null, 0.0, "both")


def test_within_group_permutations_keep_group_counts():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 60)
    g = np.repeat(["a", "b", "c", "d"], 15)
    P = within_group_permutations(y, g, 50, seed=3)
    assert P.shape == (60, 50)
    for grp in np.unique(g):
        sel = g == grp
        assert (P[sel].sum(0) == y[sel].sum()).all()
    assert (P != y[:, None]).any(axis=0).mean() > 0.9  # they do shuffle
    assert np.array_equal(P, within_group_permutations(y, g, 50, seed=3))


def test_auc_columns_matches_sklearn_with_ties():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 80)
    s = rng.normal(size=(80, 4))
    s[:, 2] = np.round(s[:, 2])  # ties
    assert auc_columns(y, s) == pytest.approx([roc_auc_score(y, s[:, k]) for k in range(4)])
    Y = np.column_stack([y, 1 - y])
    assert auc_columns(Y, s[:, 0]) == pytest.approx([roc_auc_score(y, s[:, 0]), 1 - roc_auc_score(y, s[:, 0])])
    assert np.isnan(auc_columns(np.ones(5), np.arange(5.0)))[0]


def test_permutation_interval_covers_the_null_value_at_its_level():
    """Null data: the observed statistic is one more draw from the null's distribution (exchangeable)."""
    rng = np.random.default_rng(4)
    # A cross-validated AUC under the null is biased below 0.5; observed and permuted values share it.
    draws = 0.47 + 0.05 * rng.standard_normal((400, 200))
    covered = []
    for row in draws:
        lo, hi = permutation_interval(row[0], row[1:])
        covered.append(lo <= 0.5 <= hi)
    assert 0.94 <= np.mean(covered) <= 0.99
    naive = np.mean([abs(row[0] - 0.5) <= 1.96 * row[1:].std() for row in draws])  # centred on 0.5, no shift
    assert naive < np.mean(covered)
    # 101 null values: m = floor(0.025 * 102) - 1 = 1, so the 2nd smallest and 2nd largest bound it
    lo, hi = permutation_interval(0.8, np.linspace(0.4, 0.6, 101))
    assert (lo, hi) == pytest.approx((0.8 - 0.098, 0.8 + 0.098))
    assert permutation_interval(0.5, np.linspace(0, 1, 30)) == (float("-inf"), float("inf"))  # 29 < 39 draws
    # exact: among 100 exchangeable values, 0.5 is covered iff the observed rank is 3..98 (96%)
    null = np.arange(99) / 98
    covered = [permutation_interval(v, null)[0] <= 0.5 <= permutation_interval(v, null)[1]
               for v in np.r_[null - 1e-6, 1.1]]
    assert np.mean(covered) == pytest.approx(0.96)


def test_paired_auc_test_on_null_and_alternative():
    rng = np.random.default_rng(5)
    n, groups = 120, np.repeat(np.arange(12), 10)
    rejections, equivalent = [], []
    for _ in range(200):
        y = rng.integers(0, 2, n)
        signal = y + rng.normal(0, 1.5, n)
        a, b = signal + rng.normal(0, 1, n), signal + rng.normal(0, 1, n)  # two equally good models
        r = paired_auc_test(y, a, b, groups, n_perm=200, seed=int(rng.integers(1 << 30)), margin=0.1)
        rejections.append(r["p"] <= 0.05)
        equivalent.append(r["p_tost"] <= 0.05)
        assert r["ci_low"] <= r["delta"] <= r["ci_high"]
    assert np.mean(rejections) <= 0.08  # level 0.05 (Monte-Carlo slack)
    assert np.mean(equivalent) > 0.3  # equal models are often shown equivalent within 0.1
    y = rng.integers(0, 2, n)
    good, bad = y + rng.normal(0, 0.5, n), rng.normal(0, 1, n)
    r = paired_auc_test(y, bad, good, groups, n_perm=500, seed=0, margin=0.05)
    assert r["delta"] > 0.3 and r["p"] < 0.01 and r["p_tost"] > 0.5 and r["ci_low"] > 0
    assert r["n_groups"] == 12 and r["auc_other"] == pytest.approx(roc_auc_score(y, good))


def test_tost_needs_the_interval_inside_the_margin():
    null = np.linspace(-0.05, 0.05, 201)
    assert tost_pvalue(0.0, null, 0.1) < 0.01  # null spread 0.05 < margin 0.1
    assert tost_pvalue(0.0, null, 0.03) > 0.05  # spread larger than the margin: no equivalence
    assert tost_pvalue(0.08, null, 0.1) > 0.05  # close to the margin
    with pytest.raises(ValueError, match="margin"):
        tost_pvalue(0.0, null, 0.0)


def test_sign_flip_test_level_and_power():
    rng = np.random.default_rng(6)
    d = rng.normal(0, 1, (300, 20))  # 300 null data sets of 20 symmetric group differences
    p = np.array([sign_flip_test(row, n_perm=1000, seed=i)["p"] for i, row in enumerate(d)])
    assert np.mean(p <= 0.05) <= 0.08
    assert sign_flip_test(rng.normal(1, 1, 20), n_perm=1000)["p"] < 0.01
    G = group_sums(np.ones((6, 2)), ["b", "a", "b", "c", "a", "a"])
    assert G.tolist() == [[3, 3], [2, 2], [1, 1]]
