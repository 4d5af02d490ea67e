"""Augmentations: same params -> same bytes, parameters inside their severity's interval, the phone
chain's band limit, exact level change, grid validation, balanced design."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from conftest import REPO
from pianoeval.t4.augment import (AUGMENTATIONS, FILTER_STAGES, apply_augmentation, assign_conditions, band_limit,
                                  draw_params, ordered_parallel_map, pair_rng, params_json, parse_grid)
from pianoeval.t4.rooms import RoomBank, build_room_bank

SR = 24000
GRID = parse_grid(yaml.safe_load((REPO / "params.yaml").read_text())["t4_augment"]["augmentations"])


@pytest.fixture(scope="module")
def bank() -> RoomBank:
    # one IR per severity interval of the default grid (reverb and phone pick by measured RT60)
    irs, infos = build_room_bank([0.25, 0.35, 0.45, 0.75, 1.4], SR, seed=0)
    return RoomBank(irs, np.array([i["rt60_target"] for i in infos]), np.array([i["rt60_measured"] for i in infos]), SR)


def piano_like(seconds: float = 3.0, seed: int = 0) -> np.ndarray:
    """Decaying harmonic tones with silence between them: onsets, a spectrum, and quiet parts."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = np.zeros_like(t)
    for onset in np.arange(0.1, seconds - 0.5, 0.4):
        f0 = 110 * 2 ** (rng.integers(0, 36) / 12)
        env = np.where(t >= onset, np.exp(-(t - onset) * 4), 0.0)
        x += sum(0.3 / h * np.sin(2 * np.pi * h * f0 * t) for h in range(1, 6)) * env
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def test_default_grid_covers_every_augmentation_with_its_severities():
    """The committed grid: every augmentation, at least two severities each, level at +-6 and +-12 dB."""
    assert {c.augmentation for c in GRID} == set(AUGMENTATIONS)
    assert sorted(c.ranges["gain_db"] for c in GRID if c.augmentation == "level") == \
        [(-12.0, -12.0), (-6.0, -6.0), (6.0, 6.0), (12.0, 12.0)]
    assert all(sum(c.augmentation == a for c in GRID) >= 2 for a in AUGMENTATIONS)


@pytest.mark.parametrize("cond", GRID, ids=lambda c: c.name)
def test_same_params_same_bytes(cond, bank):
    x = piano_like()
    params = draw_params(cond, pair_rng(7, "clip-a", 3), bank)
    assert params == draw_params(cond, pair_rng(7, "clip-a", 3), bank)  # same (seed, item, k): same draw
    y1, c1 = apply_augmentation(cond.augmentation, x, SR, params, bank)
    y2, c2 = apply_augmentation(cond.augmentation, x.copy(), SR, json.loads(params_json(params)), bank)
    assert y1.tobytes() == y2.tobytes() and c1 == c2  # also from the pairs table's JSON
    assert y1.shape == x.shape and y1.dtype == np.float32 and np.abs(y1).max() <= 1.0
    if cond.augmentation != "level" or params["gain_db"] != 0:
        assert not np.array_equal(y1, x)


def test_different_pairs_draw_different_params(bank):
    cond = next(c for c in GRID if c.augmentation == "phone")
    draws = [draw_params(cond, pair_rng(0, f"clip-{i}", k), bank) for i in range(5) for k in range(3)]
    assert len({d["noise_seed"] for d in draws}) == len(draws)
    assert draws[0] != draw_params(cond, pair_rng(1, "clip-0", 0), bank)  # the seed matters


@pytest.mark.parametrize("cond", GRID, ids=lambda c: c.name)
def test_parameters_within_their_severity_intervals(cond, bank):
    for i in range(40):
        p = draw_params(cond, pair_rng(0, f"clip-{i}", i % 4), bank)
        for name, (lo, hi) in cond.ranges.items():
            if name == "rt60":
                value = p["ir_rt60"]
                assert bank.rt60_measured[p["ir_index"]] == pytest.approx(value, abs=1e-4)
            elif cond.augmentation == "eq":
                value = None
                for g in (p["low_gain_db"], p["peak_gain_db"], p["high_gain_db"]):
                    assert lo <= abs(g) <= hi
            elif name == "semitones":
                value = abs(p["semitones"])
            else:
                value = p[name]
            if value is not None:
                assert lo <= value <= hi, (name, value)
        if cond.augmentation == "eq":
            assert 80 <= p["low_shelf_hz"] <= 300 and 300 <= p["peak_hz"] <= 3000 and 3000 <= p["high_shelf_hz"] <= 8000
            assert 0.7 <= p["peak_q"] <= 2.0


def test_signed_parameters_take_both_signs(bank):
    pitch = next(c for c in GRID if c.augmentation == "pitch")
    signs = {np.sign(draw_params(pitch, pair_rng(0, f"c{i}", 0), bank)["semitones"]) for i in range(30)}
    assert signs == {-1.0, 1.0}


