"""Stage `t4_rooms`: the seeded bank of room impulse responses used by reverb and the phone chain."""

from __future__ import annotations

import numpy as np

from ..io import load_params, write_json
from ..t4.rooms import build_room_bank, save_room_bank


def main() -> None:
    p = load_params("t4_rooms")
    sample_rate = load_params("render")["sample_rate"]  # IRs at the rate of the audio they are applied to
    irs, infos = build_room_bank(p["rt60_targets"], sample_rate, p["seed"], tolerance=p["tolerance"])
    save_room_bank(p["out"], irs, infos, sample_rate)
    target = np.array([i["rt60_target"] for i in infos])
    measured = np.array([i["rt60_measured"] for i in infos])
    rel = np.abs(measured / target - 1)
    write_json("metrics/t4_rooms.json", {
        "n_irs": len(irs), "sample_rate": sample_rate,
        "rt60_target": target, "rt60_measured": measured,
        "rt60_relative_error_max": float(rel.max()), "tolerance": p["tolerance"],
        "ir_seconds": [len(ir) / sample_rate for ir in irs],
        "calibration_runs": [i["iterations"] for i in infos]})
    print(f"t4_rooms: {len(irs)} IRs, RT60 {target.min():.2f}-{target.max():.2f} s, measured within "
          f"{rel.max():.1%} of target (T30), {sum(len(i) for i in irs) / sample_rate:.1f} s of IR")


if __name__ == "__main__":
    main()
