from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.pipeline import Pipeline

from pianoeval.masterclass.classify import (
    FeaturePrep,
    binary_metrics,
    bootstrap_auc_ci,
    cv_calibrated,
    cv_logistic,
    fold_threshold_predictions,
    logistic_newton,
    make_classifier,
    make_folds,
    permutation_auc_test,
)
from pianoeval.stats import auc_columns, permutation_interval, within_group_permutations

DESIGN = Path(__file__).parent / "fixtures" / "masterclass" / "design.csv"


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


def test_make_folds_keeps_students_together():
    students = np.repeat([f"s{i}" for i in range(10)], [3, 5, 2, 8, 4, 4, 6, 1, 7, 2])
    folds = make_folds(students, 4)
    assert set(folds) == {0, 1, 2, 3}
    assert pd.Series(folds).groupby(students).nunique().max() == 1
    assert np.array_equal(folds, make_folds(students, 4))  # deterministic
    per_student = make_folds(students, 0)
    assert np.unique(per_student).size == 10 and np.array_equal(per_student, make_folds(students, 50))
    with pytest.raises(ValueError, match="at least 2"):
        make_folds(np.array(["a", "a"]), 3)


def test_cv_logistic_matches_sklearn_per_fold():
    X, y, videos = toy(signal=1.0, n_features=5, seed=1)
    folds = make_folds(videos, 4)
    oof, skipped = cv_logistic(X, y, folds, C=0.5)
    assert skipped == [] and not np.isnan(oof).any()
    for f in range(4):
        te = folds == f
        ref = make_classifier(0.5).set_params(lr__tol=1e-10).fit(X[~te], y[~te])
        assert np.allclose(oof[te], ref.predict_proba(X[te])[:, 1], atol=1e-5)


def test_feature_preps():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(60, 40)) @ rng.normal(size=(40, 40))
    A, B = FeaturePrep("pca", n_components=5)(X[:50], X[50:])
    assert A.shape == (50, 5) and B.shape == (10, 5)
    assert np.allclose(A.mean(0), 0.0, atol=1e-9) and (np.diff(A.var(0)) <= 1e-9).all()  # leading axes first
    Z = (X[:50] - X[:50].mean(0)) / X[:50].std(0)
    assert np.isclose((A ** 2).sum(), np.linalg.svd(Z, compute_uv=False)[:5] @ np.linalg.svd(Z, compute_uv=False)[:5])
    d = rng.uniform(1, 3, (50, 1))
    S, T = FeaturePrep("spline", n_knots=5)(np.log(d[:40]), np.log(d[40:]))
    assert S.shape[1] == T.shape[1] == 7  # n_knots + degree - 1 basis functions
    wide, wide_te = FeaturePrep("standard")(X[:20], X[20:30])  # more columns than rows: row space
    assert wide.shape == (20, 19) and wide_te.shape == (10, 19)  # rank of 20 centred rows
    with pytest.raises(ValueError, match="one column"):
        FeaturePrep("spline")(X[:10], X[10:])


def test_separable_feature_auc_one_and_minimal_pvalue():
    X, y, videos = toy(signal=0.0, n_features=3)
    X[:, 0] = y * 10 + np.random.default_rng(1).uniform(0, 1, y.size)  # perfectly separable
    r = permutation_auc_test(X, y, videos, make_folds(videos, 0), n_perm=39, seed=0)
    assert r["auc"] == 1.0 and r["p"] == pytest.approx(1 / 40) and r["null"].shape == (39,)
    assert r["ci_low"] > 0.5 and r["ci_high"] > 1.0 - 1e-9  # 1 - (largest null - 0.5), 1 + (0.5 - smallest)
    few = permutation_auc_test(X, y, videos, make_folds(videos, 0), n_perm=30, seed=0)
    assert few["ci_low"] == float("-inf")  # 30 permutations can never reject at 95%: unbounded
    assert 0.3 < r["null_mean"] < 0.7
    m = binary_metrics(y, r["oof"])
    assert m["auc"] == 1.0 and m["accuracy"] == 1.0


