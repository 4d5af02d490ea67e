"""quality.py: grouped inner validation split, the passage-mean baseline."""

import numpy as np
import pytest

from pianoeval.quality import cross_validate_mlp, fold_pool, inner_validation_split, passage_mean_oof


# A tiny MLP and 12 pianists x 10 segments in 4 pianist folds: the shapes the fold tests train on.
TINY_MLP = dict(hidden=8, n_hidden_layers=1, dropout=0.0, lr=1e-3, weight_decay=0.0, batch_size=32,
                max_epochs=2, patience=2, grad_clip=1.0)


def twelve_pianists(seed: int, n_targets: int):
    """(X (120, 6), Y (120, n_targets), pianist (120,), folds (120,))."""
    rng = np.random.default_rng(seed)
    pianist = np.repeat(np.arange(12), 10)
    return rng.normal(size=(120, 6)), rng.random((120, n_targets)), pianist, pianist % 4


def test_inner_validation_split_keeps_groups_whole():
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 30, 400)
    train = np.flatnonzero(rng.random(400) < 0.75)
    for seed in range(5):
        fit, val = inner_validation_split(train, groups, 0.15, seed)
        assert np.array_equal(np.sort(np.concatenate([fit, val])), train)
        assert not set(groups[fit]) & set(groups[val])  # no group on both sides
        assert 0.05 < val.size / train.size < 0.3


def test_cross_validate_mlp_uses_the_groups_for_early_stopping(monkeypatch):
    """The groups handed to cross_validate_mlp reach the inner split: with one group per pianist, the
    validation rows of every fold are whole pianists of the training folds."""
    import pianoeval.quality as q

    seen = []
    real = q.inner_validation_split

    def spy(train_idx, groups, fraction, seed):
        fit, val = real(train_idx, groups, fraction, seed)
        seen.append((fit, val, groups))
        return fit, val

    monkeypatch.setattr(q, "inner_validation_split", spy)
    X, Y, pianist, folds = twelve_pianists(1, 2)
    oof, res = cross_validate_mlp(X, Y, folds, pianist, TINY_MLP, seeds=[0], val_fraction=0.25)
    assert len(seen) == 4 and oof.shape == (120, 2)
    for (fit, val, groups), k in zip(seen, range(4)):
        assert set(folds[fit]) | set(folds[val]) == set(range(4)) - {k}  # the test fold never validates
        assert not set(pianist[fit]) & set(pianist[val])
        assert len(set(pianist[val])) == 3  # ceil(25% of 9 training pianists), whole pianists


def test_folds_in_a_process_pool_give_the_sequential_results():
    """train_quality.workers > 1 trains folds in spawned processes: same predictions, same weights."""
    import torch

    X, Y, pianist, folds = twelve_pianists(2, 3)
    params = {**TINY_MLP, "dropout": 0.1, "max_epochs": 5, "patience": 3}
    torch.set_num_threads(1)
    seq, seq_res = cross_validate_mlp(X, Y, folds, pianist, params, seeds=[0, 1], val_fraction=0.25)
    pool = fold_pool(2)
    try:
        par, par_res = cross_validate_mlp(X, Y, folds, pianist, params, seeds=[0, 1], val_fraction=0.25, executor=pool)
    finally:
        pool.shutdown()
    assert np.array_equal(seq, par) and not np.allclose(seq, 0)
    assert [r.fold for r in par_res] == [0, 1, 2, 3] and [r.best_epochs for r in par_res] == [r.best_epochs for r in seq_res]
    assert fold_pool(1) is None


def test_passage_mean_oof_by_hand_and_fallbacks():
    Y = np.array([[1.0], [3.0], [5.0], [7.0], [10.0], [20.0]])
    passages = np.array(["a", "a", "a", "b", "b", "c"])
    pieces = np.array(["P", "P", "P", "P", "P", "Q"])
    folds = np.array([0, 1, 1, 0, 1, 0])
    oof, rep = passage_mean_oof(Y, folds, passages, pieces)
    # fold 0 rows (0, 3, 5) from fold-1 rows: a -> mean(3, 5) = 4, b -> 10, c: no passage, no piece Q
    # -> global mean of fold 1 = 6; fold 1 rows (1, 2, 4): a -> 1, a -> 1, b -> 7
    assert oof[:, 0].tolist() == [4.0, 1.0, 1.0, 10.0, 7.0, 6.0]
    assert rep == {"n_passage_mean": 5, "n_piece_fallback": 0, "n_global_fallback": 1}
    pieces2 = np.array(["P", "P", "P", "P", "P", "P"])
    _, rep2 = passage_mean_oof(Y, folds, passages, pieces2)
    assert rep2["n_piece_fallback"] == 1 and rep2["n_global_fallback"] == 0
