"""A seeded bank of room impulse responses (pyroomacoustics), built once as a DVC output.

Each IR comes from a shoebox room whose size grows with the target RT60 (small practice rooms for
short decays, halls for long ones), with source (the piano) and microphone drawn inside it. The
simulator is pyroomacoustics' hybrid: image sources up to order 3 for the early reflections, ray
tracing with wall scattering for the diffuse tail. A pure image-source shoebox was tried first: its
decay overshoots Sabine by +25% at 1.8 s (parallel walls, no scattering) and it took 2-5 s per long
room here; the hybrid lands within 7% in one run at 0.1-0.8 s. Both random parts (ray directions in
libroom, the tail's noise in numpy) are seeded through ``pyroomacoustics.random.seed`` per room, so
the bank is byte-identical on a rerun. Each room is recalibrated if needed: the RT60 asked of
Sabine's formula is scaled by ``target / measured`` until the measured RT60 (Schroeder T30) is within
``tolerance`` of the target.

Stored IRs start 40 samples (half of pyroomacoustics' fractional-delay filter) before the direct
path, so convolving does not delay the music, and have unit energy, so reverb does not double as a
level change.

Bank file (one safetensors): ``irs`` (sum L_i,) float32, ``offsets`` (N + 1,) int64,
``rt60_target`` (N,), ``rt60_measured`` (N,) float64; metadata ``sample_rate`` and ``rooms`` (JSON).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io import save_safetensors

SPEED_OF_SOUND = 343.0
DIRECT_PATH_LEAD = 40  # samples kept before the direct-path peak (pyroomacoustics' 81-tap delay filter / 2)


def measure_rt60(ir: np.ndarray, sample_rate: int, decay_db: float = 30.0) -> float:
    """RT60 (s) from the Schroeder decay curve, extrapolated from ``decay_db`` of decay (T30 by default)."""
    import pyroomacoustics as pra

    return float(pra.experimental.measure_rt60(np.asarray(ir, dtype=np.float64), fs=sample_rate,
                                               decay_db=decay_db))


def room_geometry(rt60: float, rng: np.random.Generator) -> dict:
    """Room size, source and microphone drawn for a target RT60 (metres).

    Length grows with RT60 (about 5 m at 0.25 s, 17 m at 1.7 s) so the absorption Sabine asks for
    stays physical (0.1-0.5); the piano source sits 1.0-1.5 m high, the microphone 0.8-1.6 m high at
    least 1 m away, both at least 0.5 m from any wall.
    """
    length = float(rng.uniform(0.85, 1.15) * (3.0 + 8.0 * rt60))
    width = float(length * rng.uniform(0.6, 0.85))
    height = float(rng.uniform(2.4, 2.8) + 2.0 * max(0.0, rt60 - 0.5))
    dims = np.array([length, width, height])

    def point(z_lo, z_hi):
        return np.array([rng.uniform(0.5, length - 0.5), rng.uniform(0.5, width - 0.5), rng.uniform(z_lo, z_hi)])

    source = point(1.0, 1.5)
    for _ in range(1000):
        mic = point(0.8, 1.6)
        if np.linalg.norm(mic - source) >= 1.0:
            break
    else:  # pragma: no cover - impossible for rooms of these sizes
        raise RuntimeError(f"room {dims}: no microphone position 1 m from the source")
    return {"dims": dims.round(4).tolist(), "source": source.round(4).tolist(), "mic": mic.round(4).tolist()}


ISM_ORDER = 3         # image sources for the early reflections; ray tracing does the rest
SCATTERING = 0.1      # wall scattering coefficient of the ray tracer (diffuse tail)
N_RAYS = 5000


def simulate_ir(geometry: dict, rt60: float, sample_rate: int, seed: int) -> tuple[np.ndarray, float]:
    """Hybrid (image source + ray tracing) IR of a shoebox whose uniform absorption Sabine gives
    ``rt60``; returns (ir, absorption). ``seed`` fixes both of pyroomacoustics' RNGs."""
    import pyroomacoustics as pra

    dims = np.asarray(geometry["dims"], dtype=float)
    absorption, _ = pra.inverse_sabine(rt60, dims)
    pra.random.seed(numpy=seed, libroom=seed)
    room = pra.ShoeBox(dims, fs=sample_rate, materials=pra.Material(absorption, SCATTERING), max_order=ISM_ORDER,
                       ray_tracing=True, use_rand_ism=False, air_absorption=False)
    room.set_ray_tracing(n_rays=N_RAYS, receiver_radius=0.5, energy_thres=1e-6)
    room.add_source(np.asarray(geometry["source"], dtype=float))
    room.add_microphone(np.asarray(geometry["mic"], dtype=float))
    room.compute_rir()
    return np.asarray(room.rir[0][0], dtype=np.float64), float(absorption)


