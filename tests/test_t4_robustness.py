"""Robustness metrics: planted identity and strong-noise cases through the stage's own path (augment
-> embed -> out-of-fold scoring -> metrics), the intervals' behaviour on null data, and the passage rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from pianoeval.audio_store import AudioStore, AudioStoreWriter
from pianoeval.dimensions import DIMENSIONS, MEAN_COLUMNS
from pianoeval.extractors import load_model
from pianoeval.masterclass.scoring import LeakageError
from pianoeval.models.quality_mlp import QualityHead
from pianoeval.regression_metrics import pairwise_ranking_accuracy
from pianoeval.t4.augment import parse_grid
from pianoeval.t4.evaluate import (percepiano_condition, percepiano_pooled, score_all_checkpoints, score_out_of_fold,
                                   select_passages, t4_condition)
from pianoeval.t4.robustness import (between_item_cosine, bootstrap_weights, mean_shift_ci, pair_cosine, ranking_drop,
                                     ranking_pairs, standardizer, stratified_bootstrap_weights, weighted_pearson)

SR = 24000
K = len(DIMENSIONS)


def tones(seed: int, seconds: float = 2.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = np.zeros_like(t)
    for onset in np.arange(0.05, seconds - 0.3, rng.uniform(0.15, 0.5)):
        f0 = 55 * 2 ** (rng.integers(0, 48) / 12)
        x += rng.uniform(0.2, 1.0) * np.sin(2 * np.pi * f0 * t) * np.where(t >= onset, np.exp(-(t - onset) * 3), 0)
    return (rng.uniform(0.1, 0.6) * x / np.abs(x).max()).astype(np.float32)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """12 segments of 2 passages by 4 pianists, a small log-mel extractor and two fold heads."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("store") / "audio"
    keys = [f"P{p}_8bars_{pl}_{s}" for s in (1, 2) for pl in range(6) for p in ("X",)]
    writer = AudioStoreWriter(folder, SR)
    for i, k in enumerate(keys):
        writer.append(k, tones(i))
    writer.close()
    model = load_model("logmel", sample_rate=SR, n_fft=512, n_mels=16, fmax=8000.0)
    pianists = [int(k.split("_")[2]) % 4 for k in keys]
    passages = np.array([k.rsplit("_", 1)[1] for k in keys])
    store = AudioStore(folder)
    clean = np.stack([np.concatenate([f.mean(0), f.std(0)]) for f in
                      (model.timestamp_embeddings(store.read(k), SR)[0] for k in keys)])
    heads = {}
    for name, trained in (("fold0", [0, 1]), ("fold1", [2, 3])):
        h = QualityHead(2 * model.dim, K, hidden=16, n_hidden_layers=1, dropout=0.0)
        h.feature_mean.copy_(torch.from_numpy(clean.mean(0)).float())
        h.feature_std.copy_(torch.from_numpy(clean.std(0) + 1e-3).float())
        h.config = {"dim_names": list(DIMENSIONS), "metadata": {"train_pianist_ids": trained, "split": "pianist"}}
        heads[name] = h.eval()
    y = np.random.default_rng(1).uniform(0.3, 0.7, size=(len(keys), K))
    return {"keys": keys, "store": store, "model": model, "pianists": pianists, "passages": passages,
            "heads": heads, "y": y}


def run_condition(setup, grid_spec):
    grid = parse_grid(grid_spec)
    s = setup
    clean, aug, params = percepiano_pooled(s["keys"], s["store"], s["model"], grid, None, seed=0, workers=2)
    pc, assignment = score_out_of_fold(clean, s["keys"], s["pianists"], s["heads"])
    pa = score_out_of_fold(aug[0], s["keys"], s["pianists"], s["heads"])[0]
    mean, std = standardizer(clean)
    m = percepiano_condition(s["y"], pc, pa, clean, aug[0], s["passages"], mean, std, np.full(K, 0.1), 300, 0, 0.9, 0.1)
    return m, clean, aug, pc, pa, assignment, params


