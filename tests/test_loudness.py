"""loudness: BS.1770-4 integrated loudness (checked against pyloudnorm and the standard's sine reference),
exact gain equivariance, normalisation to the target, silence and short clips, the params record."""

import math

import numpy as np
import pyloudnorm
import pytest

from media_server import piano_like
from pianoeval.loudness import (
    LoudnessCounter,
    embedding_params,
    integrated_loudness,
    normalize_loudness,
    split_params,
)


@pytest.mark.parametrize("sr", [16000, 24000, 44100, 48000])
def test_matches_pyloudnorm(sr):
    rng = np.random.default_rng(sr)
    for seed, seconds in ((0, 3.0), (1, 17.3), (2, 61.0)):
        x = piano_like(seconds, sr, seed=seed, level=float(rng.uniform(0.05, 0.8)))
        x[: len(x) // 3] *= 0.01  # a quiet stretch that the relative gate must exclude
        ref = pyloudnorm.Meter(sr, filter_class="DeMan").integrated_loudness(x.astype(np.float64))
        assert integrated_loudness(x, sr) == pytest.approx(ref, abs=0.01)


def test_sine_reference_and_gain_equivariance():
    sr = 48000
    t = np.arange(10 * sr) / sr
    sine = np.sin(2 * np.pi * 997 * t)  # BS.1770: a 0 dBFS 997 Hz sine reads -3.01 LUFS (mono)
    assert integrated_loudness(sine, sr) == pytest.approx(-3.01, abs=0.01)
    x = piano_like(20.0, 24000, seed=4)
    base = integrated_loudness(x, 24000)
    for db in (-12.0, -6.0, 6.0):
        assert integrated_loudness(x * 10 ** (db / 20), 24000) == pytest.approx(base + db, abs=1e-6)


def test_normalize_hits_the_target_whatever_the_level():
    x = piano_like(12.0, 24000, seed=5)
    outs = []
    for db in (-20.0, 0.0, 6.0):
        y, gain = normalize_loudness(x * np.float32(10 ** (db / 20)), 24000, -23.0)
        assert y.dtype == np.float32 and integrated_loudness(y, 24000) == pytest.approx(-23.0, abs=1e-4)
        outs.append(y)
    assert np.abs(outs[0] - outs[2]).max() < 1e-5 * np.abs(outs[1]).max()  # same signal, level removed


def test_silence_and_short_clips():
    y, gain = normalize_loudness(np.zeros(24000, np.float32), 24000, -23.0)
    assert gain is None and not y.any() and integrated_loudness(np.zeros(100), 24000) == -math.inf
    tiny = 1e-5 * piano_like(2.0, 24000)  # below the -70 LUFS absolute gate
    assert normalize_loudness(tiny, 24000, -23.0)[1] is None
    short = piano_like(0.25, 24000)  # shorter than one 400 ms block: measured as one block
    assert math.isfinite(integrated_loudness(short, 24000))
    assert integrated_loudness(normalize_loudness(short, 24000, -30.0)[0], 24000) == pytest.approx(-30.0, abs=1e-4)
    with pytest.raises(ValueError, match="mono"):
        integrated_loudness(np.zeros((10, 2)), 24000)


def test_counter_and_params_record():
    c = LoudnessCounter(-23.0)
    c(piano_like(2.0, 24000), 24000)
    c(np.zeros(4800, np.float32), 24000)
    s = c.summary()
    assert (s["n_scaled"], s["n_silent_unscaled"]) == (1, 1) and "1 silent clips left unscaled" in c.line()
    off = LoudnessCounter(None)
    x = piano_like(1.0, 24000)
    assert off(x, 24000) is x and off.summary() == {"target_lufs": None}
    p = {"n_mels": 128}
    assert embedding_params(p, None) == p and split_params(embedding_params(p, -23)) == (p, -23.0)
    assert split_params(p) == (p, None)
