"""Small generated ASAP-like checkouts for the tier tests: MIDI, beat/downbeat annotations, metadata.csv."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from conftest import write_midi

META_COLUMNS = ["composer", "title", "folder", "xml_score", "midi_score", "midi_performance", "performance_annotations",
                "midi_score_annotations", "maestro_midi_performance", "maestro_audio_performance", "start", "end",
                "audio_performance"]


def write_annotations(path: Path, downbeats: np.ndarray, beats_per_bar: int = 2, extra_label: str | None = None) -> None:
    """Beats evenly between downbeats; the last downbeat closes the piece."""
    lines = []
    for k, t in enumerate(downbeats):
        lines.append(f"{t}\t{t}\tdb" + (",2/4,0" if k == 0 else ""))
        if k + 1 < len(downbeats):
            step = (downbeats[k + 1] - t) / beats_per_bar
            lines += [f"{t + j * step}\t{t + j * step}\tb" for j in range(1, beats_per_bar)]
    if extra_label:
        lines.append(f"{downbeats[-1] + 1}\t{downbeats[-1] + 1}\t{extra_label}")
    path.write_text("\n".join(lines) + "\n")


def make_asap(root: Path, pieces: dict[str, list[dict]], n_bars: int = 12) -> Path:
    """pieces: folder -> performances [{stem, maestro, bar_seconds, velocity, shift?, bad_align?}].

    Every performance plays the same pitches (one note per beat, pitch = 60 + bar index % 12), with its
    own tempo and velocity; ``bad_align`` drops a downbeat so the labels disagree with the score.
    """
    rows = []
    for folder, perfs in pieces.items():
        d = root / folder
        d.mkdir(parents=True, exist_ok=True)
        write_annotations(d / "midi_score_annotations.txt", np.arange(n_bars + 1) * 2.0)
        for p in perfs:
            bar = p["bar_seconds"]
            db = 0.5 + np.arange(n_bars + 1) * bar
            notes = []
            for k in range(n_bars):
                for j in range(2):
                    t = db[k] + j * bar / 2
                    notes.append((t, t + bar / 2 * 0.9, 60 + (k + j) % 12, p["velocity"] + (k % 3)))
            write_midi(d / f"{p['stem']}.mid", notes, pedal=[(db[1], 127), (db[2] - 0.01, 0)])
            downbeats = np.delete(db, 3) if p.get("bad_align") else db
            write_annotations(d / f"{p['stem']}_annotations.txt", downbeats)
            rows.append({"composer": folder.split("/")[0], "title": folder.replace("/", "_"), "folder": folder,
                         "xml_score": f"{folder}/xml_score.musicxml", "midi_score": f"{folder}/midi_score.mid",
                         "midi_performance": f"{folder}/{p['stem']}.mid",
                         "performance_annotations": f"{folder}/{p['stem']}_annotations.txt",
                         "midi_score_annotations": f"{folder}/midi_score_annotations.txt",
                         "maestro_midi_performance": p.get("maestro", ""), "maestro_audio_performance": "",
                         "start": "", "end": "", "audio_performance": ""})
    with open(root / "metadata.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=META_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    return root


def maestro(round_: int, year: int, session: int, piece: int = 1) -> str:
    return (f"{{maestro}}/{year}/MIDI-Unprocessed_{session:02d}_R{round_}_{year}_01-05_ORIG_MID--AUDIO_"
            f"{session:02d}_R{round_}_{year}_wav--{piece}.midi")


def small_asap(root: Path) -> Path:
    """Two folders; five performer-years across rounds; one unaligned performance."""
    return make_asap(root, {
        "Chopin/Etude": [
            {"stem": "Alpha01M", "maestro": maestro(3, 2008, 1), "bar_seconds": 2.0, "velocity": 60},
            {"stem": "Beta02", "maestro": maestro(1, 2008, 2), "bar_seconds": 2.2, "velocity": 70},
            {"stem": "Gamma03M", "maestro": maestro(2, 2011, 3), "bar_seconds": 1.8, "velocity": 50},
            {"stem": "Delta01", "maestro": "", "bar_seconds": 2.1, "velocity": 40, "bad_align": True},
        ],
        "Bach/Prelude": [
            {"stem": "Alpha02M", "maestro": maestro(1, 2008, 1, 2), "bar_seconds": 1.5, "velocity": 65},
            {"stem": "Eps_2009_02", "maestro": maestro(1, 2009, 4), "bar_seconds": 1.6, "velocity": 75},
            {"stem": "Zeta05", "maestro": maestro(2, 2009, 5), "bar_seconds": 1.4, "velocity": 80},
        ],
    })