def band_energy_db(x: np.ndarray, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    f = np.fft.rfftfreq(len(x), 1 / SR)
    return 10 * np.log10(spec[(f >= lo) & (f < hi)].sum() + 1e-30)


def test_band_limit_removes_energy_below_the_cutoff():
    x = np.random.default_rng(0).standard_normal(4 * SR).astype(np.float32) * 0.1
    y = band_limit(x, SR, highpass_hz=100.0, lowpass_hz=8000.0)
    # relative to the pass band, a 24 dB/octave filter takes > 20 dB off below half the cut-off
    drop_low = (band_energy_db(x, 20, 50) - band_energy_db(x, 500, 4000)) - \
               (band_energy_db(y, 20, 50) - band_energy_db(y, 500, 4000))
    drop_high = (band_energy_db(x, 11000, 12000) - band_energy_db(x, 500, 4000)) - \
                (band_energy_db(y, 11000, 12000) - band_energy_db(y, 500, 4000))
    assert FILTER_STAGES == 4
    assert drop_low > 20 and drop_high > 5


def test_phone_chain_removes_energy_below_its_highpass(bank):
    t = np.arange(4 * SR) / SR
    x = (0.3 * np.sin(2 * np.pi * 40 * t) + 0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    cond = parse_grid({"phone": {"medium": {"rt60": [0.2, 0.4], "snr_db": [25, 30], "highpass_hz": [90, 120],
                                            "lowpass_hz": [7500, 8500], "comp_ratio": [3, 5],
                                            "comp_threshold_db": [3, 6], "vbr_quality": [4, 6]}}})[0]
    p = draw_params(cond, pair_rng(0, "tone", 0), bank)
    y, _ = apply_augmentation("phone", x, SR, p, bank)
    before = band_energy_db(x, 30, 50) - band_energy_db(x, 900, 1100)
    after = band_energy_db(y, 30, 50) - band_energy_db(y, 900, 1100)
    assert before - after > 20  # the 40 Hz tone loses > 20 dB against the 1 kHz tone


def test_level_is_an_exact_gain_and_clipping_is_counted():
    x = piano_like()
    y, clipped = apply_augmentation("level", x, SR, {"gain_db": -6.0})
    np.testing.assert_allclose(y, x * 10 ** (-6 / 20), rtol=1e-5, atol=1e-7)
    assert clipped == 0
    y, clipped = apply_augmentation("level", x, SR, {"gain_db": 12.0})  # peak 0.5 -> 2.0: clips
    assert clipped == int(np.sum(np.abs(x * 10 ** (12 / 20)) > 1.0)) > 0
    assert np.abs(y).max() == 1.0
    y, clipped = apply_augmentation("level", x, SR, {"gain_db": 0.0})
    assert y.tobytes() == x.tobytes() and clipped == 0  # identity


def test_noise_hits_its_snr():
    x = piano_like()
    y, _ = apply_augmentation("noise", x, SR, {"snr_db": 10.0, "noise_seed": 5})
    snr = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean((y - x).astype(np.float64) ** 2))
    assert snr == pytest.approx(10.0, abs=0.2)


def test_grid_errors_name_the_key():
    with pytest.raises(ValueError, match=r"augmentations\.chorus: unknown augmentation"):
        parse_grid({"chorus": {"light": {"rate": [1, 2]}}})
    with pytest.raises(ValueError, match=r"augmentations\.noise\.loud: needs exactly the keys \['snr_db'\]"):
        parse_grid({"noise": {"loud": {"snr": [1, 2]}}})
    with pytest.raises(ValueError, match=r"augmentations\.level\.up\.gain_db: \[6\.0, 3\.0\]"):
        parse_grid({"level": {"up": {"gain_db": [6, 3]}}})
    with pytest.raises(ValueError, match=r"augmentations\.codec\.bad\.vbr_quality"):
        parse_grid({"codec": {"bad": {"vbr_quality": [5, 12]}}})
    with pytest.raises(ValueError, match=r"expected \[lo, hi\]"):
        parse_grid({"level": {"up": {"gain_db": 6}}})


def test_reverb_without_an_ir_in_range_fails_clearly(bank):
    cond = parse_grid({"reverb": {"huge": {"rt60": [2.5, 3.0]}}})[0]
    with pytest.raises(ValueError, match=r"reverb\.rt60: no IR .* measured RT60 in \[2\.5, 3\.0\]"):
        draw_params(cond, pair_rng(0, "c", 0), bank)
    other_rate = RoomBank(bank.irs, bank.rt60_target, bank.rt60_measured, 16000)
    with pytest.raises(ValueError, match="render.sample_rate"):
        apply_augmentation("reverb", piano_like(), SR, {"ir_index": 0, "ir_rt60": 0.25}, other_rate)


def test_designs_full_and_balanced():
    assert assign_conditions(3, 4, 0) == [[0, 1, 2, 3]] * 3
    plan = assign_conditions(10, 7, 3)
    counts = np.bincount([c for row in plan for c in row], minlength=7)
    assert counts.max() - counts.min() <= 1 and all(len(set(row)) == 3 for row in plan)
    with pytest.raises(ValueError):
        assign_conditions(3, 4, -1)


def test_parallel_map_keeps_order():
    out = list(ordered_parallel_map(lambda v: v * v, range(50), workers=3))
    assert out == [v * v for v in range(50)]
