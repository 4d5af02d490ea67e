import numpy as np
import pytest

from pianoeval.audit.correlation import correlation_redundancy
from pianoeval.io import read_json, write_json


def _labels(seed=0, n=300):
    rng = np.random.default_rng(seed)
    a, b, c = rng.standard_normal((3, n))
    return np.column_stack([
        a,
        a + 0.3 * rng.standard_normal(n),   # r ~ 0.96 with a
        b,
        b + 0.8 * rng.standard_normal(n),   # r ~ 0.78 with b
        c,
    ]), ["a", "a2", "b", "b2", "c"]


def test_matrices_pairs_and_clusters(tmp_path):
    Y, names = _labels()
    out = correlation_redundancy(Y, names, top_k=3)
    P = np.array(out["pearson"])
    assert np.allclose(P, P.T) and np.allclose(np.diag(P), 1.0)
    assert np.allclose(P, np.corrcoef(Y, rowvar=False))
    assert np.allclose(np.diag(out["spearman"]), 1.0)
    assert {out["top_pairs"][0]["a"], out["top_pairs"][0]["b"]} == {"a", "a2"}
    assert out["top_pairs"][0]["pearson"] > 0.9
    assert len(out["top_pairs"]) == 3
    # a-a2 (0.96) and b-b2 (~0.78) exceed 0.7; nothing in (0.5, 0.7]
    assert out["headline"]["n_pairs_r_gt_0.7"] == 2
    assert out["headline"]["n_pairs_r_0.5_0.7"] == 0
    assert out["headline"]["n_pairs"] == 10
    order = out["cluster_names"]
    assert abs(order.index("a") - order.index("a2")) == 1
    assert abs(order.index("b") - order.index("b2")) == 1
    assert sorted(out["cluster_order"]) == list(range(5))
    # VIF: independent columns near 1, the near-copies clearly inflated
    assert out["vif"]["c"] < 1.1
    assert out["vif"]["a"] > 5 and out["vif_capped"] == []
    write_json(tmp_path / "c.json", out)
    assert read_json(tmp_path / "c.json")["headline"]["n_pairs"] == 10


def test_exact_copy_vif_capped():
    Y, names = _labels()
    Y = np.column_stack([Y, Y[:, 4]])
    out = correlation_redundancy(Y, names + ["c_copy"], vif_cap=1e6)
    assert out["vif"]["c"] > 1000 and out["vif"]["c_copy"] > 1000
    assert set(out["vif_capped"]) >= {"c", "c_copy"}
    assert all(np.isfinite(v) for v in out["vif"].values())
    assert out["headline"]["max_vif"] == 1e6


def test_default_names_and_bad_input():
    rng = np.random.default_rng(1)
    out = correlation_redundancy(rng.random((50, 19)))
    assert out["names"][0] == "timing" and len(out["pearson"]) == 19
    Y = rng.random((50, 3))
    Y[:, 1] = 0.5
    with pytest.raises(ValueError, match="dim1"):
        correlation_redundancy(Y)
    with pytest.raises(ValueError, match="names"):
        correlation_redundancy(rng.random((50, 3)), ["x", "y"])
    Y = rng.random((50, 3))
    Y[4, 2] = np.nan
    with pytest.raises(ValueError, match="row 4, column 2"):
        correlation_redundancy(Y)