def test_permutation_test_is_one_procedure_and_deterministic():
    X, y, videos = toy(signal=0.7, n_features=6, seed=2)
    folds = make_folds(videos, 4)
    r1 = permutation_auc_test(X, y, videos, folds, C=0.5, n_perm=25, seed=4)
    r2 = permutation_auc_test(X, y, videos, folds, C=0.5, n_perm=25, seed=4)
    assert r1["auc"] == r2["auc"] and np.array_equal(r1["null"], r2["null"])
    oof, _ = cv_logistic(X, y, folds, C=0.5)  # the observed AUC is the plain CV's
    assert r1["auc"] == pytest.approx(roc_auc_score(y, oof), abs=1e-9)
    assert r1["p"] == (1 + np.sum(r1["null"] >= r1["auc"] - 1e-12)) / 26
    assert (r1["ci_low"], r1["ci_high"]) == permutation_interval(r1["auc"], r1["null"])
    other = permutation_auc_test(X, y, videos, folds, C=0.5, n_perm=25, seed=5)
    assert not np.array_equal(r1["null"], other["null"])


def test_binary_metrics_hand_values():
    y = np.array([1, 0, 1, 1, 0, 0, 1])
    p = np.array([0.9, 0.2, 0.4, 0.6, 0.7, 0.1, np.nan])
    m = binary_metrics(y, p)
    # threshold 0.5 -> predictions 1,0,0,1,1,0: tp=2, fp=1, fn=1, tn=2
    assert (m["n"], m["n_stop"], m["n_continue"], m["n_missing"]) == (6, 3, 3, 1)
    assert m["accuracy"] == pytest.approx(4 / 6) and m["balanced_accuracy"] == pytest.approx(4 / 6)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["brier"] == pytest.approx((0.01 + 0.04 + 0.36 + 0.16 + 0.49 + 0.01) / 6)
    assert m["log_loss"] == pytest.approx(log_loss(y[:6], p[:6]))
    assert m["auc"] == pytest.approx(7 / 9) == roc_auc_score(y[:6], p[:6])
    m2 = binary_metrics(y, p, pred=np.array([1, 0, 0, 0, 0, 0, 1], bool))  # tp=1, fn=2, tn=3
    assert m2["threshold"] is None and m2["balanced_accuracy"] == pytest.approx((1 / 3 + 1) / 2)
    assert m2["precision"] == 1.0


def test_fold_threshold_is_the_training_stop_rate():
    y = np.array([1, 1, 0, 0, 1, 0, 0, 0])
    folds = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    p = np.array([0.3, 0.2, 0.1, 0.6, 0.3, 0.2, 0.1, 0.6])
    pred, thr = fold_threshold_predictions(p, y, folds)
    assert thr == {0: 0.25, 1: 0.5}  # fold 0 is predicted with fold 1's STOP rate and vice versa
    assert pred.tolist() == [True, False, False, True, False, False, False, True]


def test_binary_metrics_edge_cases():
    one_class = binary_metrics([0, 0, 0], [0.1, 0.6, 0.0])
    assert one_class["auc"] is None and one_class["recall"] is None and one_class["precision"] == 0.0
    assert one_class["f1"] is None and one_class["balanced_accuracy"] is None and np.isfinite(one_class["log_loss"])
    empty = binary_metrics([1, 0], [np.nan, np.nan])
    assert empty["n"] == 0 and empty["n_missing"] == 2 and empty["auc"] is None and empty["brier"] is None
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        binary_metrics([1, 0], [1.5, 0.0])
    with pytest.raises(ValueError, match="0/1"):
        binary_metrics([2, 0], [0.5, 0.5])


def test_calibration_guard_falls_back_and_flags():
    X, y, videos = toy(n_videos=4, per_video=12, signal=2.0, stop_counts=[1, 1, 1, 4])
    folds = make_folds(videos, 0)
    cv = cv_calibrated(X, y, folds, C=1.0, min_calibration_class=6)
    # training minority is 6 when v00, v01 or v02 is held out, 3 when v03 is
    assert cv["calibration_fallback_folds"] == [3] and cv["n_calibration_fallback"] == 1
    assert not np.isnan(cv["oof"]).any()
    plain, _ = cv_logistic(X, y, folds, C=1.0)
    held = videos == "v03"
    assert np.allclose(cv["oof"][held], plain[held], atol=1e-6)
    assert not np.allclose(cv["oof"][~held], plain[~held])
    with pytest.raises(ValueError, match="min_calibration_class"):
        cv_calibrated(X, y, folds, min_calibration_class=2)


def test_one_class_training_fold_skipped():
    X, y, videos = toy(n_videos=3, per_video=6, stop_counts=[3, 0, 0], signal=1.0)
    oof, skipped = cv_logistic(X, y, make_folds(videos, 0), C=1.0)
    assert skipped == [0] and np.isnan(oof[videos == "v00"]).all() and not np.isnan(oof[videos != "v00"]).any()
    m = binary_metrics(y, oof)
    assert m["n_missing"] == 6 and m["auc"] is None  # only CONTINUE samples remain predicted
    r = permutation_auc_test(X, y, videos, make_folds(videos, 0), n_perm=3)
    assert r["auc"] is None and r["p"] is None and r["skipped"] == [0]


