import numpy as np
import pandas as pd
import pytest
import torch

from pianoeval.audit.competition import SKIPPED, competition_section, competition_validation, load_competition
from pianoeval.audit.downstream import (attention_embeddings, attention_pool, audibility_ranking, downstream_stop,
                                        reduced_feature_sets, stop_prediction, training_pianists, window_frames)
from pianoeval.audit.factors import pca_correlation
from pianoeval.audit.probes import AttentionPoolProbe
from pianoeval.dimensions import CATEGORIES, DIMENSIONS
from pianoeval.masterclass.scoring import LeakageError

torch.set_num_threads(1)


def _model(d=6, q=19, seed=0):
    torch.manual_seed(seed)
    return AttentionPoolProbe(d, q, 4, np.zeros(d), np.ones(d), np.zeros(d), np.ones(d)).eval()


# --------------------------------------------------------------------------- frames and pooling
def test_window_frames_averages_and_keeps_the_tail():
    fr = np.arange(20, dtype=np.float32).reshape(10, 2)
    out = window_frames(fr, 4)
    assert out.shape == (3, 2)
    assert np.allclose(out[0], fr[:4].mean(0)) and np.allclose(out[2], fr[8:].mean(0))
    assert window_frames(fr, 1) is not None and np.array_equal(window_frames(fr, 1), fr)
    assert window_frames(fr[:3], 8).shape == (1, 2)
    with pytest.raises(ValueError, match="hop"):
        window_frames(fr, 0)
    with pytest.raises(ValueError, match="frames"):
        window_frames(np.zeros((0, 2)), 2)


def test_attention_pool_uniform_scores_is_mean_pooling():
    m = _model()
    with torch.no_grad():
        m.score.weight.zero_()  # equal scores -> softmax is uniform over the valid frames
    rng = np.random.default_rng(0)
    frames = [rng.standard_normal((t, 6)).astype(np.float32) for t in (3, 7, 12)]
    pooled = attention_pool(m, frames)
    assert np.allclose(pooled, [f.mean(0) for f in frames], atol=1e-5)
    with pytest.raises(ValueError, match="expects 6"):
        attention_pool(m, [rng.standard_normal((4, 5)).astype(np.float32)])


def test_attention_embeddings_leakage_guard():
    models = [_model(seed=s) for s in range(3)]
    trained = training_pianists(np.array([0, 0, 1, 1, 2, 2]), np.array([10, 10, 11, 11, 12, 12]))
    assert trained == [{11, 12}, {10, 12}, {10, 11}]
    rng = np.random.default_rng(1)
    frames = [rng.standard_normal((5, 6)).astype(np.float32) for _ in range(3)]
    ids = ["a", "b", "c"]
    pooled, rep = attention_embeddings(models, trained, frames, ids, {"a": {10}, "b": {11}, "c": {12}})
    for i in range(3):  # only the model that never saw the segment's pianist pools it
        assert np.allclose(pooled[i], attention_pool(models[i], frames[i:i + 1])[0], atol=1e-6)
    assert rep["models_per_segment"] == {"min": 1, "mean": 1.0, "max": 1}
    allp, rep = attention_embeddings(models, trained, frames, ids, None)  # no provenance: all models
    assert np.allclose(allp[0], np.mean([attention_pool(m, frames[:1])[0] for m in models], 0), atol=1e-6)
    assert "no provenance" in rep["leakage_guard"]
    with pytest.raises(LeakageError):  # a segment of two pianists in different folds: no model is clean
        attention_embeddings(models, trained, frames, ids, {"a": {10, 11, 12}, "b": {11}, "c": {12}})


# --------------------------------------------------------------------------- reduced sets
def test_audibility_ranking():
    r2 = {"a": 0.5, "b": None, "c": 0.9, "d": 0.1, "e": 0.5}
    top, bottom = audibility_ranking(r2, 2)
    assert top == ["c", "a"] and bottom == ["d", "b"]
    with pytest.raises(ValueError):
        audibility_ranking(r2, 3)


