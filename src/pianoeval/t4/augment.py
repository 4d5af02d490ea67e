"""Seeded audio augmentations for clean/augmented pairs (pedalboard DSP, scipy convolution).

An augmentation is a pair of functions:

* ``draw(rng, ranges, bank) -> params``: every parameter drawn from a generator seeded per
  (clip, k); ``ranges`` are the severity's ``[lo, hi]`` intervals from params.yaml.
* ``apply(audio, sample_rate, params, bank) -> audio``: a pure function of its inputs. The same
  params give byte-identical audio: noise comes from ``params["noise_seed"]``, IRs from the bank by
  index, and every pedalboard plugin is built fresh per call.

Severities are named intervals per augmentation (``t4_augment.augmentations`` in params.yaml), e.g.
``reverb.small: {rt60: [0.2, 0.5]}``; :func:`parse_grid` validates them. Every augmented clip ends
with a recorder's full scale: samples beyond +-1 are clipped and counted (a +12 dB level change of a
loud clip clips, as it would on a phone).

Augmentations (params each draws; "sev" = from the severity's interval):

``level``   gain_db (sev)
``noise``   snr_db (sev), noise_seed: white Gaussian noise at that SNR to the clip's RMS
``reverb``  rt60 (sev) -> ir_index (uniform among bank IRs with measured RT60 in the interval), ir_rt60
``eq``      gain_db (sev, magnitude) -> low shelf (80-300 Hz), peak (300-3000 Hz, Q 0.7-2), high
            shelf (3-8 kHz), each with a gain of random sign and magnitude in the interval
``codec``   vbr_quality (sev; LAME VBR 0 = best .. 9.5 = worst) through pedalboard's MP3Compressor
``pitch``   semitones (sev, magnitude) with a random sign, pedalboard PitchShift (Rubber Band)
``phone``   the chain small room IR (rt60) -> noise (snr_db) -> band limit: 4 cascaded first-order
            high-passes (highpass_hz) and low-passes (lowpass_hz), 24 dB/octave -> compressor
            (comp_ratio; threshold comp_threshold_db below the clip's RMS; make-up gain back to the
            pre-compression RMS) -> MP3 (vbr_quality)
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .rooms import RoomBank

FILTER_STAGES = 4  # cascaded first-order filters: 24 dB/octave, a phone microphone's steep roll-off


@dataclass(frozen=True)
class Augmentation:
    name: str
    severity_params: tuple[str, ...]  # the interval keys a severity must give
    draw: Callable
    apply: Callable
    needs_rooms: bool = False


def _u(rng: np.random.Generator, lo_hi) -> float:
    lo, hi = lo_hi
    return round(float(rng.uniform(lo, hi)), 4)


def _log_u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return round(float(np.exp(rng.uniform(np.log(lo), np.log(hi)))), 2)


def _signed(rng: np.random.Generator, lo_hi) -> float:
    magnitude = _u(rng, lo_hi)
    return magnitude if rng.random() < 0.5 else -magnitude


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(2 ** 31))


def _rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))


def _pick_ir(rng: np.random.Generator, lo_hi, bank: RoomBank, what: str) -> tuple[int, float]:
    idx = bank.indices_in(*lo_hi)
    if idx.size == 0:
        raise ValueError(f"{what}: no IR in {bank.source} has a measured RT60 in {list(lo_hi)} s "
                         f"(bank: {np.round(bank.rt60_measured, 3).tolist()})")
    i = int(idx[rng.integers(idx.size)])
    return i, round(float(bank.rt60_measured[i]), 4)


def _convolve(audio: np.ndarray, ir: np.ndarray) -> np.ndarray:
    """Room IR applied, output trimmed to the input length (pairs stay aligned and equally long)."""
    from scipy.signal import oaconvolve

    return oaconvolve(audio.astype(np.float64), ir.astype(np.float64))[: audio.size].astype(np.float32)


def _add_noise(audio: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(audio.size)
    scale = _rms(audio) / 10 ** (snr_db / 20)
    return (audio + scale * noise).astype(np.float32)


def _run(board_plugins: list, audio: np.ndarray, sample_rate: int) -> np.ndarray:
    import pedalboard

    return pedalboard.Pedalboard(board_plugins)(np.ascontiguousarray(audio, dtype=np.float32), sample_rate)


# -- the augmentations ---------------------------------------------------------------------------------

def _draw_level(rng, r, bank):
    return {"gain_db": _u(rng, r["gain_db"])}


def _apply_level(audio, sr, p, bank):
    import pedalboard

    return _run([pedalboard.Gain(gain_db=p["gain_db"])], audio, sr)


def _draw_noise(rng, r, bank):
    return {"snr_db": _u(rng, r["snr_db"]), "noise_seed": _seed(rng)}


def _apply_noise(audio, sr, p, bank):
    return _add_noise(audio, p["snr_db"], p["noise_seed"])


def _draw_reverb(rng, r, bank):
    i, rt = _pick_ir(rng, r["rt60"], bank, "reverb.rt60")
    return {"ir_index": i, "ir_rt60": rt}


def _apply_reverb(audio, sr, p, bank):
    _check_rate(bank, sr)
    return _convolve(audio, bank.irs[p["ir_index"]])


def _draw_eq(rng, r, bank):
    return {"low_shelf_hz": _log_u(rng, 80, 300), "low_gain_db": _signed(rng, r["gain_db"]),
            "peak_hz": _log_u(rng, 300, 3000), "peak_gain_db": _signed(rng, r["gain_db"]),
            "peak_q": _u(rng, (0.7, 2.0)),
            "high_shelf_hz": _log_u(rng, 3000, 8000), "high_gain_db": _signed(rng, r["gain_db"])}


def _apply_eq(audio, sr, p, bank):
    import pedalboard as pb

    return _run([pb.LowShelfFilter(p["low_shelf_hz"], p["low_gain_db"]),
                 pb.PeakFilter(p["peak_hz"], p["peak_gain_db"], p["peak_q"]),
                 pb.HighShelfFilter(p["high_shelf_hz"], p["high_gain_db"])], audio, sr)


def _draw_codec(rng, r, bank):
    return {"vbr_quality": _u(rng, r["vbr_quality"])}


def _apply_codec(audio, sr, p, bank):
    import pedalboard

    return _run([pedalboard.MP3Compressor(vbr_quality=p["vbr_quality"])], audio, sr)


def _draw_pitch(rng, r, bank):
    return {"semitones": _signed(rng, r["semitones"])}


def _apply_pitch(audio, sr, p, bank):
    import pedalboard

    return _run([pedalboard.PitchShift(semitones=p["semitones"])], audio, sr)


def _draw_phone(rng, r, bank):
    i, rt = _pick_ir(rng, r["rt60"], bank, "phone.rt60")
    return {"ir_index": i, "ir_rt60": rt, "snr_db": _u(rng, r["snr_db"]), "noise_seed": _seed(rng),
            "highpass_hz": _u(rng, r["highpass_hz"]), "lowpass_hz": _u(rng, r["lowpass_hz"]),
            "comp_ratio": _u(rng, r["comp_ratio"]), "comp_threshold_db": _u(rng, r["comp_threshold_db"]),
            "vbr_quality": _u(rng, r["vbr_quality"])}


def band_limit(audio: np.ndarray, sample_rate: int, highpass_hz: float, lowpass_hz: float) -> np.ndarray:
    """FILTER_STAGES cascaded first-order high-passes and low-passes (pedalboard), 6 dB/octave each."""
    import pedalboard as pb

    return _run([pb.HighpassFilter(highpass_hz) for _ in range(FILTER_STAGES)]
                + [pb.LowpassFilter(lowpass_hz) for _ in range(FILTER_STAGES)], audio, sample_rate)


def _apply_phone(audio, sr, p, bank):
    import pedalboard as pb

    _check_rate(bank, sr)
    x = _convolve(audio, bank.irs[p["ir_index"]])
    x = _add_noise(x, p["snr_db"], p["noise_seed"])
    x = band_limit(x, sr, p["highpass_hz"], p["lowpass_hz"])
    # The threshold follows the clip's level and make-up gain restores the level before compression
    # (a phone's AGC): dynamics are squeezed, the overall level stays that of the room's signal; a
    # level change is the `level` augmentation's job.
    rms_in = max(_rms(x), 1e-9)
    threshold = 20 * np.log10(rms_in) - p["comp_threshold_db"]
    x = _run([pb.Compressor(threshold_db=float(threshold), ratio=p["comp_ratio"], attack_ms=5.0, release_ms=100.0)],
             x, sr)
    x = (x * np.float32(rms_in / max(_rms(x), 1e-9))).astype(np.float32)
    return _run([pb.MP3Compressor(vbr_quality=p["vbr_quality"])], x, sr)


def _check_rate(bank: RoomBank, sample_rate: int) -> None:
    if bank is None:
        raise ValueError("this augmentation needs the room IR bank (t4_augment.rooms)")
    if bank.sample_rate != sample_rate:
        raise ValueError(f"{bank.source}: IRs at {bank.sample_rate} Hz, audio at {sample_rate} Hz "
                         "(t4_rooms.sample_rate must equal render.sample_rate)")


AUGMENTATIONS: dict[str, Augmentation] = {a.name: a for a in [
    Augmentation("level", ("gain_db",), _draw_level, _apply_level),
    Augmentation("noise", ("snr_db",), _draw_noise, _apply_noise),
    Augmentation("reverb", ("rt60",), _draw_reverb, _apply_reverb, needs_rooms=True),
    Augmentation("eq", ("gain_db",), _draw_eq, _apply_eq),
    Augmentation("codec", ("vbr_quality",), _draw_codec, _apply_codec),
    Augmentation("pitch", ("semitones",), _draw_pitch, _apply_pitch),
    Augmentation("phone", ("rt60", "snr_db", "highpass_hz", "lowpass_hz", "comp_ratio", "comp_threshold_db",
                           "vbr_quality"), _draw_phone, _apply_phone, needs_rooms=True),
]}

# Physical bounds of every interval key: a severity outside them is a params error, not a clipped value.
BOUNDS = {"gain_db": (-24.0, 24.0), "snr_db": (-10.0, 80.0), "rt60": (0.1, 3.0), "vbr_quality": (0.0, 9.5),
          "semitones": (0.0, 4.0), "highpass_hz": (20.0, 1000.0), "lowpass_hz": (2000.0, 11000.0),
          "comp_ratio": (1.0, 20.0), "comp_threshold_db": (0.0, 30.0)}


@dataclass(frozen=True)
class Condition:
    """One augmentation x severity cell of the grid."""

    augmentation: str
    severity: str
    ranges: dict

    @property
    def name(self) -> str:
        return f"{self.augmentation}/{self.severity}"


def parse_grid(spec: dict, where: str = "t4_augment.augmentations") -> list[Condition]:
    """params -> conditions in params order; every error names the key.

    ``spec``: {augmentation: {severity: {param: [lo, hi]}}}.
    """
    if not isinstance(spec, dict) or not spec:
        raise ValueError(f"params {where}: expected a mapping augmentation -> severity -> ranges")
    out = []
    for aug, severities in spec.items():
        if aug not in AUGMENTATIONS:
            raise ValueError(f"params {where}.{aug}: unknown augmentation (have: {', '.join(AUGMENTATIONS)})")
        if not isinstance(severities, dict) or not severities:
            raise ValueError(f"params {where}.{aug}: expected a mapping severity -> ranges")
        need = set(AUGMENTATIONS[aug].severity_params)
        for sev, ranges in severities.items():
            key = f"{where}.{aug}.{sev}"
            if not isinstance(ranges, dict) or set(ranges) != need:
                got = sorted(ranges) if isinstance(ranges, dict) else ranges
                raise ValueError(f"params {key}: needs exactly the keys {sorted(need)}, got {got}")
            clean = {}
            for name, lo_hi in ranges.items():
                if (not isinstance(lo_hi, (list, tuple)) or len(lo_hi) != 2
                        or not all(isinstance(v, (int, float)) for v in lo_hi)):
                    raise ValueError(f"params {key}.{name}: expected [lo, hi], got {lo_hi!r}")
                lo, hi = float(lo_hi[0]), float(lo_hi[1])
                b_lo, b_hi = BOUNDS[name]
                if not b_lo <= lo <= hi <= b_hi:
                    raise ValueError(f"params {key}.{name}: [{lo}, {hi}] must satisfy {b_lo} <= lo <= hi <= {b_hi}")
                clean[name] = (lo, hi)
            out.append(Condition(aug, str(sev), clean))
    return out


def pair_rng(seed: int, item_id: str, k: int) -> np.random.Generator:
    """The generator of pair (item, k): independent of every other pair and of the order of items."""
    return np.random.default_rng([int(seed), zlib.crc32(item_id.encode()), int(k)])


def draw_params(condition: Condition, rng: np.random.Generator, bank: RoomBank | None) -> dict:
    aug = AUGMENTATIONS[condition.augmentation]
    if aug.needs_rooms and bank is None:
        raise ValueError(f"{condition.name}: needs the room IR bank")
    return aug.draw(rng, condition.ranges, bank)


def apply_augmentation(name: str, audio: np.ndarray, sample_rate: int, params: dict,
                       bank: RoomBank | None = None) -> tuple[np.ndarray, int]:
    """Augment one mono clip; returns (audio (n,) float32 in [-1, 1], samples clipped at full scale).

    The output has the input's length.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"augment {name}: expected mono (n,) audio, got shape {audio.shape}")
    if name not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation '{name}' (have: {', '.join(AUGMENTATIONS)})")
    out = np.asarray(AUGMENTATIONS[name].apply(audio, sample_rate, params, bank), dtype=np.float32)
    if out.shape != audio.shape:
        raise RuntimeError(f"augment {name}: output shape {out.shape} != input {audio.shape}")
    if not np.isfinite(out).all():
        raise RuntimeError(f"augment {name} with {params}: non-finite output")
    n_clipped = int(np.count_nonzero(np.abs(out) > 1.0))
    return np.clip(out, -1.0, 1.0), n_clipped


def params_json(params: dict) -> str:
    """The pairs-table form of a params dict (exact floats; json.loads gives the same dict back)."""
    return json.dumps(params, sort_keys=True)


def assign_conditions(n_items: int, n_conditions: int, per_item: int) -> list[list[int]]:
    """Condition indices of each item's pairs k = 0..K-1.

    ``per_item`` 0 (or >= n_conditions): every item gets every condition (k = condition index): a fully
    crossed design, so conditions are compared on the same clips. Otherwise item i gets conditions
    (i * K + k) mod C: balanced, every condition on n_items * K / C items (+-1).
    """
    if per_item < 0:
        raise ValueError(f"pairs per item must be >= 0, got {per_item}")
    if per_item == 0 or per_item >= n_conditions:
        return [list(range(n_conditions)) for _ in range(n_items)]
    return [[(i * per_item + k) % n_conditions for k in range(per_item)] for i in range(n_items)]


def ordered_parallel_map(fn: Callable, items, workers: int):
    """``map(fn, items)`` on ``workers`` threads, results in input order, at most 2 * workers in flight.

    Threads (not processes) because pedalboard, scipy's FFT and torch release the GIL in their kernels.
    """
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    if workers <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(workers) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