def test_input_validation():
    X, y, videos = toy(n_videos=2, per_video=4)
    with pytest.raises(ValueError, match="0/1"):
        permutation_auc_test(X, y * 2, videos, make_folds(videos, 0))
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"non-finite .*\[3\]"):
        permutation_auc_test(bad, y, videos, make_folds(videos, 0))
    with pytest.raises(ValueError, match="disagree"):
        cv_logistic(X, y[:-1], make_folds(videos, 0))


def test_logistic_newton_matches_sklearn_row_space_and_batches():
    from pianoeval.masterclass.classify import _row_space

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
    A = rng.normal(size=(4, 30, 3))
    YY = rng.integers(0, 2, size=(4, 30, 5)).astype(float)
    Wb, bb = logistic_newton(A, YY, C=1.0)  # 4 designs at once == one at a time
    for d in range(4):
        w1, b1 = logistic_newton(A[d], YY[d], C=1.0)
        assert np.allclose(Wb[d], w1, atol=1e-6) and np.allclose(bb[d], b1, atol=1e-6)


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


def null_coverage(y, videos, students, *, n_sets=200, n_perm=49, n_noise=1, extra=None, seed=0):
    """The stage's interval procedure on ``n_sets`` null data sets of one design: noise features (plus
    ``extra`` columns shared by every set, e.g. log duration where it carries no information), the
    student-grouped folds, ``n_perm`` within-video permutations, the shift-model interval. Also the
    video-bootstrap percentile interval of the same out-of-fold scores, for comparison.

    Returns (coverage of 0.5 by the permutation interval, by the bootstrap interval, mean AUC).
    """
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_sets, y.size, n_noise))
    if extra is not None:
        X = np.concatenate([X, np.broadcast_to(extra, (n_sets, *extra.shape))], axis=2)
    folds = make_folds(students, 6)
    labels = np.column_stack([y, within_group_permutations(y, videos, n_perm, seed)])
    oof, skipped = cv_logistic(X, labels, folds)  # (n_sets, N, 1 + n_perm), one batched Newton per fold
    assert skipped == []
    auc = np.stack([auc_columns(labels, oof[d]) for d in range(n_sets)])  # (n_sets, 1 + n_perm)
    perm_cov = np.mean([lo <= 0.5 <= hi for lo, hi in (permutation_interval(a[0], a[1:]) for a in auc)])
    boot_cov = np.mean([lo <= 0.5 <= hi for lo, hi in
                        (bootstrap_auc_ci(y, oof[d, :, 0], videos, n_boot=300, seed=d) for d in range(n_sets))])
    return perm_cov, boot_cov, auc[:, 0].mean()


@pytest.mark.parametrize("variant", ["all", "duration_matched"])
def test_interval_covers_half_on_null_data_with_the_real_design(variant):
    """The committed run's design (videos, students, class balance per video, durations), 200 null data
    sets: the 95% permutation interval must cover 0.5 in >= 90% of them."""
    design = pd.read_csv(DESIGN)
    d = design[design["variant"] == variant]
    y, videos, students = d["label"].to_numpy(int), d["video_id"].to_numpy(str), d["student"].to_numpy(str)
    extra = np.log(d["duration"].to_numpy(float))[:, None] if variant == "duration_matched" else None
    perm_cov, boot_cov, mean_auc = null_coverage(y, videos, students, extra=extra)
    assert perm_cov >= 0.90, f"{variant}: permutation interval covered 0.5 in {perm_cov:.1%} of null data sets"
    assert 0.4 < mean_auc < 0.55
    print(f"{variant}: permutation {perm_cov:.3f}, video bootstrap {boot_cov:.3f}, mean null AUC {mean_auc:.3f}")


def test_interval_covers_half_with_five_videos():
    """A real-style layout of 5 videos (61 STOP / 334 CONTINUE before matching, balanced after): the
    permutation interval keeps its coverage where the video bootstrap has 5 clusters to resample."""
    stops, conts = [8, 15, 10, 12, 16], [60, 70, 64, 66, 74]
    y = np.concatenate([np.r_[np.ones(s), np.zeros(c)] for s, c in zip(stops, conts)]).astype(int)
    videos = np.repeat([f"r{i}" for i in range(5)], np.add(stops, conts))
    perm_cov, boot_cov, _ = null_coverage(y, videos, videos, seed=1)
    assert perm_cov >= 0.90
    assert boot_cov < perm_cov