def test_reduced_feature_sets_two_factor_labels():
    rng = np.random.default_rng(0)
    F = rng.standard_normal((400, 2))
    labels = F @ rng.standard_normal((2, 19)) + 0.3 * rng.standard_normal((400, 19))
    scores = labels[:50] + 0.01
    top, bottom = list(DIMENSIONS[:5]), list(DIMENSIONS[-5:])
    sets, info = reduced_feature_sets(scores, labels, 2, top, bottom)
    assert {k: v.shape[1] for k, v in sets.items()} == {"all19": 19, "pca_k": 2, "categories": 8, "top5": 5,
                                                        "bottom5": 5}
    _, evecs, _ = pca_correlation(labels)
    assert np.allclose(sets["pca_k"], (scores - labels.mean(0)) / labels.std(0) @ evecs[:, :2])
    assert info["pca_k"]["explained_variance"] > 0.8  # two latent factors carry most of the variance
    pedal = [DIMENSIONS.index(d) for d in CATEGORIES["pedal"]]
    assert np.allclose(sets["categories"][:, list(CATEGORIES).index("pedal")], scores[:, pedal].mean(1))
    assert np.array_equal(sets["bottom5"], scores[:, -5:])
    with pytest.raises(ValueError, match="unknown"):
        reduced_feature_sets(scores, labels, 2, ["nope"] * 5, bottom)


# --------------------------------------------------------------------------- STOP prediction
def _stop_data(n_videos=8, per_video=24, seed=0):
    rng = np.random.default_rng(seed)
    videos = np.repeat([f"v{i}" for i in range(n_videos)], per_video)
    y = rng.integers(0, 2, videos.size)
    y[::per_video], y[1::per_video] = 0, 1  # both classes in every video
    signal = y[:, None] + 0.4 * rng.standard_normal((y.size, 3))
    noise = rng.standard_normal((y.size, 3))
    return y, videos, signal, noise


def test_stop_prediction_separates_signal_from_noise():
    y, videos, signal, noise = _stop_data()
    twin = signal + 0.01 * np.random.default_rng(9).standard_normal(signal.shape)  # as good as the reference
    res = stop_prediction({"all19": signal, "noise": noise, "twin": twin}, y, videos, n_perm=200, margin=0.05)
    s, n, t = res["sets"]["all19"], res["sets"]["noise"], res["sets"]["twin"]
    assert s["auc"] > 0.9 and s["auc_ci_low"] > 0.8 and s["auc_p_perm"] == pytest.approx(1 / 201)
    assert s["delta_auc"] is None and s["p_tost"] is None  # the reference itself
    assert abs(n["auc"] - 0.5) < 0.15 and n["auc_ci_low"] < 0.5 < n["auc_ci_high"] and n["auc_p_perm"] > 0.05
    assert n["delta_auc"] < -0.3 and n["delta_p"] < 0.01 and n["p_tost"] > 0.5  # worse, not equivalent
    assert abs(t["delta_auc"]) < 0.02 and t["delta_p"] > 0.05 and t["p_tost"] < 0.05  # equivalent within 0.05
    assert res["oof"].shape == (y.size, 3) and res["n_videos"] == 8 and res["n_folds"] == 6
    again = stop_prediction({"all19": signal, "noise": noise, "twin": twin}, y, videos, n_perm=200, margin=0.05)
    assert again["sets"] == res["sets"]  # seeded


