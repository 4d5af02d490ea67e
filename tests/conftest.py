"""Shared fixtures: small generated PercePiano-like datasets (MIDI written by the tests)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import mido
import numpy as np
import pytest

from pianoeval.dimensions import DIMENSIONS

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("OMP_NUM_THREADS", "1")


def write_midi(path: Path, notes: list[tuple[float, float, int, int]], pedal: list[tuple[float, int]] = (),
               tempo: int = 500000) -> None:
    """notes: (start s, end s, pitch, velocity); pedal: (time s, CC64 value). One track, 480 ticks/beat."""
    tpb = 480
    sec_to_tick = lambda s: int(round(s * tpb * 1e6 / tempo))  # noqa: E731
    events = []
    for start, end, pitch, vel in notes:
        events.append((sec_to_tick(start), mido.Message("note_on", note=pitch, velocity=vel)))
        events.append((sec_to_tick(end), mido.Message("note_off", note=pitch, velocity=0)))
    for t, v in pedal:
        events.append((sec_to_tick(t), mido.Message("control_change", control=64, value=v)))
    events.sort(key=lambda e: e[0])
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=tempo, time=0)])
    last = 0
    for tick, msg in events:
        track.append(msg.copy(time=tick - last))
        last = tick
    mid = mido.MidiFile(ticks_per_beat=tpb)
    mid.tracks.append(track)
    mid.save(path)


def make_dataset(root: Path, pieces=("PieceA", "PieceB", "PieceC", "PieceD"), players=("1", "2", "3", "4", "5"),
                 n_segments: int = 2, seed: int = 0, with_score: bool = True) -> Path:
    """A miniature PercePiano folder: midi/, both label JSONs, annotator CSV. Returns its path.

    Ratings depend on velocity (loud players rate high on every dimension), so models can learn them.
    """
    rng = np.random.default_rng(seed)
    midi = root / "midi"
    midi.mkdir(parents=True)
    means, stds, rows = {}, {}, []
    ids = {p: i for i, p in enumerate(players)}
    ids["Score"] = len(players)
    for piece in pieces:
        for player in (*players, *(["Score"] if with_score else [])):
            for seg in range(1, n_segments + 1):
                key = f"{piece}_8bars_{player}_{seg}"
                vel = int(rng.integers(30, 120))
                notes = [(0.25 * i, 0.25 * i + 0.4, 60 + (i * 5) % 12, vel) for i in range(8)]
                write_midi(midi / f"{key}.mid", notes, pedal=[(0.0, 127), (1.5, 0)])
                if player == "Score" and seg == n_segments:
                    continue  # an unlabeled score rendition, like the real data
                base = (vel - 30) / 90
                means[key] = [float(np.clip(base + rng.normal(0, 0.05), 0, 1)) for _ in DIMENSIONS] + [ids[player]]
                stds[key] = [0.1] * len(DIMENSIONS)
                for user in range(3):
                    rows.append([user, len(rows), f"{key}.wav"] + [4.0] * len(DIMENSIONS))
    (root / "label_2round_mean_reg_19_with0_rm_highstd0.json").write_text(json.dumps(means))
    (root / "label_2round_std_reg_19_with0_rm_highstd0.json").write_text(json.dumps(stds))
    header = ["user", "dataID", "filename"] + [f"Q{i}" for i in range(len(DIMENSIONS))]
    lines = [",".join(header)] + [",".join(str(v) for v in r) for r in rows]
    (root / "total_2rounds.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def mini_percepiano(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "percepiano")


def linear_labels(n: int, q: int, p: int, noise: float, seed: int = 0):
    """Labels Y (n, q) uniform in [0, 1] and features X (n, p) that encode them linearly plus noise;
    returns X, Y, 4-fold ids, and the generator (for further draws)."""
    rng = np.random.default_rng(seed)
    Y = rng.random((n, q))
    X = Y @ rng.standard_normal((q, p)) + noise * rng.standard_normal((n, p))
    return X, Y, np.arange(n) % 4, rng


def repo_section(section: str, **overrides) -> dict:
    """A params.yaml section of the repository with some keys replaced (nested dicts merged): tests
    write complete sections, since stages validate them (pianoeval.params_schema)."""
    import copy

    import yaml

    base = copy.deepcopy(yaml.safe_load((REPO / "params.yaml").read_text())[section])

    def merge(a: dict, b: dict) -> dict:
        for k, v in b.items():
            a[k] = merge(a[k], v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
        return a

    return merge(base, overrides)
