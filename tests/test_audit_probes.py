import json

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge

from pianoeval.audit import json_ready
from pianoeval.audit.probes import (BatchedMLP, attention_probe_cv, factor_probe_cv,
                                    mlp_probe_cv, ridge_probe_cv, ridge_probe_fixed)

from conftest import linear_labels

torch.set_num_threads(1)


def _linear(n=240, q=4, p=20, seed=0):
    return linear_labels(n, q, p, noise=0.01, seed=seed)


def test_ridge_linear_features_recover_labels():
    X, Y, folds, _ = _linear()
    cv = ridge_probe_cv(X, Y, folds, seed=0)
    fixed = ridge_probe_fixed(X, Y, folds, alpha=1.0)
    assert min(cv["r2"].values()) > 0.95 and min(fixed["r2"].values()) > 0.95
    assert cv["oof"].shape == Y.shape and len(cv["fold_r2"]["dim0"]) == 4
    assert cv["headline"]["ridge_cv_n_r2_gt_0"] == 4
    assert "oof" not in json.loads(json.dumps(json_ready(cv), allow_nan=False))
    assert all(a <= 1.0 for v in cv["alpha"].values() for a in v)  # clean signal: small alpha


def test_ridge_random_features_near_zero():
    _, Y, folds, rng = _linear(seed=1)
    X = rng.standard_normal((len(Y), 30))
    cv = ridge_probe_cv(X, Y, folds, seed=0)
    assert cv["r2_mean"] < 0.03
    assert all(a >= 100 for v in cv["alpha"].values() for a in v)  # pure noise: shrink hard
    assert ridge_probe_fixed(X, Y, folds, alpha=1.0)["r2_mean"] < 0.0  # unshrunk overfits


def test_ridge_closed_form_matches_sklearn():
    X, Y, folds, rng = _linear(seed=2)
    X = X + rng.standard_normal(X.shape)
    out = ridge_probe_fixed(X, Y, folds, alpha=3.0)
    tr, te = folds != 0, folds == 0
    mu, sd = X[tr].mean(0), X[tr].std(0)
    ref = Ridge(alpha=3.0).fit((X[tr] - mu) / sd, Y[tr]).predict((X[te] - mu) / sd)
    assert np.allclose(out["oof"][te], ref, atol=1e-8)
    # p > n uses the kernel (dual) form; same answer
    Xw = np.hstack([X, rng.standard_normal((len(X), 400))])
    wide = ridge_probe_fixed(Xw, Y, folds, alpha=3.0)
    mu, sd = Xw[tr].mean(0), Xw[tr].std(0)
    ref = Ridge(alpha=3.0).fit((Xw[tr] - mu) / sd, Y[tr]).predict((Xw[te] - mu) / sd)
    assert np.allclose(wide["oof"][te], ref, atol=1e-8)
    # the inner-CV probe with a single-alpha grid is the same model
    cv = ridge_probe_cv(X, Y, folds, alphas=[3.0])
    assert np.allclose(cv["oof"], out["oof"], atol=1e-8)


def test_factor_probe_fits_the_factors_inside_the_folds():
    X, Y, folds, rng = _linear(seed=4)
    X = X + rng.standard_normal(X.shape)
    out = factor_probe_cv(X, Y, folds, 2, seed=3)
    sep_dims = ridge_probe_cv(X, Y, folds, seed=3)
    # the dimension part is the plain probe (shared decompositions, alpha per column)
    assert np.allclose(out["dims"]["oof"], sep_dims["oof"]) and out["dims"]["alpha"] == sep_dims["alpha"]
    assert list(out["r2"]) == ["factor_1", "factor_2"] and out["factors_fitted"] == "inside each training fold"
    # fold 0's factor truth comes from the PCA of the other folds' labels only
    from pianoeval.audit.probes import label_factors

    f_tr = label_factors(Y[folds != 0], 2)
    assert np.allclose(f_tr(Y[folds != 0]).std(0), 1.0)  # unit variance on the fitting rows
    ridge0 = ridge_probe_cv(X[folds != 0], f_tr(Y[folds != 0]), np.arange((folds != 0).sum()) % 4, seed=3)
    assert ridge0["r2_mean"] > 0.5
    assert out["factor_minus_dim_r2"] == pytest.approx(out["factor_r2_mean"] - out["dim_r2_mean"])
    per_fold = np.subtract(out["fold_r2_mean"], out["dims"]["fold_r2_mean"])
    assert out["fold_factor_minus_dim_r2"] == pytest.approx(per_fold.tolist())
    assert out["n_folds_factor_above_dim"] == int((per_fold > 0).sum())
    with pytest.raises(ValueError, match="n_factors"):
        factor_probe_cv(X, Y, folds, 0)


def test_grouped_inner_cv_keeps_groups_apart(monkeypatch):
    """With groups, every inner validation fold of the ridge probe holds whole groups."""
    import pianoeval.audit.probes as pr

    X, Y, folds, _ = _linear(n=240, seed=5)
    groups = np.repeat(np.arange(24), 10)
    seen = []
    real = pr._ridge_fold

    def spy(X_, T, tr, te, alphas, inner):
        seen.append((tr, inner))
        return real(X_, T, tr, te, alphas, inner)

    monkeypatch.setattr(pr, "_ridge_fold", spy)
    out = ridge_probe_cv(X, Y, folds, groups=groups, inner_folds=5)
    assert out["inner_split"] == "grouped" and len(seen) == 4
    for tr, inner in seen:
        for g in np.unique(groups[tr]):
            assert np.unique(inner[groups[tr] == g]).size == 1
    seen.clear()
    ridge_probe_cv(X, Y, folds, inner_folds=5)
    tr, inner = seen[0]
    assert any(np.unique(inner[groups[tr] == g]).size > 1 for g in np.unique(groups[tr]))  # random: mixed