def test_downstream_stop_end_to_end_leaves_the_control_teacher_out():
    y, videos, signal, _ = _stop_data(n_videos=8, per_video=20)
    rng = np.random.default_rng(2)
    scores = rng.standard_normal((y.size, 19))
    scores[:, DIMENSIONS.index("timbre_depth")] += 2 * y  # STOP depends on one dimension
    ids = [f"s{i}" for i in range(y.size)]
    teacher = np.where(np.isin(videos, ["v6", "v7"]), "random", "graded")
    seg = pd.DataFrame({"variant": "all", "segment_id": ids, "video_id": videos, "student": videos,
                        "teacher": teacher, "label": y})
    seg = pd.concat([seg, seg.iloc[::2].assign(variant="duration_matched")])
    sc = pd.DataFrame(scores, columns=list(DIMENSIONS)).assign(segment_id=ids)
    labels = rng.random((200, 19))
    r2 = {d: (1.0 if d == "timbre_depth" else 0.1 * i / 19) for i, d in enumerate(DIMENSIONS)}
    att = {s: rng.standard_normal(40) for s in ids}  # wider than n_components: reduced in each fold
    out = downstream_stop(seg, sc, att, labels, 2, r2, n_perm=100, n_components=16)
    assert out["top"][0] == "timbre_depth" and "timbre_depth" not in out["bottom"]
    assert out["n_control_segments_excluded"] == 40 + 20
    sets = out["variants"]["all"]["sets"]
    assert set(sets) == {"all19", "pca_k", "categories", "top5", "bottom5", "attention"}
    assert out["variants"]["all"]["n"] == 120 and out["variants"]["all"]["n_videos"] == 6
    assert sets["top5"]["auc"] > 0.85 and sets["top5"]["auc_p_perm"] == pytest.approx(1 / 101)
    assert sets["bottom5"]["auc"] < 0.7 and sets["bottom5"]["delta_p"] < 0.05
    assert out["headline"]["top5.auc"] == sets["top5"]["auc"] and out["headline"]["duration_matched.all19.p_tost"] is None
    assert out["variants"]["all"]["sets"]["attention"]["n_features"] == 40
    assert out["variants"]["duration_matched"]["n"] == 60
    with pytest.raises(ValueError, match="no row"):
        downstream_stop(seg, sc.iloc[1:], att, labels, 2, r2, n_perm=10)
    with pytest.raises(ValueError, match="variant 'other'"):
        downstream_stop(seg, sc, att, labels, 2, r2, variants=("other",), n_perm=10)


# --------------------------------------------------------------------------- competition
def test_competition_validation_recovers_monotone_relation():
    rng = np.random.default_rng(0)
    n = 40
    placement = rng.permutation(n) + 1.0
    P = rng.standard_normal((n, 19))
    P[:, 3] = -placement + 0.01 * rng.standard_normal(n)  # better placement (smaller) -> higher quality
    res = competition_validation(P, placement)
    d3 = res["per_dim"][DIMENSIONS[3]]
    assert d3["rho"] < -0.99 and d3["p"] < 1e-10 and d3["rho_agreement"] > 0.99
    others = [abs(v["rho"]) for k, v in res["per_dim"].items() if k != DIMENSIONS[3]]
    assert np.mean(others) < 0.3
    assert res["headline"]["n_dims_p_lt_0.05_agreeing"] >= 1 and res["headline"]["best_dim_rho"] < -0.99
    assert res["mean_quality"]["rho"] < 0


def test_competition_groups_and_loading(tmp_path):
    rng = np.random.default_rng(1)
    groups = np.repeat(["A", "B"], 10)
    placement = np.tile(np.arange(1, 11), 2).astype(float)
    P = np.tile(-placement[:, None], (1, 19)) + 0.001 * rng.standard_normal((20, 19))
    P[groups == "B"] += 100  # a group offset must not matter: ranks are within groups
    res = competition_validation(P, placement, groups=groups)
    assert res["mean_quality"]["rho"] < -0.99
    assert res["per_group"]["A"]["rho"] < -0.99 and res["per_group"]["B"]["n"] == 10
    with pytest.raises(ValueError, match="placements"):
        competition_validation(P, placement[:-1])
    path = tmp_path / "comp.csv"
    pd.DataFrame(P, columns=list(DIMENSIONS)).assign(placement=placement, group=groups).to_csv(path, index=False)
    out = competition_section({"table": str(path)})
    assert out["status"] == "ok" and out["n"] == 20
    assert competition_section(None) == {"status": SKIPPED, "headline": {}}
    pd.DataFrame(P, columns=list(DIMENSIONS)).to_csv(path, index=False)
    with pytest.raises(ValueError, match="placement"):
        load_competition(path)
