"""MIDI excerpts of a performance, rendered with the T1 renderer (:func:`pianoeval.render.render_store`).

Performances are read with :func:`pianoeval.midi_notes.read_performance` (symusic). An excerpt ``[start, end)`` keeps:

* every note whose onset lies in the window, its release cut at ``end`` (a note held past the window
  belongs to the next window's playing, not to this one);
* every controller (sustain, soft, sostenuto...) as played inside the window, plus each controller's
  last value before ``start`` replayed at time 0 (a pedal held into the window sounds held);
* at ``end`` the pedals are released, so the renderer's release tail is the decay of the window's
  own notes.

Times are shifted so the window starts at 0. The file is written with 24000 ticks per second (one
tick per sample at the render rate), so writing loses no timing the renderer would keep.
"""

from __future__ import annotations

from pathlib import Path

import mido
import numpy as np

from ..midi_notes import PerformanceMidi, read_performance  # noqa: F401  (read_performance: the tier stages' reader)

TICKS_PER_BEAT = 24000
TEMPO_US = 1_000_000  # one beat per second: 1 tick = 1/24000 s
PEDALS = (64, 66, 67)


def excerpt_events(perf: PerformanceMidi, start: float, end: float) -> list[tuple[float, mido.Message]]:
    """(seconds from ``start``, message) of the excerpt, sorted; see the module docstring for the rules."""
    if not end > start:
        raise ValueError(f"excerpt: end {end} must be after start {start}")
    events: list[tuple[float, int, mido.Message]] = []  # (time, order key, message): offs before ons at a tie
    before = perf.ctrl_time < start
    for num in np.unique(perf.ctrl_number[before]):
        last = np.flatnonzero(before & (perf.ctrl_number == num))[-1]
        events.append((0.0, 0, mido.Message("control_change", control=int(num), value=int(perf.ctrl_value[last]))))
    inside = (perf.ctrl_time >= start) & (perf.ctrl_time < end)
    for t, num, val in zip(perf.ctrl_time[inside], perf.ctrl_number[inside], perf.ctrl_value[inside]):
        events.append((float(t) - start, 1, mido.Message("control_change", control=int(num), value=int(val))))
    sel = (perf.onset >= start) & (perf.onset < end)
    for on, off, p, v in zip(perf.onset[sel], perf.offset[sel], perf.pitch[sel], perf.velocity[sel]):
        events.append((float(on) - start, 2, mido.Message("note_on", note=int(p), velocity=max(1, int(v)))))
        off = max(min(off, end), on + 1.0 / TICKS_PER_BEAT)  # a zero-length note still ends after it starts
        events.append((float(off) - start, 0, mido.Message("note_off", note=int(p), velocity=0)))
    for num in PEDALS:
        events.append((end - start, 3, mido.Message("control_change", control=num, value=0)))
    events.sort(key=lambda e: (e[0], e[1]))
    return [(t, m) for t, _, m in events]


def _varint(n: int) -> bytes:
    """A MIDI variable-length quantity (7 bits per byte, high bit = more bytes follow)."""
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def write_excerpt(perf: PerformanceMidi, start: float, end: float, path: str | Path) -> int:
    """Write the excerpt as a one-track MIDI file; returns its number of notes.

    The file is assembled from the messages' bytes: mido's ``MidiFile.save`` re-validates a copy of
    every message and took 15 of t2_audio's 65 s; the bytes are the same as mido writes (tested)."""
    events = excerpt_events(perf, start, end)
    tempo = TEMPO_US.to_bytes(3, "big")
    body = bytearray(b"\x00\xff\x51\x03" + tempo)  # set_tempo at tick 0
    last, running = 0, None
    for t, msg in events:
        tick = int(round(t * TICKS_PER_BEAT))
        body += _varint(tick - last)
        raw = msg.bytes()
        body += bytes(raw[1:] if raw[0] == running else raw)  # running status, as mido writes it
        running = raw[0]
        last = tick
    body += b"\x00\xff\x2f\x00"  # end of track
    header = b"MThd" + (6).to_bytes(4, "big") + (1).to_bytes(2, "big") + (1).to_bytes(2, "big") \
        + TICKS_PER_BEAT.to_bytes(2, "big")  # format 1, one track: mido's default
    Path(path).write_bytes(header + b"MTrk" + len(body).to_bytes(4, "big") + bytes(body))
    return sum(m.type == "note_on" for _, m in events)


def render_windows(windows, asap_root: str | Path, cfg, out_dir: str | Path, *, peak_target: float,
                   workers: int = 0, progress: bool = True) -> dict:
    """Render every window (columns segment_id, midi, start, end) into one packed audio store with the
    T1 renderer: each performance is read once, its excerpts go to a scratch folder, then
    :func:`pianoeval.render.render_store` renders them (one global level factor for the store)."""
    import shutil
    import tempfile

    from ..render import render_store

    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="excerpts-", dir=out.parent))
    try:
        items, n_notes = [], {}
        for midi, g in windows.groupby("midi", sort=True):
            perf = read_performance(Path(asap_root) / midi)
            for r in g.itertuples():
                path = scratch / f"{len(items):05d}.mid"
                n_notes[r.segment_id] = write_excerpt(perf, float(r.start), float(r.end), path)
                items.append((r.segment_id, str(path)))
        order = {s: k for k, s in enumerate(windows["segment_id"])}
        items.sort(key=lambda it: order[it[0]])  # store order = table order
        empty = [s for s, n in n_notes.items() if n == 0]
        if empty:
            raise ValueError(f"{len(empty)} window(s) hold no notes, e.g. {empty[:3]}")
        report = render_store(items, cfg, out, peak_target=peak_target, on_bad_midi="fail", workers=workers,
                              progress=progress)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report["notes_per_window"] = {"min": int(min(n_notes.values())), "max": int(max(n_notes.values()))}
    return report