def test_grouped_validation_split_for_early_stopping():
    from pianoeval.audit.probes import _split_val

    groups = np.repeat(np.arange(10), [5, 30, 8, 12, 20, 9, 7, 15, 10, 4])
    for seed in range(10):
        fit, val = _split_val(len(groups), 0.15, np.random.default_rng(seed), groups)
        assert not set(groups[fit]) & set(groups[val]) and len(fit) + len(val) == len(groups)
        assert 0 < len(val) < len(groups) and set(groups[fit])


def _max_frame_data(n=240, d=6, seed=0):
    """Target carried by one marked frame per segment: mean pooling dilutes it by 1/T."""
    rng = np.random.default_rng(seed)
    y = rng.standard_normal(n)
    frames = []
    for i in range(n):
        T = int(rng.integers(10, 40))
        f = rng.standard_normal((T, d)).astype(np.float32)
        t = rng.integers(T)
        f[t, 0], f[t, 1] = 4.0, y[i]
        frames.append(f)
    return frames, np.column_stack([y, -y + 0.1 * rng.standard_normal(n)]), np.arange(n) % 4


def test_attention_beats_mean_pooling_on_max_frame_target():
    frames, Y, folds = _max_frame_data()
    kw = dict(seed=0, epochs=30, lr=2e-2, batch_size=16, hidden=16, patience=10)
    att = attention_probe_cv(frames, Y, folds, **kw)
    mean_pool = ridge_probe_cv(np.stack([f.mean(0) for f in frames]), Y, folds)
    assert mean_pool["r2_mean"] < 0.1
    assert att["r2_mean"] > 0.5
    assert att["oof"].shape == Y.shape and att["pooled_oof"].shape == (240, 6)
    json.dumps(json_ready(att), allow_nan=False)
    # the learned pooling concentrates on the marked frame
    assert np.mean(att["pooled_oof"][:, 0]) > 2.0
    small = dict(kw, epochs=3)
    a, b = (attention_probe_cv(frames[:80], Y[:80], folds[:80], **small) for _ in range(2))
    assert np.array_equal(a["oof"], b["oof"]) and np.array_equal(a["pooled_oof"], b["pooled_oof"])
    c = attention_probe_cv(frames[:80], Y[:80], folds[:80], **dict(small, seed=1))
    assert not np.array_equal(a["oof"], c["oof"])


def test_attention_validation():
    frames, Y, folds = _max_frame_data(n=20)
    frames[3] = frames[3][:, :4]
    with pytest.raises(ValueError, match=r"frames_list\[3\]"):
        attention_probe_cv(frames, Y, folds, epochs=1)
    frames, Y, folds = _max_frame_data(n=20)
    frames[5][2, 1] = np.nan
    with pytest.raises(ValueError, match=r"frames_list\[5\]: non-finite"):
        attention_probe_cv(frames, Y, folds, epochs=1)
    with pytest.raises(ValueError, match="19 segments"):
        attention_probe_cv(frames[:19], Y, folds, epochs=1)


def test_batched_mlp_nonlinear_and_deterministic():
    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, (400, 3))
    Y = np.column_stack([X[:, 0] ** 2, np.abs(X[:, 1]), np.sin(2 * X[:, 2])])
    Y += 0.05 * rng.standard_normal(Y.shape)
    folds = np.arange(400) % 4
    kw = dict(hidden=32, seed=0, epochs=60, lr=1e-2, batch_size=32, patience=10)
    out = mlp_probe_cv(X, Y, folds, **kw)
    assert min(out["r2"].values()) > 0.8
    # a linear model cannot do this
    assert ridge_probe_cv(X, Y, folds)["r2_mean"] < 0.1
    again = mlp_probe_cv(X, Y, folds, **kw)
    assert np.array_equal(out["oof"], again["oof"]) and out["best_epoch"] == again["best_epoch"]


def test_batched_mlp_dimensions_are_independent():
    model = BatchedMLP(5, 3, 8, torch.Generator().manual_seed(0))
    x = torch.randn(10, 5)
    model(x)[:, 1].sum().backward()
    g = model.W1.grad
    assert g[1].abs().sum() > 0 and g[0].abs().sum() == 0 and g[2].abs().sum() == 0
    # each column equals its own small MLP
    ref = torch.relu(x @ model.W1[2] + model.b1[2]) @ model.w2[2] + model.b2[2]
    assert torch.allclose(model(x)[:, 2], ref, atol=1e-6)


def test_probe_input_validation():
    X, Y, folds, _ = _linear(n=40)
    with pytest.raises(ValueError, match="fold_ids"):
        ridge_probe_cv(X, Y, folds[:-1])
    with pytest.raises(ValueError, match="at least 2 folds"):
        ridge_probe_fixed(X, Y, np.zeros(40, dtype=int))
    with pytest.raises(ValueError, match="X: expected 40 rows"):
        mlp_probe_cv(X[:-1], Y, folds)
