import numpy as np
import pytest

from pianoeval.audit.distributions import distributions, kde_entropy


def test_uniform_entropy_zero_no_flags():
    rng = np.random.default_rng(0)
    Y = rng.uniform(0.05, 0.95, size=(2000, 2))
    out = distributions(Y, ["u", "v"])
    for d in ("u", "v"):
        assert abs(out["per_dim"][d]["entropy"]) < 0.06
        assert out["per_dim"][d]["floor_fraction"] == 0.0
        assert not out["per_dim"][d]["floor_flag"] and not out["per_dim"][d]["ceiling_flag"]
        assert abs(out["per_dim"][d]["skewness"]) < 0.15
    assert out["floor_flags"] == [] and out["ceiling_flags"] == []
    assert len(out["kde_grid"]) == 101 and len(out["kde_density"]["u"]) == 101


def test_floor_flag_and_concentrated_entropy():
    rng = np.random.default_rng(1)
    n = 1000
    piled = np.where(rng.random(n) < 0.3, 0.0, rng.uniform(0, 1, n))
    narrow = np.clip(rng.normal(0.5, 0.05, n), 0, 1)
    out = distributions(np.column_stack([piled, narrow]), ["piled", "narrow"])
    assert out["per_dim"]["piled"]["floor_flag"] and out["floor_flags"] == ["piled"]
    assert out["per_dim"]["piled"]["floor_fraction"] > 0.3
    assert not out["per_dim"]["piled"]["ceiling_flag"]
    assert out["per_dim"]["piled"]["skewness"] > 0
    # Gaussian with sd 0.05: h = 0.5 log(2 pi e sd^2) = -1.58 nats
    assert out["per_dim"]["narrow"]["entropy"] == pytest.approx(-1.58, abs=0.1)
    assert out["headline"]["n_floor_flags"] == 1
    assert out["per_dim"]["narrow"]["variance"] == pytest.approx(narrow.var())


def test_degenerate_and_range():
    rng = np.random.default_rng(2)
    Y = np.column_stack([np.full(100, 0.4), rng.random(100)])
    out = distributions(Y, ["const", "ok"])
    assert out["per_dim"]["const"]["entropy"] is None and out["degenerate"] == ["const"]
    assert out["headline"]["mean_entropy"] == out["per_dim"]["ok"]["entropy"]
    h, dens = kde_entropy(rng.random(500))
    assert dens.shape == (1001,) and np.isclose(np.trapezoid(dens, np.linspace(0, 1, 1001)), 1)
    with pytest.raises(ValueError, match="'b'.*\\[0, 1\\]"):
        distributions(np.column_stack([rng.random(10), rng.random(10) * 6 + 1]), ["a", "b"])