def finish_ir(ir: np.ndarray) -> np.ndarray:
    """Drop the propagation delay (keep DIRECT_PATH_LEAD samples before the peak) and scale to unit energy."""
    start = max(0, int(np.argmax(np.abs(ir))) - DIRECT_PATH_LEAD)
    ir = ir[start:]
    return (ir / np.sqrt(np.sum(ir ** 2))).astype(np.float32)


def calibrated_room_ir(target: float, sample_rate: int, rng: np.random.Generator, *, tolerance: float = 0.1,
                       max_iter: int = 4) -> tuple[np.ndarray, dict]:
    """One bank entry: an IR whose measured RT60 is within ``tolerance`` (relative) of ``target``.

    Returns
    -------
    ir : (L,) float32, unit energy, direct path at sample DIRECT_PATH_LEAD.
    info : geometry, absorption, seed, iterations, rt60_target, rt60_measured.
    """
    geometry = room_geometry(target, rng)
    seed = int(rng.integers(2 ** 32))
    asked = target
    best = None
    for it in range(1, max_iter + 1):
        raw, absorption = simulate_ir(geometry, asked, sample_rate, seed)
        ir = finish_ir(raw)
        measured = measure_rt60(ir, sample_rate)
        err = abs(measured / target - 1.0)
        if best is None or err < best[0]:
            best = (err, ir, {**geometry, "absorption": round(absorption, 6), "seed": seed,
                              "iterations": it, "rt60_target": target, "rt60_measured": measured})
        if err <= tolerance:
            break
        asked = asked * target / measured  # the decay scales about linearly with the asked RT60
    err, ir, info = best
    if err > tolerance:
        raise ValueError(f"room bank: target RT60 {target} s not reached within {tolerance:.0%} after {max_iter} "
                         f"calibration runs (measured {info['rt60_measured']:.3f} s): change t4_rooms.rt60_targets")
    return ir, info


def build_room_bank(rt60_targets: list[float], sample_rate: int, seed: int, *, tolerance: float = 0.1,
                    max_iter: int = 4) -> tuple[list[np.ndarray], list[dict]]:
    """IRs for every target RT60, each room drawn from its own seeded generator (seed, index)."""
    if not rt60_targets:
        raise ValueError("params t4_rooms.rt60_targets: empty")
    bad = [t for t in rt60_targets if not 0.1 <= float(t) <= 3.0]
    if bad:
        raise ValueError(f"params t4_rooms.rt60_targets: {bad} outside the supported 0.1-3.0 s")
    irs, infos = [], []
    for i, target in enumerate(rt60_targets):
        rng = np.random.default_rng([seed, i])
        ir, info = calibrated_room_ir(float(target), sample_rate, rng, tolerance=tolerance, max_iter=max_iter)
        irs.append(ir)
        infos.append(info)
    return irs, infos


def save_room_bank(path: str | Path, irs: list[np.ndarray], infos: list[dict], sample_rate: int) -> None:
    offsets = np.concatenate([[0], np.cumsum([len(ir) for ir in irs])]).astype(np.int64)
    tensors = {"irs": np.concatenate(irs).astype(np.float32), "offsets": offsets,
               "rt60_target": np.array([i["rt60_target"] for i in infos], dtype=np.float64),
               "rt60_measured": np.array([i["rt60_measured"] for i in infos], dtype=np.float64)}
    save_safetensors(tensors, path, metadata={"sample_rate": str(int(sample_rate)),
                                              "rooms": json.dumps(infos, sort_keys=True)})


@dataclass
class RoomBank:
    """The IR bank in memory.

    Attributes
    ----------
    irs : list of N arrays (L_i,) float32.
    rt60_target, rt60_measured : (N,) float64 seconds.
    sample_rate : int.
    source : where it was read from (for error messages).
    """

    irs: list[np.ndarray]
    rt60_target: np.ndarray
    rt60_measured: np.ndarray
    sample_rate: int
    source: str = "room bank"

    @classmethod
    def load(cls, path: str | Path) -> RoomBank:
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: room IR bank not found (run the t4_rooms stage)")
        with safe_open(str(path), framework="np") as f:
            meta = f.metadata() or {}
            flat, offsets = f.get_tensor("irs"), f.get_tensor("offsets")
            target, measured = f.get_tensor("rt60_target"), f.get_tensor("rt60_measured")
        if "sample_rate" not in meta:
            raise ValueError(f"{path}: not a room bank (metadata sample_rate missing)")
        irs = [flat[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]
        return cls(irs, target, measured, int(meta["sample_rate"]), str(path))

    def indices_in(self, lo: float, hi: float) -> np.ndarray:
        """Indices of IRs whose MEASURED RT60 lies in [lo, hi] (what is applied is what is selected on)."""
        return np.flatnonzero((self.rt60_measured >= lo) & (self.rt60_measured <= hi))
