import numpy as np
import pytest

from pianoeval.models.ridge import RidgeProbe, cross_val_predict_groups, fixed_alpha_ridge
from pianoeval.regression_metrics import r2_per_dim


def _linear(n=300, p=20, k=3, noise=0.01, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)) * rng.uniform(0.1, 10, p) + 5
    Y = X @ rng.normal(size=(p, k)) + noise * rng.normal(size=(n, k))
    return X, Y


def test_ridge_recovers_linear_map():
    X, Y = _linear()
    m = RidgeProbe().fit(X[:200], Y[:200])
    assert np.all(r2_per_dim(Y[200:], m.predict(X[200:])) > 0.99)
    assert m.alpha_.shape == (3,) and m.cv_mse_.shape == (15, 3)


def test_alpha_large_for_noise_small_for_noiseless():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 30))
    Y = np.column_stack([X @ rng.normal(size=30), rng.normal(size=200)])
    m = RidgeProbe().fit(X, Y, groups=np.arange(200) % 20)
    assert m.alpha_[0] <= 1e-2 and m.alpha_[1] >= 1e3
    shared = RidgeProbe(per_target=False).fit(X, Y)
    assert shared.alpha_[0] == shared.alpha_[1]


def test_closed_form_matches_sklearn_ridge():
    X, Y = _linear(noise=1.0, seed=2)
    m = RidgeProbe(alphas=[3.0]).fit(X, Y)
    ref = fixed_alpha_ridge(3.0).fit(X, Y)
    np.testing.assert_allclose(m.predict(X), ref.predict(X), rtol=1e-8, atol=1e-8)
    # more features than samples: the kernel (Z Zᵀ) form of the closed-form fit
    rng = np.random.default_rng(5)
    Xw, Yw = rng.normal(size=(40, 90)), rng.normal(size=(40, 3))
    for alpha in (0.5, 30.0):
        wide = RidgeProbe(alphas=[alpha]).fit(Xw, Yw)
        np.testing.assert_allclose(wide.predict(Xw[:7] + 0.1), fixed_alpha_ridge(alpha).fit(Xw, Yw).predict(Xw[:7] + 0.1),
                                   rtol=1e-7, atol=1e-8)


class _Memoriser:
    """Predicts the stored target of an identical training row, else NaN; records groups."""

    def __init__(self, log):
        self.log = log

    def fit(self, X, Y, groups=None):
        self.table = {tuple(x): y for x, y in zip(X, Y)}
        self.log.append(groups)
        return self

    def predict(self, X):
        return np.array([self.table.get(tuple(x), np.full(2, np.nan)) for x in X])


def test_cross_val_predict_never_uses_own_fold():
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(30, 4)), rng.normal(size=(30, 2))
    folds = np.arange(30) % 3
    groups = np.arange(30) // 2
    log = []
    pred = cross_val_predict_groups(lambda: _Memoriser(log), X, Y, folds, groups)
    assert pred.shape == (30, 2) and np.all(np.isnan(pred))  # own row never in the training set
    assert len(log) == 3 and all(len(g) == 20 for g in log)
    # Sanity: the memoriser does recall rows it trained on.
    assert np.allclose(_Memoriser([]).fit(X, Y).predict(X[:3]), Y[:3])


def test_cross_val_predict_with_ridge_and_pipeline():
    X, Y = _linear(n=120, seed=4)
    folds = np.arange(120) % 4
    groups = np.arange(120) // 6
    p1 = cross_val_predict_groups(lambda: RidgeProbe(inner_folds=3), X, Y, folds, groups)
    p2 = cross_val_predict_groups(lambda: fixed_alpha_ridge(1e-3), X, Y, folds, groups)
    assert np.all(r2_per_dim(Y, p1) > 0.99) and np.all(r2_per_dim(Y, p2) > 0.99)
    with pytest.raises(ValueError, match="integers"):
        cross_val_predict_groups(fixed_alpha_ridge, X, Y, folds.astype(float))
    # Fewer groups than inner folds: one group per inner fold.
    assert RidgeProbe(inner_folds=5).fit(X, Y, groups=np.arange(120) % 3).inner_folds_ == 3
    with pytest.raises(ValueError, match="at least 2 groups, got 1"):
        RidgeProbe().fit(X, Y, groups=np.zeros(120))
