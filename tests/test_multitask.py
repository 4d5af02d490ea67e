"""The multi-task model and its ablation stage, on generated data."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import make_dataset
from pianoeval.compare_extractors import bootstrap_r2
from pianoeval.dimensions import DIMENSIONS
from pianoeval.embedding_store import write_embedding_store
from pianoeval.io import write_json
from pianoeval.labels import build_labels, make_splits
from pianoeval.masterclass.scoring import LeakageError, load_checkpoints
from pianoeval.models.multitask import AuxData, MultiTaskQuality, contrastive_loss, ranking_loss
from pianoeval.models.quality_mlp import load_checkpoint, save_checkpoint
from pianoeval.multitask import (FoldJob, Tiers, assign_tier_folds, check_tier_leakage, paired_delta, train_all,
                                 within_passage_ranking)
from pianoeval.tiers.crossperformer import cosine_similarity, retrieval_scores
from pianoeval.tiers.pairs import ordinal_pairs

FAST = dict(hidden=16, n_hidden_layers=1, dropout=0.0, projection_dim=8, lr=1e-2, batch_size=32, max_epochs=30,
            patience=30)


# ------------------------------------------------------------------------------------------- losses
def test_ranking_loss_is_ln2_at_a_tie_and_falls_when_the_order_is_right():
    a = torch.tensor([0.5, 0.5])
    assert float(ranking_loss(a, a, 0.05)) == pytest.approx(math.log(2))
    assert float(ranking_loss(a + 0.1, a, 0.05)) == pytest.approx(math.log1p(math.exp(-2.0)))
    assert float(ranking_loss(a, a + 0.1, 0.05)) > math.log(2)


def test_contrastive_loss_by_hand():
    z = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]]), dim=1)
    pos = torch.tensor([[False, True, False], [True, False, False], [False, False, False]])
    s = (z @ z.T).numpy() / 0.5
    expect = np.mean([-(s[0, 1] - np.log(np.exp(s[0, 1]) + np.exp(s[0, 2]))),
                      -(s[1, 0] - np.log(np.exp(s[1, 0]) + np.exp(s[1, 2])))])  # row 2 has no positive: no term
    assert float(contrastive_loss(z, pos, 0.5)) == pytest.approx(expect, rel=1e-5)
    # swapping which pair is positive (the far one) costs more
    far = torch.tensor([[False, False, True], [False, False, False], [True, False, False]])
    assert float(contrastive_loss(z, far, 0.5)) > float(contrastive_loss(z, pos, 0.5))


def test_weights_are_checked():
    with pytest.raises(ValueError, match="t1 must be > 0"):
        MultiTaskQuality({"t1": 0.0})
    with pytest.raises(ValueError, match="unknown terms"):
        MultiTaskQuality({"t1": 1.0, "t5": 1.0})
    with pytest.raises(ValueError, match="CUDA is not available"):
        if torch.cuda.is_available():
            pytest.skip("a CUDA machine")
        MultiTaskQuality({"t1": 1.0}, device="cuda").fit(np.zeros((4, 2)), np.random.rand(4, 2),
                                                          np.zeros((2, 2)), np.random.rand(2, 2))


# ------------------------------------------------------------------------------------------- training
def _regression(n=120, d=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    Y = 1 / (1 + np.exp(-(X[:, :1] @ np.ones((1, 3)) + 0.1 * rng.normal(size=(n, 3)))))
    return X, Y


def test_invariance_term_shrinks_the_shift_a_nuisance_feature_causes():
    """T1 labels depend on feature 0; the T4 'augmentation' moves feature 1, which the small T1 set
    correlates with the labels by construction. With the invariance term the augmented predictions
    stay closer to the clean ones."""
    rng = np.random.default_rng(1)
    X, Y = _regression()
    X[:, 1] = X[:, 0] + 0.3 * rng.normal(size=len(X))  # a nuisance feature that carries label information
    clean = rng.normal(size=(60, 6))
    clean[:, 1] = clean[:, 0]
    aug = clean.copy()
    aug[:, 1] += 2.0
    shifts = {}
    for w in (0.0, 5.0):
        est = MultiTaskQuality({"t1": 1.0, "t4": w}, **FAST, seed=0)
        est.fit(X[:100], Y[:100], X[100:], Y[100:], AuxData(t4_clean=clean, t4_aug=aug))
        shifts[w] = float(np.abs(est.predict(aug) - est.predict(clean)).mean())
        assert est.active_terms_ == (["t1", "t4"] if w else ["t1"])
    assert shifts[5.0] < 0.5 * shifts[0.0]


def test_contrastive_term_makes_same_passage_windows_retrievable():
    """T3 windows: the passage is coded in feature 2 (weak), the performer in feature 3 (strong). The
    contrastive term makes the same passage by other performers the nearest windows in the space it
    trains (projection); an untrained projection finds them at about the raw level."""
    rng = np.random.default_rng(2)
    X, Y = _regression()
    n_pass, n_perf = 6, 4
    passage = np.repeat(np.arange(n_pass), n_perf)
    performer = np.tile(np.arange(n_perf), n_pass)
    x3 = rng.normal(size=(len(passage), 6)) * 0.3
    x3[:, 2] += passage * 0.5
    x3[:, 3] += performer * 2.0
    pos = (passage[:, None] == passage[None, :]) & (performer[:, None] != performer[None, :])
    maps = {}
    for w in (0.0, 1.0):
        est = MultiTaskQuality({"t1": 1.0, "t3": w}, **FAST, seed=0)
        est.fit(X[:100], Y[:100], X[100:], Y[100:], AuxData(t3_x=x3, t3_positive=pos))
        z = est.representation(x3, space="projection")
        assert z.shape == (24, FAST["projection_dim"]) and est.representation(x3).shape == (24, FAST["hidden"])
        maps[w] = float(np.nanmean(retrieval_scores(cosine_similarity(z), passage, performer)[1]))
    assert maps[0.0] < 0.5 and maps[1.0] > 0.75


def test_ranking_term_orders_the_pairs():
    rng = np.random.default_rng(3)
    X, Y = _regression()
    better, worse = rng.normal(size=(40, 6)), rng.normal(size=(40, 6))
    better[:, 4] += 2.0  # what the pairs teach: feature 4 means 'went further'; T1 does not use it
    acc = {}
    for w in (0.0, 0.5):
        est = MultiTaskQuality({"t1": 1.0, "t2": w}, **FAST, seed=0)
        est.fit(X[:100], Y[:100], X[100:], Y[100:], AuxData(t2_better=better, t2_worse=worse))
        test_b, test_w = rng.normal(size=(200, 6)), rng.normal(size=(200, 6))
        test_b[:, 4] += 2.0
        acc[w] = float(np.mean(est.predict(test_b).mean(1) > est.predict(test_w).mean(1)))
    assert acc[0.5] > 0.8 and acc[0.5] > acc[0.0] + 0.2


def test_fit_is_deterministic_and_the_checkpoint_loads_as_a_quality_head(tmp_path):
    X, Y = _regression()
    aux = AuxData(t4_clean=X[:10], t4_aug=X[:10] + 0.5)
    a = MultiTaskQuality({"t1": 1.0, "t4": 1.0}, **FAST, seed=4).fit(X[:100], Y[:100], X[100:], Y[100:], aux)
    b = MultiTaskQuality({"t1": 1.0, "t4": 1.0}, **FAST, seed=4).fit(X[:100], Y[:100], X[100:], Y[100:], aux)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    save_checkpoint(a, tmp_path / "fold0_seed4", dim_names=["a", "b", "c"], metadata={"train_pianist_ids": [1]})
    head = load_checkpoint(tmp_path / "fold0_seed4")
    np.testing.assert_allclose(head.predict_pooled(X), a.predict(X), atol=1e-7)
    assert head.config["hyperparameters"]["weights"] == {"t1": 1.0, "t2": 0.0, "t3": 0.0, "t4": 1.0}


# ------------------------------------------------------------------------------------------- folds and leakage
def test_tier_folds_keep_units_and_performers_together_and_respect_forced_folds():
    units = np.array(["A", "A", "B", "B", "C", "D", "E", "F"])
    performers = np.array(["p1", "p2", "p3", "p1", "p4", "p5", "p6", ""])  # p1 links A and B
    forced = [set(), set(), set(), set(), {2}, set(), set(), set()]
    folds, rep = assign_tier_folds(units, performers, forced, 4, seed=0, what="t2")
    assert folds[0] == folds[1] == folds[2] == folds[3]
    assert folds[4] == 2
    assert rep["n_components"] == 5 and rep["n_forced_components"] == 1
    assert sum(rep["items_per_fold"].values()) == 8
    assert check_tier_leakage(folds, [set(), set(), set(), set(), {7}, set(), set(), set()], {7: 2}, what="t2") == 1


def test_conflicting_pianist_folds_and_a_misplaced_item_raise():
    with pytest.raises(LeakageError, match="no fold keeps"):
        assign_tier_folds(np.array(["A", "A"]), np.array(["x", "y"]), [{0}, {1}], 4, seed=0, what="t2")
    with pytest.raises(LeakageError, match="would train on it"):
        check_tier_leakage(np.array([1]), [{7}], {7: 2}, what="t3")


# ------------------------------------------------------------------------------------------- statistics on null data
def test_paired_intervals_hold_their_level_on_null_data():
    """Two predictors of equal quality (independent noise around the truth): the paired ΔR² and
    Δranking intervals cover 0 in about 95% of datasets, and the bootstrap p is rarely below 0.05."""
    rng = np.random.default_rng(0)
    cover_r2, cover_rank, small_p = 0, 0, 0
    n_sim = 60
    for s in range(n_sim):
        groups = np.repeat(np.arange(20), 6)
        passages = np.tile(np.arange(6), 20)
        Y = rng.normal(size=(120, 2))
        preds = {"a": Y + rng.normal(size=Y.shape), "b": Y + rng.normal(size=Y.shape)}
        lo, hi = bootstrap_r2(Y, preds, "a", groups, 200, s)["b"]["delta_ci"]
        cover_r2 += lo <= 0 <= hi
        rank = within_passage_ranking(Y, preds, passages, "a", 200, s)["b"]
        cover_rank += rank["delta_ci"][0] <= 0 <= rank["delta_ci"][1]
        small_p += rank["p_boot"] < 0.05
    assert cover_r2 / n_sim >= 0.85 and cover_rank / n_sim >= 0.85 and small_p / n_sim <= 0.12


def test_paired_delta_p_and_interval():
    d = np.random.default_rng(0).normal(0.3, 0.1, size=999)
    out = paired_delta(0.3, d)
    assert out["delta_ci"][0] > 0 and out["p_boot"] == pytest.approx(2 * (1 + (d <= 0).sum()) / 1000)
    assert paired_delta(0.0, d - 0.3)["p_boot"] > 0.5


# ------------------------------------------------------------------------------------------- the stage
def _synthetic_repo(tmp_path):
    root = make_dataset(tmp_path / "percepiano", n_segments=2)
    table, _ = build_labels(root)
    table.to_csv(tmp_path / "labels.csv", index=False, float_format="%.10g")
    splits = make_splits(table, n_folds=4, seed=0)
    write_json(tmp_path / "splits.json", splits, indent=None)
    rng = np.random.default_rng(0)
    lab = table.set_index("key")
    means = lab[[c for c in lab.columns if c.startswith("mean_")]].mean(axis=1).fillna(0.5)  # unlabeled: 0.5

    def frames(level):  # (T, 4): feature 0 carries the rating
        f = rng.normal(size=(6, 4)).astype(np.float32)
        f[:, 0] += 3 * level
        return f

    items = [(k, frames(means.get(k, 0.5))) for k in table["key"]]
    write_embedding_store(tmp_path / "t1.safetensors", items, extractor="test", extractor_params={}, frame_rate=1.0)

    t2 = []
    for f in range(6):
        for j, place in enumerate((7, 40, 80, 80)):
            t2.append({"segment_id": f"t2_{f}_{j}", "performance_id": f"perf2_{f}_{j}",
                       "performer_year": f"Pianist{f}{j}_2011", "folder": f"Folder{f}", "bar_start": 1, "bar_end": 9,
                       "placement": place, "seconds": 10.0 + j, "percepiano_overlap": f == 0 and j == 0,
                       "percepiano_pianist_ids": "2" if (f == 0 and j == 0) else ""})
    t2 = pd.DataFrame(t2)
    t2.to_csv(tmp_path / "t2.csv", index=False)
    ordinal_pairs(t2).to_csv(tmp_path / "t2_pairs.csv", index=False)
    write_embedding_store(tmp_path / "t2.safetensors", [(s, frames(rng.uniform())) for s in t2["segment_id"]],
                          extractor="test", extractor_params={}, frame_rate=1.0)
    t3 = pd.DataFrame([{"segment_id": f"t3_{f}_{p}_{b}", "performance_id": f"perf3_{f}_{p}", "performer": f"P{f}{p}",
                        "folder": f"T3Folder{f}", "bar_start": b, "seconds": 9.0 + b, "percepiano_pianist_ids": ""}
                       for f in range(4) for p in range(3) for b in (1, 9)])
    t3.to_csv(tmp_path / "t3.csv", index=False)
    write_embedding_store(tmp_path / "t3.safetensors", [(s, frames(rng.uniform())) for s in t3["segment_id"]],
                          extractor="test", extractor_params={}, frame_rate=1.0)
    t4 = pd.DataFrame([{"pair_id": f"c{c}_{a}", "clip_id": f"c{c}", "augmentation": a, "severity": "x"}
                       for c in range(4) for a in ("noise", "level")])
    t4.to_csv(tmp_path / "t4_pairs.csv", index=False)
    write_embedding_store(tmp_path / "t4c.safetensors", [(f"c{c}", frames(0.5)) for c in range(4)],
                          extractor="test", extractor_params={}, frame_rate=1.0)
    write_embedding_store(tmp_path / "t4a.safetensors", [(s, frames(0.5)) for s in t4["pair_id"]],
                          extractor="test", extractor_params={}, frame_rate=1.0)
    pd.DataFrame({"query": ["Q"], "reference": ["R"], "pianist_id": [2]}).to_csv(tmp_path / "overlap.csv", index=False)
    p = {"labels": str(tmp_path / "labels.csv"), "splits": str(tmp_path / "splits.json"),
         "embeddings": str(tmp_path / "t1.safetensors"),
         "t2_segments": str(tmp_path / "t2.csv"), "t2_pairs": str(tmp_path / "t2_pairs.csv"),
         "t2_embeddings": str(tmp_path / "t2.safetensors"), "t3_segments": str(tmp_path / "t3.csv"),
         "t3_embeddings": str(tmp_path / "t3.safetensors"), "t4_pairs": str(tmp_path / "t4_pairs.csv"),
         "t4_clean": str(tmp_path / "t4c.safetensors"), "t4_augmented": str(tmp_path / "t4a.safetensors"),
         "overlap": str(tmp_path / "overlap.csv"), "checkpoints": str(tmp_path / "ckpt"),
         "oof": str(tmp_path / "oof.csv"), "live_dir": str(tmp_path / "live"), "device": "cpu", "workers": 2,
         "seed": 0, "val_fraction": 0.2, "reference": "t1_only", "seed_control": True,
         "variants": {"t1_only": [], "plus_t2": ["t2"], "plus_t3": ["t3"], "plus_t4": ["t4"], "all": ["t2", "t3", "t4"]},
         "weights": {"t1": 1.0, "t2": 0.02, "t3": 0.005, "t4": 1.0},
         "model": {**FAST, "max_epochs": 4, "weight_decay": 0.0, "grad_clip": 1.0, "t2_pairs_per_step": 4,
                   "t2_temperature": 0.05, "t3_temperature": 0.1, "t4_pairs_per_step": 4},
         "n_boot": 50, "n_perm": 50}
    return p, table


def test_stage_writes_every_variant_on_every_metric_and_guards_leakage(tmp_path, monkeypatch):
    from pianoeval.stages import train_multitask as stage

    p, table = _synthetic_repo(tmp_path)
    monkeypatch.chdir(tmp_path)
    stage.run(p)
    m = json.loads((tmp_path / "metrics/multitask.json").read_text())
    names = ["t1_only", "plus_t2", "plus_t3", "plus_t4", "all", "t1_only_reseeded"]
    for tier, key in (("t1", "r2"), ("t1", "within_passage_ranking"), ("t2", "rho"), ("t3", "map"),
                      ("t4", "shift_abs_mean")):
        assert list(m[tier]["variants"]) == names
        assert all(isinstance(m[tier]["variants"][n][key], float) for n in names)
    assert "vs_reference" in m["t3"]["variants"]["plus_t3"] and "vs_reference" not in m["t3"]["variants"]["t1_only"]
    assert m["n"]["t4_pairs"] == 8 and m["t2"]["excluded"]["percepiano_overlap"] == 1
    # the T2 window of PercePiano pianist 2 sits in pianist 2's T1 fold ...
    fold_of_2 = {int(a): int(b) for a, b in zip(table.loc[table["labeled"], "pianist_id"],
                                                json.loads((tmp_path / "splits.json").read_text())["folds"]["pianist"])}[2]
    assert m["folds"]["t2"]["guarded_items"] == 1 and m["folds"]["t2"]["n_forced_components"] == 1
    # ... so no checkpoint trained on pianist 2's playing is the one tested on it, and the checkpoints load
    # through the masterclass / `pianoeval score` loader with the leakage metadata
    heads = load_checkpoints(tmp_path / "ckpt/all")
    assert len(heads) == 4
    for name, h in heads.items():
        meta = h.config["metadata"]
        assert (2 in meta["train_pianist_ids"]) == (meta["fold"] != fold_of_2)
        assert meta["variant"] == "all" and meta["terms"] == ["t1", "t2", "t3", "t4"]
    assert (tmp_path / "ckpt/all/fold0_seed0.projection.safetensors").is_file()
    assert (tmp_path / "ckpt/t1_only_reseeded/fold0_seed1.json").is_file()
    assert (tmp_path / "plots/multitask_comparison.png").stat().st_size > 10_000
    curves = tmp_path / "live/plots/metrics/all/fold0"
    assert {f.name for f in curves.iterdir()} >= {"val_r2.tsv", "loss_t1.tsv", "loss_t4.tsv", "loss.tsv"}
    oof = pd.read_csv(tmp_path / "oof.csv")
    assert len(oof) == 6 * m["n"]["t1_segments"]
    # rerun: byte-identical outputs
    first = {f: (tmp_path / f).read_bytes() for f in ("metrics/multitask.json", "oof.csv", "ckpt/all/fold1_seed0.safetensors",
                                                       "plots/multitask_comparison.csv")}
    p["workers"] = 1
    stage.run(p)
    for f, b in first.items():
        after = (tmp_path / f).read_bytes()
        if f.endswith(".json"):  # the metrics name the worker count; nothing else may differ
            a, c = json.loads(b), json.loads(after)
            assert (a.pop("training_setup")["workers"], c.pop("training_setup")["workers"]) == (2, 1)
            assert a == c
        else:
            assert after == b, f


def test_curves_are_written_in_a_repository_without_commits(tmp_path, monkeypatch):
    """`git init` + `dvc repro` (no commit yet, as in the end-to-end test): DVCLive must not need a HEAD."""
    import subprocess
    from types import SimpleNamespace as NS

    from pianoeval.stages.train_multitask import _write_curves

    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    monkeypatch.chdir(tmp_path)
    est = NS(history_=[{"epoch": 1, "lr": 1e-3, "loss": 1.0, "val_r2": 0.1},
                       {"epoch": 2, "lr": 1e-3, "loss": 0.5, "val_r2": 0.2}], best_epoch_=2, best_val_r2_=0.2)
    _write_curves("live", [NS(variant="all", fold=0, estimator=est)])
    assert (tmp_path / "live/plots/metrics/all/fold0/loss.tsv").read_text() == "step\tloss\n1\t1.0\n2\t0.5\n"
    assert json.loads((tmp_path / "live/metrics.json").read_text()) == {"all": {"fold0": {"best_epoch": 2,
                                                                                          "best_val_r2": 0.2}}}
    assert not (tmp_path / "dvc.yaml").exists()
