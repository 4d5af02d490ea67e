import numpy as np
import pytest
import torch

from pianoeval.models.pooling import masked_mean_std, mean_std_pool


def test_masked_pooling_ignores_padding_and_matches_numpy():
    rng = np.random.default_rng(0)
    seqs = [rng.normal(size=(t, 5)) for t in (7, 3, 11)]
    frames = torch.full((3, 11, 5), float("nan"), dtype=torch.float64)  # padding is garbage
    mask = torch.zeros(3, 11, dtype=torch.bool)
    for i, s in enumerate(seqs):
        frames[i, : len(s)] = torch.from_numpy(s)
        mask[i, : len(s)] = True
    out = masked_mean_std(frames, mask).numpy()
    assert out.shape == (3, 10)
    for i, s in enumerate(seqs):
        np.testing.assert_allclose(out[i], mean_std_pool(s), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(out[i], np.concatenate([s.mean(0), s.std(0)]), rtol=1e-12)


def test_float32_close_and_constant_feature_is_finite():
    x = np.random.default_rng(1).normal(size=(20, 4)).astype(np.float32)
    x[:, 2] = 1.5
    out = masked_mean_std(torch.from_numpy(x)[None], torch.ones(1, 20, dtype=torch.bool))[0].numpy()
    np.testing.assert_allclose(out, mean_std_pool(x), rtol=1e-5, atol=1e-5)
    assert np.all(np.isfinite(out)) and 0 < out[6] < 1e-5


def test_empty_row_and_bad_shapes_raise():
    with pytest.raises(ValueError, match="no valid frames"):
        masked_mean_std(torch.zeros(2, 3, 4), torch.tensor([[True, False, False], [False] * 3]))
    with pytest.raises(ValueError):
        mean_std_pool(np.zeros((0, 4)))
