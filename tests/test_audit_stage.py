"""The audit stage on a small synthetic project: annotation loading rules, the probe options the
stage uses, and one end-to-end run of all nine sections (deterministic, every output written)."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from pianoeval.audit.probes import attention_probe_cv, mlp_probe_cv
from pianoeval.audit.report import write_outputs
from pianoeval.dimensions import DIMENSIONS, MEAN_COLUMNS, STD_COLUMNS
from pianoeval.embedding_store import write_embedding_store
from pianoeval.io import _clean, write_json
from pianoeval.audit.pipeline import load_annotations, run_audit

torch.set_num_threads(1)
Q = [f"Question_{i}_1" for i in range(19)]


def _labels(n=96, seed=0):
    """Labels from 2 latent factors, squeezed into [0, 1]."""
    rng = np.random.default_rng(seed)
    F = rng.standard_normal((n, 2))
    Y = F @ rng.standard_normal((2, 19)) * 0.6 + 0.25 * rng.standard_normal((n, 19))
    return 1 / (1 + np.exp(-Y)), rng


def _annotations(keys, Y, rng, n_raters=6):
    rows, data_id = [], 0
    for k, y in zip(keys, Y):
        for r in range(n_raters):
            data_id += 1
            vals = np.clip(np.round(1 + 6 * y + rng.normal(0, 0.5, 19)), 1, 7)
            rows.append({"user": r, "dataID": data_id, "filename": f"{k}.wav", **dict(zip(Q, vals)),
                         "Question_99_1": "", "message": ""})
    df = pd.DataFrame(rows)
    extra = [df.iloc[0].to_dict(),                                    # a copy of one submission
             {**df.iloc[1].to_dict(), "dataID": 10**6},               # a repeat by the same user
             {"user": 1, "dataID": 10**6 + 1, "filename": "unrated.wav", **{q: np.nan for q in Q}},
             {**df.iloc[2].to_dict(), "dataID": 10**6 + 2, "filename": "not_labeled_1.wav"}]
    return pd.concat([df, pd.DataFrame(extra)], ignore_index=True)


# --------------------------------------------------------------------------- annotations
def test_load_annotations_rules_and_counts(tmp_path):
    Y, rng = _labels(40)
    keys = [f"k{i}" for i in range(40)]
    df = _annotations(keys, Y, rng)
    path = tmp_path / "ann.csv"
    df.to_csv(path, index=False)
    seg, rater, R, rep = load_annotations(path, keys, Y, min_mapping_r=0.8)
    assert rep["n_copy_rows_dropped"] == 1 and rep["n_repeat_submissions"] == 1
    assert rep["n_rows_no_rating"] == 1 and rep["n_rows_unlabeled_segment"] == 1
    assert list(rep["ignored_columns"]) == ["Question_99_1"]
    assert R.shape == (40 * 6, 19) and len(seg) == len(rater) == 240  # repeat averaged into one rating
    assert rep["mapping_check"]["passed"] and rep["mapping_check"]["min_diagonal_r"] > 0.8
    with pytest.raises(ValueError, match="min_mapping_r"):
        load_annotations(path, keys, Y, min_mapping_r=0.999)
    _, _, R_keep, rep_keep = load_annotations(path, keys, Y, repeats="keep", min_mapping_r=0.8)
    assert len(R_keep) == 241 and rep_keep["repeats_rule"] == "keep"


def test_load_annotations_rejects_swapped_columns_and_conflicting_copies(tmp_path):
    Y, rng = _labels(40, seed=1)
    keys = [f"k{i}" for i in range(40)]
    df = _annotations(keys, Y, rng)
    swapped = df.rename(columns={Q[3]: Q[7], Q[7]: Q[3]})[df.columns]
    swapped.to_csv(tmp_path / "swapped.csv", index=False)
    with pytest.raises(ValueError, match="not in label order"):
        load_annotations(tmp_path / "swapped.csv", keys, Y)
    bad = pd.concat([df, df.iloc[[5]].assign(**{Q[0]: 1.0 if df.iloc[5][Q[0]] != 1 else 7.0})])
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match="different content"):
        load_annotations(tmp_path / "bad.csv", keys, Y)
    df.assign(**{Q[2]: "x"}).to_csv(tmp_path / "text.csv", index=False)
    with pytest.raises(ValueError, match="not a number"):
        load_annotations(tmp_path / "text.csv", keys, Y)


# --------------------------------------------------------------------------- probe options
def test_mlp_n_components_and_attention_models():
    Y, rng = _labels(160, seed=2)
    X = Y @ rng.standard_normal((19, 60)) + 0.02 * rng.standard_normal((160, 60))  # rank-19 signal in 60 columns
    folds = np.arange(160) % 4
    kw = dict(hidden=16, epochs=40, lr=3e-3, batch_size=32, num_threads=1)
    full = mlp_probe_cv(X, Y, folds, **kw)
    red = mlp_probe_cv(X, Y, folds, n_components=19, **kw)
    few = mlp_probe_cv(X, Y, folds, n_components=2, **kw)
    assert red["config"]["n_components"] == 19
    assert red["r2_mean"] > 0.6 and abs(red["r2_mean"] - full["r2_mean"]) < 0.05  # the signal lives in 19 PCs
    assert few["r2_mean"] < red["r2_mean"] - 0.1
    frames = [np.tile(x[:6], (5, 1)).astype(np.float32) + 0.01 * rng.standard_normal((5, 6)).astype(np.float32)
              for x in X]
    att = attention_probe_cv(frames, Y, folds, epochs=2, num_threads=1, return_models=True)
    assert len(att["models"]) == 4 and not att["models"][0].training
    assert "models" not in attention_probe_cv(frames, Y, folds, epochs=1, num_threads=1)


# --------------------------------------------------------------------------- end to end
def _project(tmp_path):
    n, rng = 96, None
    Y, rng = _labels(n, seed=3)
    pianist = np.repeat(np.arange(8), 12)
    keys = [f"Piece{w}_8bars_{p}_{s}" for w, p, s in zip(np.arange(n) % 4, pianist, np.arange(n))]
    A = rng.standard_normal((19, 24))
    frames = [(Y[i] @ A + 0.3 * rng.standard_normal((int(rng.integers(12, 40)), 24))).astype(np.float32)
              for i in range(n)]
    write_embedding_store(tmp_path / "emb.safetensors", zip(keys, frames), extractor="test", extractor_params={},
                          frame_rate=25.0)
    table = pd.DataFrame({"key": keys + ["Piece0_8bars_Score_1", "Piece1_8bars_Score_2"],
                          "piece": [f"Piece{w}" for w in np.arange(n) % 4] + ["Piece0", "Piece1"], "work": "w",
                          "player": "1", "labeled": [True] * n + [False] * 2,
                          "pianist_id": list(pianist) + [20, 20]})
    for j, (m, s) in enumerate(zip(MEAN_COLUMNS, STD_COLUMNS)):
        table[m] = list(Y[:, j]) + [np.nan, np.nan]
        table[s] = 0.1
    table["n_annotators"] = 6
    table.to_csv(tmp_path / "labels.csv", index=False)
    json.dump({"keys": keys, "n_folds": 4, "seed": 0,
               "folds": {"pianist": (pianist % 4).tolist(), "segment": (np.arange(n) % 4).tolist(),
                         "piece": (np.arange(n) % 4).tolist()},
               "groups": {"segment": (np.arange(n) // 2).tolist()}}, open(tmp_path / "splits.json", "w"))
    ann = _annotations(keys, Y, rng)
    ann.loc[[3, 4], Q[0]] = [0.0, 8.0]  # off the 1-7 scale: excluded and counted
    ann.to_csv(tmp_path / "ann.csv", index=False)
    # masterclass: 8 videos, each one pianist's session; the graded teacher's STOPs are driven by
    # timbre_depth, the random teacher's (2 videos, left out of the downstream section) by nothing
    mc = tmp_path / "mc"
    mc.mkdir()
    rows, scores, mframes, prov = [], [], [], {"videos": {}}
    for v in range(8):
        vid = f"vid{v}"
        teacher = "tone" if v < 6 else "random"
        prov["videos"][vid] = {"performances": [{"pianist_id": v, "start": 0.0, "end": 1e4}]}
        for s in range(14):
            sid = f"{vid}:{s}"
            label = int(s % 2 == 0)
            q = rng.standard_normal(19)
            q[DIMENSIONS.index("timbre_depth")] += 2.5 * label * (teacher == "tone")
            rows.append({"variant": "all", "segment_id": sid, "video_id": vid, "student": f"pianist{v}",
                         "teacher": teacher, "label": label, "start": 10.0 * s, "end": 10.0 * s + 8,
                         "duration": 8.0, "moment_id": "", "musical_dimension": ""})
            scores.append({"segment_id": sid, **dict(zip(DIMENSIONS, q))})
            mframes.append((sid, (rng.standard_normal((30, 24)) + label).astype(np.float32)))
    seg = pd.DataFrame(rows)
    pd.concat([seg, seg.assign(variant="duration_matched")]).to_csv(tmp_path / "segments.csv", index=False)
    pd.DataFrame(scores).to_csv(tmp_path / "scores.csv", index=False)
    write_embedding_store(tmp_path / "mc_emb.safetensors", mframes, extractor="test", extractor_params={},
                          frame_rate=25.0)
    json.dump(prov, open(mc / "provenance.json", "w"))
    p = {"labels": str(tmp_path / "labels.csv"), "splits": str(tmp_path / "splits.json"),
         "embeddings": str(tmp_path / "emb.safetensors"), "annotations": str(tmp_path / "ann.csv"),
         "masterclass": {"segments": str(tmp_path / "segments.csv"), "scores": str(tmp_path / "scores.csv"),
                         "embeddings": str(tmp_path / "mc_emb.safetensors")},
         "competition": None, "default_split": "pianist", "seed": 0,
         "correlation": {"top_k": 5, "high": 0.7, "moderate": 0.5},
         "factors": {"n_iter": 200, "percentile": 95, "loading_threshold": 0.3},
         "distributions": {"floor": 0.05, "ceiling": 0.95, "flag_fraction": 0.1},
         "reliability": {"n_splits": 10, "repeats": "mean", "min_mapping_r": 0.8},
         "ridge": {"alphas": [0.1, 1, 10, 100], "inner_folds": 3, "fixed_alpha": 1.0},
         "mlp": {"hidden": 16, "n_components": 4, "epochs": 5, "lr": 3e-3, "batch_size": 32,
                 "weight_decay": 1e-4, "patience": 3, "val_frac": 0.15},
         "attention": {"frame_hop": 4, "hidden": 8, "epochs": 3, "lr": 5e-3, "batch_size": 16,
                       "weight_decay": 1e-4, "patience": 2, "val_frac": 0.15},
         "residuals": {"n_iter": 50}, "cca": {"n_pca": 4, "threshold": 0.3, "n_null": 20},
         "downstream": {"variants": ["all", "duration_matched"], "n_extreme": 5, "cv_folds": 3, "n_perm": 999,
                        "equivalence_margin": 0.05, "level": 0.95, "negative_control_teacher": "random",
                        "n_jobs": 1}}
    return p, mc


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("audit")
    p, mc = _project(tmp)
    report, timings = run_audit(p, 1.0, mc, log=lambda *a: None)
    return tmp, p, mc, report, timings


def test_run_audit_end_to_end(audited):
    _, _, _, report, timings = audited
    h = report["headline"]
    assert h["pca.n_significant"] == 2  # two latent factors
    assert report["data"]["n_segments"] == 96 and report["data"]["n_unlabeled_excluded"] == 2
    assert report["reliability"]["annotations"]["mapping_check"]["passed"]
    assert h["reliability.n_copy_rows_dropped"] == 1 and h["reliability.n_repeat_submissions"] == 1
    assert h["probe.ridge_cv.pianist.r2_mean"] > 0.5  # frames linearly encode the labels
    assert set(report["probes"]) == {"ridge_cv", "ridge_fixed", "factor", "mlp", "attention"}
    assert set(report["probes"]["ridge_cv"]) == {"pianist", "segment", "piece"}
    assert set(report["probes"]["mlp"]) == {"pianist"}
    assert "probe.attention.r2.timing" in h and "downstream.all19.auc" in h
    assert h["downstream.top5.auc"] is not None and report["downstream"]["attention_pooling"][
        "models_per_segment"]["max"] == 1  # one pianist-disjoint fold model per session
    # the planted STOP signal (timbre_depth) is recovered on the graded teacher's 6 videos ...
    dn = report["downstream"]
    assert dn["n_control_segments_excluded"] == 2 * 14 * 2 and dn["variants"]["all"]["n_videos"] == 6
    assert h["downstream.all19.auc"] > 0.85 and h["downstream.all19.auc_p_perm"] == pytest.approx(1 / 1000)
    assert h["downstream.all19.auc_ci_low"] > 0.5 and h["downstream.all19.auc_p_perm_holm"] <= 0.05
    assert h["downstream.n_pvalues_holm"] == len(report["pvalue_family"]) > 10
    # ... and the sets without timbre_depth do significantly worse (paired permutation, before Holm)
    cats = dn["variants"]["all"]["sets"]
    without = [k for k, fs in (("bottom5", dn["bottom"]), ("top5", dn["top"])) if "timbre_depth" not in fs]
    assert all(cats[k]["delta_auc"] < -0.2 and cats[k]["delta_p"] < 0.05 for k in without) and without
    ann = report["reliability"]["annotations"]
    assert ann["values_outside_1_7_excluded"]["by_value"] == {"0": 1, "8": 1}  # excluded, counted
    assert h["reliability.n_values_outside_1_7_excluded"] == 2
    # inner splits group like the outer split (pianists here)
    assert report["probes"]["ridge_cv"]["pianist"]["inner_split"] == "grouped"
    assert report["probes"]["mlp"]["pianist"]["config"]["validation_split"] == "grouped"
    assert report["probes"]["factor"]["pianist"]["factors_fitted"] == "inside each training fold"
    assert report["competition"]["status"].startswith("skipped") and h["competition.available"] == 0
    assert all(isinstance(v, (int, float)) or v is None for v in h.values())
    assert set(timings) >= {"load", "attention probe", "downstream"}
    json.dumps(_clean(report), allow_nan=False)  # serialisable as written by write_json


def test_run_audit_is_deterministic(audited):
    _, p, mc, report, _ = audited
    again, _ = run_audit(p, 1.0, mc, log=lambda *a: None)
    assert json.dumps(_clean(again), allow_nan=False) == json.dumps(_clean(report), allow_nan=False)


def test_audit_outputs(audited):
    tmp_path, _, _, report, _ = audited
    write_json(tmp_path / "out" / "report.json", report)
    write_outputs(report, markdown_path=str(tmp_path / "out" / "audit.md"), figures=str(tmp_path / "out" / "fig"),
                  plots_dir=str(tmp_path / "out" / "plots"))
    md = (tmp_path / "out" / "audit.md").read_text()
    for needle in ("## 1. Correlation", "## 5. Audibility probes", "## 8. Downstream", "skipped: no competition data",
                   "fig/audit_r2.png"):
        assert needle in md
    assert sorted(f.name for f in (tmp_path / "out" / "fig").iterdir()) == [
        "audit_cca.png", "audit_correlation.png", "audit_downstream.png", "audit_r2.png", "audit_scree.png"]
    r2 = pd.read_csv(tmp_path / "out" / "plots" / "audit_r2_per_dim.csv")
    assert set(r2["probe"]) == {"ridge_cv", "ridge_fixed", "mlp", "attention", "noise_ceiling"}


def test_run_audit_rejects_unlabeled_split_keys(tmp_path):
    p, mc = _project(tmp_path)
    s = json.load(open(p["splits"]))
    s["keys"][0] = "Piece0_8bars_Score_1"
    json.dump(s, open(p["splits"], "w"))
    with pytest.raises(ValueError, match="not labeled"):
        run_audit(p, 1.0, mc, log=lambda *a: None)
