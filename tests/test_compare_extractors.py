"""compare_extractors: the baselines, the bootstrap interval of the R² difference (calibrated on null
data) and the rows a store offers."""

from __future__ import annotations

import numpy as np

from pianoeval.compare_extractors import bootstrap_r2, passage_mean_oof, probe_rows
from pianoeval.embedding_store import EmbeddingStore, write_embedding_store


def test_passage_mean_uses_training_folds_only():
    pieces = np.array(["a", "a", "b", "b", "c", "c"])
    folds = np.array([0, 1, 0, 1, 0, 1])
    Y = np.array([[1.0], [3.0], [10.0], [20.0], [5.0], [7.0]])
    pred = passage_mean_oof(Y, folds, pieces)
    # Segment 0 (fold 0, piece a) is predicted by piece a's fold-1 mean: 3.
    np.testing.assert_array_equal(pred[:, 0], [3.0, 1.0, 20.0, 10.0, 7.0, 5.0])
    # A piece absent from the training folds falls back to the training mean.
    pred = passage_mean_oof(Y, np.array([0, 0, 1, 1, 1, 1]), pieces)
    np.testing.assert_allclose(pred[:2, 0], Y[2:, 0].mean())


def test_delta_interval_covers_zero_on_null_data_and_excludes_it_for_a_real_gain():
    rng = np.random.default_rng(0)
    covered, detected = 0, 0
    reps = 40
    for r in range(reps):
        n, k = 120, 3
        groups = np.repeat(np.arange(30), 4)  # 30 "pianists" of 4 segments
        Y = rng.normal(size=(n, k))
        a = Y + rng.normal(scale=0.8, size=(n, k))          # two equally good predictors (null)
        b = Y + rng.normal(scale=0.8, size=(n, k))
        c = Y + rng.normal(scale=0.4, size=(n, k))          # a clearly better one
        res = bootstrap_r2(Y, {"a": a, "b": b, "c": c}, "a", groups, n_boot=200, seed=r)
        lo, hi = res["b"]["delta_ci"]
        covered += lo <= 0 <= hi
        detected += res["c"]["delta_ci"][0] > 0
        assert "delta" not in res["a"] and res["a"]["ci"][0] < res["a"]["ci"][1]
    assert covered / reps >= 0.85      # nominal 95%: null differences are rarely called real
    assert detected == reps            # a large real gain is always seen


def test_probe_rows_cover_layers_and_concat_parts(tmp_path):
    rng = np.random.default_rng(1)
    ml = tmp_path / "ml.safetensors"
    write_embedding_store(ml, [(f"k{i}", rng.normal(size=(5, 2, 3)).astype(np.float32)) for i in range(3)],
                          extractor="muq", extractor_params={}, frame_rate=25.0, layers=[9, 12])
    cc = tmp_path / "cc.safetensors"
    write_embedding_store(cc, [(f"k{i}", rng.normal(size=(5, 4)).astype(np.float32)) for i in range(3)],
                          extractor="both", extractor_params={}, frame_rate=25.0,
                          parts=[{"name": "x", "start": 0, "stop": 1}, {"name": "y", "start": 1, "stop": 4}])
    assert [r for r, _ in probe_rows(EmbeddingStore(ml), ["k0"])] == ["muq", "muq/layer9", "muq/layer12"]
    rows = dict(probe_rows(EmbeddingStore(cc), ["k0"]))
    assert list(rows) == ["both", "both/x", "both/y"]
    st = EmbeddingStore(cc)
    full = st.pooled()
    np.testing.assert_array_equal(st.pooled(**rows["both/y"]), full[:, [1, 2, 3, 5, 6, 7]])
