"""Validation statistics on planted data: a planted monotone relation is found, shuffled placements give
rho near 0 and uniform-ish p; Holm; the T2 validation table; T3 retrieval and variance split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pianoeval.audit.competition import competition_section, t2_validation
from pianoeval.dimensions import DIMENSIONS
from pianoeval.tiers.crossperformer import (chance_levels, cosine_similarity, retrieval_scores, variance_split,
                                            variance_split_ci, within_folder_permutation_p)
from pianoeval.stats import group_bootstrap_ci, group_permutation_p, holm_adjust, spearman_columns


def planted_t2(seed: int, effect: float, n_py: int = 60, per_py: int = 2) -> pd.DataFrame:
    """Performer-years with placement 7/40/80; predicted quality = -effect * rank(placement) + noise."""
    rng = np.random.default_rng(seed)
    place = rng.choice([7, 40, 80], size=n_py, p=[0.2, 0.3, 0.5])
    skill = -effect * (np.log(place) - np.log(40)) + rng.normal(0, 1, n_py)
    rows = []
    for g in range(n_py):
        for k in range(per_py):
            base = skill[g] + rng.normal(0, 0.5)
            dims = 0.5 + 0.05 * (base + rng.normal(0, 1, len(DIMENSIONS)))
            rows.append({"segment_id": f"py{g}@{k}", "performer_year": f"py{g}", "placement": place[g],
                         "folder": f"piece{k}", "seconds": 30 + rng.normal(0, 3), "percepiano_overlap": g == 0,
                         **dict(zip(DIMENSIONS, dims))})
    return pd.DataFrame(rows)


def test_planted_monotone_relation_is_found():
    res = t2_validation(planted_t2(0, effect=2.0), n_boot=300, n_perm=1000, seed=0)
    py = res["performer_year"]["overall"]
    assert res["performer_year"]["n"] == 59 and res["excluded"]["percepiano_overlap"] == 2  # py0 left out
    assert py["rho"] < -0.5 and py["ci_high"] < 0 and py["p_perm"] <= 2 / 1001
    seg = res["segment"]["overall"]
    assert seg["rho"] < -0.4 and seg["ci_high"] < 0 and res["segment"]["n"] == 118
    assert res["headline"]["performer_year.n_dims_holm_lt_0.05"] >= 10
    # every performer-year played both pieces: the within-piece rho keeps the planted relation
    assert res["within_piece"]["n_pieces"] == 2 and res["within_piece"]["rho"] < -0.4
    # the duration baseline is unrelated by construction
    assert abs(res["performer_year"]["baselines"]["duration"]["rho"]) < 0.35


def test_shuffled_placements_give_rho_near_zero_and_calibrated_p():
    rhos, ps, covered = [], [], 0
    for seed in range(30):
        res = t2_validation(planted_t2(seed, effect=0.0), n_boot=200, n_perm=200, seed=seed)
        o = res["performer_year"]["overall"]
        rhos.append(o["rho"])
        ps.append(o["p_perm"])
        covered += o["ci_low"] <= 0 <= o["ci_high"]
    assert abs(np.mean(rhos)) < 0.06 and np.std(rhos) < 0.2
    assert np.mean(np.asarray(ps) < 0.05) <= 0.15 and 0.3 < np.mean(ps) < 0.7
    assert covered >= 25  # a 95% interval covers the null value in most datasets


def test_rank_stat_helpers():
    x = np.arange(10.0)
    assert np.allclose(spearman_columns(np.column_stack([x, -x, np.ones(10)]), x)[:2], [1, -1])
    assert np.isnan(spearman_columns(np.ones((10, 1)), x)[0])
    rho, p = group_permutation_p(x[:, None], x, np.arange(10), n_perm=999, seed=0)
    assert rho[0] == pytest.approx(1.0) and p[0] <= 0.002
    lo, hi = group_bootstrap_ci(x[:, None], x, np.arange(10), n_boot=100, seed=0)
    assert lo[0] == pytest.approx(1.0) and hi[0] == pytest.approx(1.0)
    assert holm_adjust([0.01, 0.04, 0.03, None]) == pytest.approx([0.03, 0.06, 0.06, None])
    with pytest.raises(ValueError, match="group_index"):
        group_permutation_p(x[:, None], x[:3], np.arange(10), n_perm=10, seed=0)


def test_competition_section_reads_a_t2_table(tmp_path):
    path = tmp_path / "t2.csv"
    planted_t2(1, effect=2.0).to_csv(path, index=False)
    out = competition_section({"table": str(path), "n_boot": 100, "n_perm": 100, "seed": 0})
    assert out["status"] == "ok" and out["kind"] == "t2" and out["headline"]["performer_year.rho"] < -0.4
    bad = planted_t2(1, effect=2.0)
    bad.loc[1, "placement"] = 80 if bad.loc[0, "placement"] != 80 else 7  # py0's two rows disagree
    with pytest.raises(ValueError, match="performer-year 'py0' has several placements"):
        t2_validation(bad, exclude_overlap=False, n_boot=10, n_perm=10)


def planted_t3(seed: int, passage_sd: float, performer_sd: float, folders: int = 6, perfs: int = 3, windows: int = 3):
    rng = np.random.default_rng(seed)
    rows, E = [], []
    for f in range(folders):
        pas = rng.normal(0, passage_sd, (windows, 16))
        per = rng.normal(0, performer_sd, (perfs, 16))
        for a in range(perfs):
            for b in range(windows):
                rows.append((f"F{f}", f"F{f}@{b}", f"F{f}/p{a}"))
                E.append(pas[b] + per[a] + rng.normal(0, 1, 16))
    t = pd.DataFrame(rows, columns=["folder", "passage", "performance"])
    return t, np.asarray(E)


def test_retrieval_and_variance_split_on_planted_embeddings():
    t, E = planted_t3(0, passage_sd=3.0, performer_sd=0.0)
    top1, ap = retrieval_scores(cosine_similarity(E), t["passage"], t["performance"])
    assert np.nanmean(top1) > 0.9 and np.nanmean(ap) > 0.9
    split = variance_split(E, t["folder"], t["passage"], t["performance"])
    assert split["passage"] > 0.8 and split["performer"] < 0.1
    ci = variance_split_ci(split["ss_by_folder"], n_boot=200, seed=0)
    assert ci["passage"][0] > 0.6
    p, _ = within_folder_permutation_p(E, t["passage"], t["performance"], t["folder"], n_perm=50, seed=0)
    assert p <= 2 / 51
    # performer effect only: passage retrieval at chance, variance goes to the performer
    t0, E0 = planted_t3(1, passage_sd=0.0, performer_sd=3.0)
    top1, ap = retrieval_scores(cosine_similarity(E0), t0["passage"], t0["performance"])
    ch = chance_levels(t0["passage"], t0["performance"])
    assert abs(np.nanmean(top1) - ch["top1"]) < 0.1
    s0 = variance_split(E0, t0["folder"], t0["passage"], t0["performance"])
    assert s0["performer"] > 0.8 and s0["passage"] < 0.1
    p0, _ = within_folder_permutation_p(E0, t0["passage"], t0["performance"], t0["folder"], n_perm=50, seed=0)
    assert p0 > 0.05
    with pytest.raises(ValueError, match="not balanced"):
        variance_split(E[:-1], t["folder"][:-1], t["passage"][:-1], t["performance"][:-1])


def test_expected_average_precision_matches_simulation():
    t, _ = planted_t3(2, 0.0, 0.0, folders=3)
    ch = chance_levels(t["passage"], t["performance"])
    rng = np.random.default_rng(0)
    sims = [np.nanmean(retrieval_scores(rng.normal(size=(len(t), len(t))), t["passage"], t["performance"])[1])
            for _ in range(300)]
    assert ch["map"] == pytest.approx(np.mean(sims), abs=0.01)


def test_weighted_bootstrap_equals_explicit_resampling():
    from pianoeval.stats import _weighted_corr, _weighted_ranks
    from scipy.stats import rankdata, spearmanr
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=12), rng.choice([7.0, 40.0, 80.0], size=12)  # ties in y, like placements
    W = rng.integers(0, 3, size=(5, 12)).astype(float)
    W[:, 0] += 1
    r = _weighted_corr(_weighted_ranks(x, W)[:, :, None], _weighted_ranks(y, W), W)[:, 0]
    for b in range(5):
        rows = np.repeat(np.arange(12), W[b].astype(int))
        assert np.allclose(_weighted_ranks(y, W)[b][W[b] > 0], rankdata(y[rows])[np.searchsorted(rows, np.flatnonzero(W[b] > 0))])
        assert r[b] == pytest.approx(spearmanr(x[rows], y[rows])[0])
