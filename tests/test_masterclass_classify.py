import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.pipeline import Pipeline

from pianoeval.masterclass.classify import (
    binary_metrics,
    bootstrap_auc_ci,
    loo_video_cv,
    make_classifier,
    permutation_pvalue_auc,
)


def toy(n_videos=8, per_video=10, n_features=4, signal=0.0, seed=0, stop_counts=None):
    """Videos with `stop_counts[v]` STOP samples each; feature 0 = signal * label + noise."""
    rng = np.random.default_rng(seed)
    stop_counts = stop_counts or [per_video // 2] * n_videos
    y = np.concatenate([np.r_[np.ones(k), np.zeros(per_video - k)] for k in stop_counts]).astype(int)
    videos = np.repeat([f"v{i:02d}" for i in range(len(stop_counts))], per_video)
    X = rng.normal(size=(y.size, n_features))
    X[:, 0] += signal * y
    return X, y, videos


def test_make_classifier():
    plain = make_classifier(C=0.3, seed=1)
    assert isinstance(plain, Pipeline) and [n for n, _ in plain.steps] == ["scale", "lr"]
    assert plain.named_steps["lr"].C == 0.3
    cal = make_classifier(C=0.3, calibrate=True)
    assert isinstance(cal, CalibratedClassifierCV) and cal.method == "isotonic" and cal.cv == 3
    assert cal.estimator.named_steps["lr"].C == 0.3


def test_separable_feature_auc_one_and_minimal_pvalue():
    X, y, videos = toy(signal=0.0, n_features=3)
    X[:, 0] = y * 10 + np.random.default_rng(1).uniform(0, 1, y.size)  # perfectly separable
    cv = loo_video_cv(X, y, videos, C=1.0)
    assert not np.isnan(cv["oof"]).any() and cv["n_skipped"] == 0 and cv["n_folds"] == 8
    m = binary_metrics(y, cv["oof"])
    assert m["auc"] == 1.0 and m["accuracy"] == 1.0
    p, null = permutation_pvalue_auc(X, y, videos, C=1.0, n_perm=30, seed=0)
    assert p == pytest.approx(1 / 31) and null.shape == (30,) and null.max() < 1.0
    assert 0.3 < null.mean() < 0.7


def test_permutation_matches_cv_and_is_deterministic():
    X, y, videos = toy(signal=0.7, n_features=6, seed=2)
    cv = loo_video_cv(X, y, videos, C=0.5)
    obs = binary_metrics(y, cv["oof"])["auc"]
    p1, null1 = permutation_pvalue_auc(X, y, videos, C=0.5, n_perm=25, seed=4)
    p2, null2 = permutation_pvalue_auc(X, y, videos, C=0.5, n_perm=25, seed=4, observed_auc=obs)
    assert p1 == p2 and np.array_equal(null1, null2)  # internal observed AUC == loo_video_cv's
    assert p1 == (1 + np.sum(null1 >= obs - 1e-12)) / 26
    assert not np.array_equal(null1, permutation_pvalue_auc(X, y, videos, C=0.5, n_perm=25, seed=5)[1])


def test_noise_ci_covers_half():
    X, y, videos = toy(n_videos=12, per_video=20, n_features=5, seed=3)
    cv = loo_video_cv(X, y, videos, C=1.0)
    lo, hi = bootstrap_auc_ci(y, cv["oof"], videos, n_boot=1000, seed=0)
    assert lo < 0.5 < hi and hi - lo < 0.4
    assert bootstrap_auc_ci(y, cv["oof"], videos, n_boot=1000, seed=0) == (lo, hi)


def test_bootstrap_matches_naive_cluster_resampling():
    rng = np.random.default_rng(5)
    videos = np.repeat(np.arange(7), rng.integers(3, 9, 7)).astype(str)
    y = rng.integers(0, 2, videos.size)
    p = np.round(rng.uniform(size=videos.size) + 0.3 * y, 1)  # rounding creates ties
    p[[0, 5]] = np.nan  # ignored
    n_boot, seed = 200, 9
    lo, hi = bootstrap_auc_ci(y, p, videos, n_boot=n_boot, seed=seed)
    ok = ~np.isnan(p)
    yk, pk, vk = y[ok], p[ok], videos[ok]
    uniq = np.unique(vk)
    K = np.random.default_rng(seed).multinomial(uniq.size, np.full(uniq.size, 1 / uniq.size), size=n_boot)
    aucs = []
    for counts in K:
        idx = np.concatenate([np.tile(np.flatnonzero(vk == v), c) for v, c in zip(uniq, counts)])
        if len(set(yk[idx])) == 2:
            aucs.append(roc_auc_score(yk[idx], pk[idx]))
    assert (lo, hi) == pytest.approx(tuple(np.percentile(aucs, [2.5, 97.5])), abs=1e-12)


def test_binary_metrics_hand_values():
    y = np.array([1, 0, 1, 1, 0, 0, 1])
    p = np.array([0.9, 0.2, 0.4, 0.6, 0.7, 0.1, np.nan])
    m = binary_metrics(y, p)
    # threshold 0.5 -> predictions 1,0,0,1,1,0: tp=2, fp=1, fn=1, tn=2
    assert (m["n"], m["n_stop"], m["n_continue"], m["n_missing"]) == (6, 3, 3, 1)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["brier"] == pytest.approx((0.01 + 0.04 + 0.36 + 0.16 + 0.49 + 0.01) / 6)
    assert m["log_loss"] == pytest.approx(log_loss(y[:6], p[:6]))
    assert m["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.8, 0.4, 0.6, 0.3, 0.9])))
    assert m["auc"] == pytest.approx(7 / 9) == roc_auc_score(y[:6], p[:6])
    m2 = binary_metrics(y, p, threshold=0.65)  # predictions 1,0,0,0,1,0
    assert (m2["precision"], m2["recall"]) == (pytest.approx(1 / 2), pytest.approx(1 / 3))


def test_binary_metrics_edge_cases():
    one_class = binary_metrics([0, 0, 0], [0.1, 0.6, 0.0])
    assert one_class["auc"] is None and one_class["recall"] is None and one_class["precision"] == 0.0
    assert one_class["f1"] is None and np.isfinite(one_class["log_loss"])  # p = 0 is clipped, not -inf
    assert binary_metrics([1, 0], [1.0, 0.0])["log_loss"] == pytest.approx(0.0, abs=1e-12)
    empty = binary_metrics([1, 0], [np.nan, np.nan])
    assert empty["n"] == 0 and empty["n_missing"] == 2 and empty["auc"] is None and empty["brier"] is None
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        binary_metrics([1, 0], [1.5, 0.0])
    with pytest.raises(ValueError, match="0/1"):
        binary_metrics([2, 0], [0.5, 0.5])


def test_calibration_guard_falls_back_and_flags():
    # STOP counts per video: training minority is 6 when v00 is held out (or v01/v02), 3 when v03 is
    X, y, videos = toy(n_videos=4, per_video=12, signal=2.0, stop_counts=[1, 1, 1, 4])
    cv = loo_video_cv(X, y, videos, C=1.0, calibrated=True, min_calibration_class=6)
    assert [f["calibrated"] for f in cv["folds"]] == [True, True, True, False]
    assert cv["calibration_fallback"] == ["v03"] and cv["n_calibration_fallback"] == 1
    assert "3 < 6" in cv["folds"][3]["reason"] and cv["calibrated_variant"] is True
    assert not np.isnan(cv["oof"]).any()
    # fallback fold predictions equal the plain model's
    plain = loo_video_cv(X, y, videos, C=1.0)
    held = videos == "v03"
    assert np.allclose(cv["oof"][held], plain["oof"][held])
    assert not np.allclose(cv["oof"][~held], plain["oof"][~held])
    assert plain["calibration_fallback"] == [] and not any(f["calibrated"] for f in plain["folds"])
    all_low = loo_video_cv(X, y, videos, C=1.0, calibrated=True, min_calibration_class=20)
    assert all_low["n_calibration_fallback"] == 4


def test_one_class_training_fold_skipped():
    X, y, videos = toy(n_videos=3, per_video=6, stop_counts=[3, 0, 0], signal=1.0)
    cv = loo_video_cv(X, y, videos, C=1.0)
    assert cv["skipped"] == [{"video": "v00", "reason": "training set has only class 0"}]
    assert cv["folds"][0]["status"] == "skipped" and cv["n_skipped"] == 1
    assert np.isnan(cv["oof"][videos == "v00"]).all() and not np.isnan(cv["oof"][videos != "v00"]).any()
    m = binary_metrics(y, cv["oof"])
    assert m["n_missing"] == 6 and m["auc"] is None  # only CONTINUE samples remain predicted
    with pytest.raises(ValueError, match="one class"):
        permutation_pvalue_auc(X, y, videos, C=1.0, n_perm=3)


def test_input_validation():
    X, y, videos = toy(n_videos=2, per_video=4)
    with pytest.raises(ValueError, match="0/1"):
        loo_video_cv(X, y * 2, videos)
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"non-finite .*\[3\]"):
        loo_video_cv(bad, y, videos)
    with pytest.raises(ValueError, match="shape"):
        loo_video_cv(X, y[:-1], videos)
    with pytest.raises(ValueError, match="min_calibration_class"):
        loo_video_cv(X, y, videos, calibrated=True, min_calibration_class=2)


def test_logistic_newton_matches_sklearn_and_row_space_is_exact():
    from sklearn.linear_model import LogisticRegression

    from pianoeval.masterclass.classify import _row_space, logistic_newton

    rng = np.random.default_rng(7)
    X = rng.normal(size=(40, 120))  # more features than rows, as with pooled embeddings
    Y = rng.integers(0, 2, size=(40, 3))
    Y[:, 2] = (X[:, 0] > 0).astype(int)  # a separable column: the penalty keeps it finite
    Xte = rng.normal(size=(9, 120))
    Z, Zte = _row_space(X, Xte)
    assert Z.shape == (40, 40)
    W, b = logistic_newton(Z, Y.astype(float), C=0.7)
    for k in range(3):
        ref = LogisticRegression(C=0.7, tol=1e-10, max_iter=10000).fit(X, Y[:, k])
        assert np.allclose(Zte @ W[:, k] + b[k], ref.decision_function(Xte), atol=1e-5)
        assert np.allclose(Z @ W[:, k] + b[k], ref.decision_function(X), atol=1e-5)
