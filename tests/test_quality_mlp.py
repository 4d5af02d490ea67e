import json

import numpy as np
import pytest
import torch

from pianoeval.models.pooling import mean_std_pool
from pianoeval.models.quality_mlp import QualityHead, QualityMLP, load_checkpoint, save_checkpoint
from pianoeval.regression_metrics import r2_per_dim

torch.set_num_threads(1)
FAST = dict(hidden=64, lr=3e-3, batch_size=32, patience=10)


def _synthetic(n=500, d=8, k=3, seed=0):
    """Frame sequences whose targets are a sigmoid of a linear function of their pooled vector."""
    rng = np.random.default_rng(seed)
    frames = [rng.normal(rng.normal(size=d), rng.uniform(0.5, 2, d), size=(rng.integers(5, 30), d))
              for _ in range(n)]
    X = np.stack([mean_std_pool(f) for f in frames])
    W = rng.normal(size=(2 * d, k))
    Z = (X - X.mean(0)) / X.std(0) @ W / np.sqrt(2 * d)
    return frames, X, 1 / (1 + np.exp(-2 * Z))


@pytest.fixture(scope="module")
def data():
    return _synthetic()


@pytest.fixture(scope="module")
def fitted(data):
    _, X, Y = data
    return QualityMLP(max_epochs=60, **FAST).fit(X[:400], Y[:400], X[400:], Y[400:])


def test_learns_synthetic_target(data, fitted):
    _, X, Y = data
    assert np.mean(r2_per_dim(Y[400:], fitted.predict(X[400:]))) > 0.8
    assert fitted.best_val_r2_ == max(h["val_r2"] for h in fitted.history_)
    assert fitted.history_[fitted.best_epoch_ - 1]["val_r2"] == fitted.best_val_r2_


def test_deterministic_given_seed(data, fitted):
    _, X, Y = data
    again = QualityMLP(max_epochs=60, **FAST).fit(X[:400], Y[:400], X[400:], Y[400:])
    assert np.array_equal(again.predict(X), fitted.predict(X))
    other = QualityMLP(max_epochs=5, seed=1, **FAST).fit(X[:400], Y[:400], X[400:], Y[400:])
    first5 = QualityMLP(max_epochs=5, **FAST).fit(X[:400], Y[:400], X[400:], Y[400:])
    assert not np.array_equal(other.predict(X), first5.predict(X))


def test_early_stopping_triggers_on_noise():
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(200, 16)), rng.random((200, 2))
    m = QualityMLP(hidden=64, lr=3e-3, max_epochs=200, patience=5).fit(X[:150], Y[:150], X[150:], Y[150:])
    assert m.best_epoch_ < m.n_epochs_ < 200
    assert m.n_epochs_ - m.best_epoch_ == 5
    # Best weights were restored: validation R² now equals the best recorded one.
    assert np.mean(r2_per_dim(Y[150:], m.predict(X[150:]))) == pytest.approx(m.best_val_r2_, abs=1e-6)


def test_no_validation_runs_all_epochs(data):
    _, X, Y = data
    m = QualityMLP(max_epochs=4, **FAST).fit(X[:100], Y[:100])
    assert m.n_epochs_ == m.best_epoch_ == 4 and m.history_[-1]["val_r2"] is None


def test_checkpoint_round_trip_and_frames_path(tmp_path, data, fitted):
    frames, X, _ = data
    st, js = save_checkpoint(fitted, tmp_path / "ckpt", dim_names=["a", "b", "c"], metadata={"features": "logmel"})
    head = load_checkpoint(tmp_path / "ckpt")
    assert isinstance(head, QualityHead) and not head.training
    assert head.config["dim_names"] == ["a", "b", "c"] and head.config["metadata"] == {"features": "logmel"}
    assert head.config["hyperparameters"]["lr"] == 3e-3 and head.config["best_epoch"] == fitted.best_epoch_
    assert np.array_equal(head.predict_pooled(X), fitted.predict(X))
    np.testing.assert_allclose(head.predict_frames(frames[:40], batch_size=7), fitted.predict(X[:40]), atol=1e-5)
    np.testing.assert_allclose(fitted.predict_frames(frames[:40]), fitted.predict(X[:40]), atol=1e-5)


def test_checkpoint_shape_mismatch_raises(tmp_path, fitted):
    save_checkpoint(fitted, tmp_path / "m", dim_names=["a", "b", "c"])
    cfg = json.loads((tmp_path / "m.json").read_text())
    cfg["hyperparameters"]["hidden"] = 32
    (tmp_path / "m.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"m\.safetensors"):
        load_checkpoint(tmp_path / "m")
    with pytest.raises(ValueError, match="dim_names required"):
        save_checkpoint(fitted, tmp_path / "x")


def test_production_defaults_train_on_production_sized_data():
    # ~900 x 256 at the production defaults (timing is measured by scripts/benchmark.py, not here):
    # the loss goes down and the fitting rows are predicted better than by their mean.
    rng = np.random.default_rng(2)
    X = rng.normal(size=(900, 256))
    Y = 1 / (1 + np.exp(-X[:, :19]))
    m = QualityMLP(max_epochs=20, patience=100).fit(X, Y, X[:100], Y[:100])
    assert m.n_epochs_ == 20 and m.predict(X[:5]).shape == (5, 19)
    assert m.history_[-1]["train_loss"] < 0.8 * m.history_[0]["train_loss"]
    assert np.mean(r2_per_dim(Y[:100], m.predict(X[:100]))) > 0.2
