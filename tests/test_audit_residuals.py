import numpy as np
import pytest

from pianoeval.audit.residuals import residual_structure


def _data(seed=0, n=400, q=10):
    rng = np.random.default_rng(seed)
    F = rng.standard_normal((n, 2))
    L = np.zeros((2, q))
    L[0, :5], L[1, 5:] = 1.0, 1.0
    return F, L, 0.5 * rng.standard_normal((n, q))


def test_missing_factor_shows_up_in_residuals():
    F, L, E = _data()
    Y = F @ L + E
    pred_one = np.outer(F[:, 0], L[0])  # predicts factor 1 only
    out = residual_structure(Y, pred_one, n_iter=200, seed=0)
    assert out["n_structured"] == 1
    assert {d["dim"] for d in out["components"][0]["dims"]} == {f"dim{i}" for i in range(5, 10)}
    # explained: factor-1 dims ~ 1 / 1.25 = 0.8, factor-2 dims nothing
    assert out["unexplained"]["dim0"] == pytest.approx(0.2, abs=0.05)
    assert out["unexplained"]["dim7"] == pytest.approx(1.0, abs=0.01)  # R^2 < 0 clipped
    assert out["headline"]["n_structured_residual_components"] == 1


def test_full_prediction_leaves_noise():
    F, L, E = _data(seed=1)
    Y = F @ L + E
    out = residual_structure(Y, F @ L, n_iter=200, seed=0)
    assert out["n_structured"] == 0 and out["components"] == []
    assert out["mean_abs_residual_corr"] < 0.1 < out["mean_abs_label_corr"]
    r2 = np.array(list(out["r2"].values()))
    assert np.allclose(np.array(list(out["unexplained"].values())), 1 - r2)
    with pytest.raises(ValueError, match="oof_pred"):
        residual_structure(Y, (F @ L)[:, :3])