def test_identity_gives_zero_shift_and_cosine_one(setup):
    m, clean, aug, pc, pa, assignment, params = run_condition(setup, {"level": {"0dB": {"gain_db": [0, 0]}}})
    assert params[0][0] == {"gain_db": 0.0}
    assert aug[0].tobytes() == clean.tobytes()
    assert m["shift_abs_mean"] == 0.0 and m["shift_abs_mean_ci"] == [0.0, 0.0] and m["shift_mean"] == 0.0
    assert m["cosine_mean"] == pytest.approx(1.0, abs=1e-12) and m["retrieval_top1"] == 1.0
    assert m["pearson_mean"] == pytest.approx(1.0) and m["meets_pearson_target"]
    assert m["ranking_drop_rel"] == 0.0 and m["r2_drop"] == 0.0 and m["meets_ranking_target"]
    # out of fold: each segment scored only by the head that never saw its pianist
    for key, p in zip(setup["keys"], setup["pianists"]):
        assert assignment[key] == (["fold1"] if p in (0, 1) else ["fold0"])


def test_strong_noise_gives_a_measurable_shift(setup):
    m, *_ = run_condition(setup, {"noise": {"snr0": {"snr_db": [0, 0]}}})
    assert m["shift_abs_mean"] > 0.05 and m["shift_abs_mean_ci"][0] > 0.02
    assert m["cosine_mean"] < 0.9


def test_leakage_guard_refuses_a_pianist_every_head_trained_on(setup):
    s = setup
    heads = {n: h for n, h in s["heads"].items()}
    with pytest.raises(LeakageError):
        score_out_of_fold(np.zeros((1, 2 * s["model"].dim)), ["k"], [99], {
            n: _with_pianists(h, [99]) for n, h in heads.items()})


def _with_pianists(head, ids):
    import copy

    h = copy.copy(head)
    h.config = {**head.config, "metadata": {**head.config["metadata"], "train_pianist_ids": ids}}
    return h


def test_t4_items_use_every_checkpoint_and_retrieval_counts_hits(setup):
    s = setup
    clean = np.random.default_rng(0).normal(size=(5, 2 * s["model"].dim))
    pred = score_all_checkpoints(clean, s["heads"])
    expected = np.mean([h.predict_pooled(clean) for h in s["heads"].values()], axis=0)
    np.testing.assert_allclose(pred, expected)
    mean, std = standardizer(clean)
    idx = np.array([0, 1, 2, 3, 4])
    m = t4_condition(clean, pred, clean[idx], pred[idx], idx, mean, std, np.full(K, 0.1), 100, 0, 0.9)
    assert m["retrieval_top1"] == 1.0 and m["shift_abs_mean"] == 0.0
    swapped = clean[[1, 0, 2, 3, 4]]  # pairs 0 and 1 now look like each other's clean clip
    m = t4_condition(clean, pred, swapped, pred[[1, 0, 2, 3, 4]], idx, mean, std, np.full(K, 0.1), 100, 0, 0.9)
    assert m["retrieval_top1"] == pytest.approx(3 / 5)


def test_standardised_cosine_baseline_is_near_zero_while_raw_cosine_is_near_one():
    rng = np.random.default_rng(0)
    x = -40 + rng.normal(0, 3, size=(30, 64))  # dB-like: every vector points the same way
    mean, std = standardizer(x)
    assert between_item_cosine(x, 0.0, 1.0) > 0.99
    assert abs(between_item_cosine(x, mean, std)) < 0.05
    np.testing.assert_allclose(pair_cosine(x, x, mean, std), 1.0)


def test_ranking_pairs_agree_with_the_t1_metric():
    rng = np.random.default_rng(3)
    y, p = rng.random((40, K)), rng.random((40, K))
    g = rng.integers(0, 4, 40)
    ii, jj, pts, valid = ranking_pairs(y, p, g)
    np.testing.assert_allclose(pts.sum(0) / valid.sum(0), pairwise_ranking_accuracy(y, p, g))
    w = np.ones((1, 40))
    r = weighted_pearson(y, p, w)[0]
    np.testing.assert_allclose(r, [np.corrcoef(y[:, k], p[:, k])[0, 1] for k in range(K)])


