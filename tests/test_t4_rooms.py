"""The room IR bank: measured RT60 on target, seeded (byte-identical), round trip through the file."""

from __future__ import annotations

import numpy as np
import pytest

from pianoeval.t4.rooms import DIRECT_PATH_LEAD, RoomBank, build_room_bank, save_room_bank

SR = 24000
TARGETS = [0.25, 0.7, 1.5]


def schroeder_rt60(ir: np.ndarray, sr: int, lo_db: float = -5.0, hi_db: float = -25.0) -> float:
    """Independent of the stage's measure: T20 from a least-squares line on the Schroeder decay curve."""
    edc = np.cumsum(ir[::-1].astype(np.float64) ** 2)[::-1]
    edc_db = 10 * np.log10(edc / edc[0])
    idx = np.flatnonzero((edc_db <= lo_db) & (edc_db >= hi_db))
    slope, _ = np.polyfit(idx / sr, edc_db[idx], 1)
    return -60.0 / slope


@pytest.fixture(scope="module")
def bank():
    return build_room_bank(TARGETS, SR, seed=3)


def test_measured_rt60_within_20_percent_of_target(bank):
    irs, infos = bank
    for ir, info, target in zip(irs, infos, TARGETS):
        rt = schroeder_rt60(ir, SR)
        assert abs(rt / target - 1) < 0.2, (target, rt)
        assert abs(info["rt60_measured"] / target - 1) <= 0.1  # the stage's own calibration tolerance


def test_irs_are_unit_energy_and_start_at_the_direct_path(bank):
    irs, _ = bank
    for ir in irs:
        assert ir.dtype == np.float32
        assert np.sum(ir.astype(np.float64) ** 2) == pytest.approx(1.0, rel=1e-5)
        assert int(np.argmax(np.abs(ir))) == DIRECT_PATH_LEAD
    # longer decays give longer IRs
    assert len(irs[0]) < len(irs[1]) < len(irs[2])


def test_same_seed_same_bytes_other_seed_other_rooms(bank):
    irs, infos = bank
    again, _ = build_room_bank(TARGETS, SR, seed=3)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(irs, again))
    other, other_infos = build_room_bank(TARGETS[:1], SR, seed=4)
    assert other_infos[0]["dims"] != infos[0]["dims"]


def test_file_round_trip_and_selection_by_measured_rt60(bank, tmp_path):
    irs, infos = bank
    save_room_bank(tmp_path / "bank.safetensors", irs, infos, SR)
    first = (tmp_path / "bank.safetensors").read_bytes()
    save_room_bank(tmp_path / "bank.safetensors", irs, infos, SR)
    assert (tmp_path / "bank.safetensors").read_bytes() == first
    loaded = RoomBank.load(tmp_path / "bank.safetensors")
    assert loaded.sample_rate == SR and len(loaded.irs) == 3
    assert all(np.array_equal(a, b) for a, b in zip(irs, loaded.irs))
    assert loaded.indices_in(0.5, 1.0).tolist() == [1]
    assert loaded.indices_in(2.0, 3.0).size == 0


def test_unreachable_targets_fail_with_the_param_named():
    with pytest.raises(ValueError, match="t4_rooms.rt60_targets"):
        build_room_bank([0.05], SR, seed=0)
    with pytest.raises(ValueError, match="t4_rooms.rt60_targets"):
        build_room_bank([], SR, seed=0)
    with pytest.raises(FileNotFoundError, match="t4_rooms"):
        RoomBank.load("/nonexistent/bank.safetensors")
