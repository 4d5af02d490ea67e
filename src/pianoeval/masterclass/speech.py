"""Deterministic speech-like audio for the feedback intervals of simulated masterclasses.

Not intelligible speech, only its coarse signal statistics, so that a simulated session looks like a
recording to every later stage (talk between playing, with a voice's spectrum and rhythm):

* source: glottal pulse train (one pulse per period of a wandering f0 in 100-220 Hz, -12 dB/octave
  glottal roll-off, +6 dB/octave lip radiation), plus a little aspiration noise;
* filter: three formant resonators (2-pole) whose frequencies change per syllable (vowel table);
* rhythm: ~4 syllables per second with a raised-cosine envelope, phrases of 1.2-3.5 s separated by
  0.25-0.8 s pauses;
* level: RMS of the voiced part set to ``rms_dbfs`` (quiet relative to the piano), peak capped.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

# (F1, F2, F3) in Hz of a few vowels (Peterson & Barney averages, adult speakers).
VOWELS = np.array([
    (730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480),
    (570, 840, 2410), (660, 1720, 2410), (490, 1350, 1690), (440, 1020, 2240),
], dtype=float)
BANDWIDTHS = (90.0, 110.0, 160.0)
F0_RANGE = (100.0, 220.0)
GLOTTAL_CORNER_HZ = 300.0
PEAK_CAP = 0.5


def _resonator(x: np.ndarray, freq: float, bw: float, sr: int) -> np.ndarray:
    """2-pole resonance at ``freq`` with bandwidth ``bw``, unit gain at DC-normalised peak."""
    r = np.exp(-np.pi * bw / sr)
    a = [1.0, -2.0 * r * np.cos(2 * np.pi * freq / sr), r * r]
    return lfilter([1.0 - r], a, x)


def _f0_contour(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """(n,) f0 in Hz: a speaker base, phrase-level declination-like drift and syllable-rate wiggles."""
    base = rng.uniform(125.0, 180.0)
    n_knots = max(2, int(n / sr * 4) + 2)  # one knot per ~syllable
    knots = base + np.cumsum(rng.normal(0.0, 9.0, n_knots))
    knots = np.clip(knots, F0_RANGE[0] + 5, F0_RANGE[1] - 5)
    f0 = np.interp(np.arange(n), np.linspace(0, n - 1, n_knots), knots)
    return np.clip(f0, *F0_RANGE)


def _source(f0: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Glottal pulse train: one impulse per f0 period, two-pole glottal low-pass, lip radiation (+6 dB/oct).

    O(n), unlike a sum of harmonics; pulses sit on whole samples, a jitter below 1% of the period
    (natural voices have about that much).
    """
    cycles = np.cumsum(f0) / sr
    pulses = (np.diff(np.floor(cycles), prepend=0.0) > 0).astype(float)
    a = np.exp(-2 * np.pi * GLOTTAL_CORNER_HZ / sr)
    flow = lfilter([1 - a], [1, -a], lfilter([1 - a], [1, -a], pulses))
    voiced = np.diff(flow, prepend=0.0)
    voiced /= voiced.std() or 1.0
    return voiced + 0.05 * rng.standard_normal(f0.size)  # aspiration


def _syllable_plan(duration: float, rng: np.random.Generator) -> list[tuple[float, float]]:
    """[(start, length)] of syllables in seconds: phrases of syllables separated by pauses."""
    plan, t = [], rng.uniform(0.1, 0.3)
    while t < duration:
        phrase_end = min(duration, t + rng.uniform(1.2, 3.5))
        while t < phrase_end:
            length = rng.uniform(0.16, 0.34)  # ~4 syllables per second
            if t + length > duration:
                break
            plan.append((t, length))
            t += length + rng.uniform(0.0, 0.04)
        t += rng.uniform(0.25, 0.8)
    return plan


def synth_speech(duration: float, sample_rate: int, seed, rms_dbfs: float = -36.0) -> np.ndarray:
    """Speech-like audio.

    Parameters
    ----------
    duration : seconds (> 0).
    sample_rate : Hz (>= 8000: the formants stay below 4 kHz).
    seed : anything ``np.random.default_rng`` accepts; same seed -> same samples.
    rms_dbfs : RMS of the voiced (non-silent) part, dB re full scale.

    Returns
    -------
    (round(duration * sample_rate),) float32, peak <= 0.5.
    """
    if not duration > 0 or sample_rate < 8000:
        raise ValueError(f"synth_speech: need duration > 0 and sample_rate >= 8000, got {duration}, {sample_rate}")
    rng = np.random.default_rng(seed)
    n = int(round(duration * sample_rate))
    src = _source(_f0_contour(n, sample_rate, rng), sample_rate, rng)
    out = np.zeros(n)
    voiced = np.zeros(n, dtype=bool)
    for start, length in _syllable_plan(duration, rng):
        i0 = int(start * sample_rate)
        i1 = min(n, i0 + int(length * sample_rate))
        if i1 - i0 < 16:
            continue
        vowel = VOWELS[rng.integers(len(VOWELS))] * rng.uniform(0.92, 1.08)  # speaker/coarticulation spread
        chunk = src[i0:i1]
        if rng.random() < 0.4:  # fricative-like onset: a short burst of high-passed noise
            m = min(chunk.size, int(0.04 * sample_rate))
            chunk = chunk.copy()
            chunk[:m] += 0.3 * np.diff(rng.standard_normal(m + 1))
        y = sum(g * _resonator(chunk, f, bw, sample_rate) for f, bw, g in zip(vowel, BANDWIDTHS, (1.0, 0.6, 0.3)))
        env = np.sin(np.linspace(0, np.pi, i1 - i0)) ** 2 * rng.uniform(0.6, 1.0)  # per-syllable stress
        out[i0:i1] += y * env
        voiced[i0:i1] = True
    if voiced.any():
        rms = np.sqrt(np.mean(out[voiced] ** 2))
        if rms > 0:
            out *= 10 ** (rms_dbfs / 20) / rms
    peak = np.abs(out).max() if n else 0.0
    if peak > PEAK_CAP:
        out *= PEAK_CAP / peak
    return out.astype(np.float32)