def test_shift_interval_covers_zero_on_null_data():
    """A zero-mean symmetric shift: the 95% interval of the mean signed shift covers 0 about 95% of the time."""
    rng = np.random.default_rng(0)
    covered = 0
    for rep in range(200):
        shift = rng.normal(0, 1, size=(30, K))
        lo, hi = mean_shift_ci(shift, bootstrap_weights(30, 300, rep))
        covered += lo <= 0 <= hi
    assert 0.88 <= covered / 200 <= 0.99


def test_ranking_drop_interval_on_null_and_on_a_real_drop():
    """Two equally good noisy predictions (no degradation): the drop interval covers 0 in most data
    sets; predictions replaced by noise: it excludes 0 in most."""
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(3), 12)
    covered = excluded = 0
    for rep in range(40):
        y = rng.normal(size=(36, K))
        clean = y + rng.normal(0, 1.0, size=y.shape)
        aug_null = y + rng.normal(0, 1.0, size=y.shape)
        w = stratified_bootstrap_weights(groups, 200, rep)
        _, _, d = ranking_drop(y, clean, aug_null, groups, w)
        lo, hi = np.quantile(d, [0.025, 0.975])
        covered += lo <= 0 <= hi
        _, _, d = ranking_drop(y, clean, rng.normal(size=y.shape), groups, w)
        excluded += np.quantile(d, 0.025) > 0
    assert covered / 40 >= 0.85
    assert excluded / 40 >= 0.9


def test_stratified_weights_keep_passage_sizes():
    groups = np.array([0] * 5 + [1] * 3 + [2] * 7)
    w = stratified_bootstrap_weights(groups, 50, 0)
    for g, n in ((0, 5), (1, 3), (2, 7)):
        assert (w[:, groups == g].sum(axis=1) == n).all()


def labels_table() -> pd.DataFrame:
    rows = []
    for piece, bars, seg, n, secs in (("A", 8, 1, 10, 10.0), ("A", 8, 2, 10, 10.0), ("B", 8, 1, 12, 20.0),
                                      ("C", 4, 1, 9, 5.0), ("C", 8, 1, 3, 5.0), ("D", 16, 1, 10, 60.0)):
        for pl in range(n):
            rows.append({"key": f"{piece}_{bars}bars_{pl}_{seg}", "piece": piece, "bars": bars, "segment": seg,
                         "player": str(pl), "labeled": True, "pianist_id": pl, "secs": secs,
                         **{c: 0.5 for c in MEAN_COLUMNS}})
    return pd.DataFrame(rows)


def test_passage_rule_one_per_piece_within_budget_and_seeded():
    lab = labels_table()
    dur = dict(zip(lab["key"], lab["secs"]))
    sub = select_passages(lab, dur, n_passages=3, min_performances=9, max_minutes=7.0, seed=0)
    chosen = sub.groupby("passage").size()
    assert len(chosen) == 3 and chosen.index.str.split("_").str[0].nunique() == 3
    assert "D_16bars#1" not in chosen.index  # 10 min of audio: over the 7 min budget
    assert "C_8bars#1" not in chosen.index  # 3 performances < min_performances
    assert sum(dur[k] for k in sub["key"]) <= 420
    again = select_passages(lab, dur, n_passages=3, min_performances=9, max_minutes=7.0, seed=0)
    pd.testing.assert_frame_equal(sub, again)
    with pytest.raises(ValueError, match="n_passages=5"):
        select_passages(lab, dur, n_passages=5, min_performances=9, max_minutes=60.0, seed=0)
    with pytest.raises(KeyError, match="no audio"):
        select_passages(lab, {}, n_passages=1, min_performances=9, max_minutes=7.0, seed=0)
