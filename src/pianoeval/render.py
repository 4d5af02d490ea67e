"""MIDI -> audio with FluidSynth, level kept as played.

Rules that matter for the labels:

* Dynamics are a rated dimension, so there is no per-file normalisation. All files are rendered with
  one synth gain, then ONE global factor (reported) puts the loudest file of the run at a peak target:
  nothing clips and every loudness difference between files is kept.
* Sustain pedal (CC64) and every other controller go to FluidSynth as played.
* The release tail after the last event is kept (``tail_seconds``).
* Deterministic: a fresh synth per file (no reverb tail leaking between files), float output
  (FluidSynth's 16-bit path adds dither), events quantised to sample positions.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import mido
import numpy as np

_MISSING_LIB = (
    "libfluidsynth is not installed: `apt-get install libfluidsynth3` on Debian/Ubuntu, "
    "`brew install fluid-synth` on macOS (`make demo` installs it when run as root)."
)


def _fluidsynth():
    try:
        import fluidsynth
    except (ImportError, OSError) as e:  # pyfluidsynth raises ImportError when the C library is missing
        raise RuntimeError(f"{_MISSING_LIB} ({e})") from e
    return fluidsynth


def resolve_soundfont(spec: str) -> Path:
    """``pretty_midi`` -> the General-MIDI soundfont shipped in the pretty_midi wheel; else a path."""
    if spec == "pretty_midi":
        import pretty_midi

        path = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
    else:
        path = Path(spec).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"params render.soundfont: soundfont not found: {path}")
    if path.suffix.lower() not in (".sf2", ".sf3"):
        raise ValueError(f"params render.soundfont: expected a .sf2/.sf3 file, got {path}")
    return path


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class SynthConfig:
    soundfont: str
    sample_rate: int = 24000
    gain: float = 0.5
    tail_seconds: float = 1.5
    program: int = 0  # acoustic grand; PercePiano MIDI is piano-only
    # FluidSynth's built-in reverb and chorus. Off by default: a dry render leaves the room to T4's
    # controlled room augmentation (measured IRs, pianoeval.t4.rooms) instead of one fixed synthetic
    # hall on every file, and the synth runs 1.8x faster without them (154x vs 85x real time per core).
    effects: bool = False

    @classmethod
    def from_params(cls, r: dict) -> SynthConfig:
        """The renderer of a validated ``render`` params section (every tier renders with it)."""
        return cls(soundfont=str(resolve_soundfont(r["soundfont"])), sample_rate=r["sample_rate"], gain=r["gain"],
                   tail_seconds=r["tail_seconds"], effects=r["effects"])


class MidiError(ValueError):
    """A MIDI file that cannot be read or holds no notes."""


def midi_events(path: str | Path) -> list[tuple[float, mido.Message]]:
    """(absolute seconds, message) for every channel message, tempo map applied."""
    try:
        mid = mido.MidiFile(path)
        events, t = [], 0.0
        for msg in mid:  # iteration yields delta times in seconds, tempo changes applied
            t += msg.time
            if not msg.is_meta:
                events.append((t, msg))
    except (OSError, EOFError, ValueError, KeyError, IndexError) as e:
        raise MidiError(f"{path}: unreadable MIDI ({type(e).__name__}: {e})") from e
    if not any(m.type == "note_on" and m.velocity > 0 for _, m in events):
        raise MidiError(f"{path}: MIDI has no notes")
    return events


def _write_float(fs_mod, synth, n: int) -> np.ndarray:
    """n stereo frames as float32 via fluid_synth_write_float (no dither, no 16-bit clipping)."""
    left = np.zeros(n, dtype=np.float32)
    right = np.zeros(n, dtype=np.float32)
    fn = fs_mod._fl.fluid_synth_write_float
    fn.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                   ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    fn.restype = ctypes.c_int
    if fn(synth.synth, n, left.ctypes.data, 0, 1, right.ctypes.data, 0, 1) != 0:
        raise RuntimeError("fluid_synth_write_float failed")
    return 0.5 * (left + right)


def render_midi(path: str | Path, cfg: SynthConfig) -> np.ndarray:
    """Render one MIDI file to mono float32 at ``cfg.sample_rate`` (unscaled synth output).

    Returns
    -------
    audio : (n_samples,) float32; n_samples = last event + tail, in samples.
    """
    fs_mod = _fluidsynth()
    events = midi_events(path)
    fx = int(cfg.effects)  # boolean settings are int settings in libfluidsynth 2.x
    synth = fs_mod.Synth(gain=cfg.gain, samplerate=float(cfg.sample_rate),
                         **{"synth.reverb.active": fx, "synth.chorus.active": fx})
    try:
        sfid = synth.sfload(str(cfg.soundfont))
        if sfid < 0:
            raise ValueError(f"FluidSynth could not load soundfont {cfg.soundfont}")
        for chan in range(16):
            synth.program_select(chan, sfid, 0, cfg.program)
        sr = cfg.sample_rate
        chunks, pos = [], 0
        for t, msg in events:
            target = int(round(t * sr))
            if target > pos:
                chunks.append(_write_float(fs_mod, synth, target - pos))
                pos = target
            if msg.type == "note_on":
                synth.noteon(msg.channel, msg.note, msg.velocity)
            elif msg.type == "note_off":
                synth.noteoff(msg.channel, msg.note)
            elif msg.type == "control_change":
                synth.cc(msg.channel, msg.control, msg.value)
            elif msg.type == "pitchwheel":
                synth.pitch_bend(msg.channel, msg.pitch)
            # program changes are ignored on purpose: every channel plays the piano preset
        chunks.append(_write_float(fs_mod, synth, int(round(cfg.tail_seconds * sr))))
    finally:
        synth.delete()
    return np.concatenate(chunks)


# -- parallel rendering -------------------------------------------------------------------------

_WORKER_CFG: SynthConfig | None = None


def _init_worker(cfg: SynthConfig) -> None:
    global _WORKER_CFG
    _WORKER_CFG = cfg
    # Ctrl-C reaches the whole process group: only the parent acts on it (and terminates the pool).
    # A worker that died of KeyboardInterrupt would be replaced by the pool while the parent waits.
    # SIGINT was blocked when this process started (see render_many), so none arrived mid-startup.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _render_task(item: tuple[str, str]) -> tuple[str, np.ndarray | None, str | None]:
    key, path = item
    try:
        return key, render_midi(path, _WORKER_CFG), None
    except MidiError as e:
        return key, None, str(e)


def render_many(items: list[tuple[str, str]], cfg: SynthConfig, workers: int = 0, progress: bool = True):
    """Render (key, midi path) pairs in parallel; yields (key, audio or None, error or None) in input order."""
    import multiprocessing as mp

    from tqdm import tqdm

    workers = workers or os.cpu_count() or 1
    bar = tqdm(total=len(items), desc="render", unit="file", disable=not progress, mininterval=2.0)
    if workers == 1:
        global _WORKER_CFG
        _WORKER_CFG = cfg
        results = map(_render_task, items)
        pool = None
    else:
        # Workers inherit the blocked SIGINT until _init_worker ignores it: a Ctrl-C while they start up
        # would otherwise kill their interpreter half-initialised (a "Fatal Python error" on the console).
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            pool = mp.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(cfg,))
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        results = pool.imap(_render_task, items, chunksize=4)
    finished = False
    try:
        for res in results:
            bar.update()
            yield res
        finished = True
    finally:
        bar.close()
        if pool is not None:
            if finished:
                pool.close()
            else:  # Ctrl-C, an error or an abandoned generator: stop the workers now, not after their queue
                pool.terminate()
            pool.join()


def render_store(items: list[tuple[str, str]], cfg: SynthConfig, out_dir: str | Path, *, peak_target: float = 0.9,
                 on_bad_midi: str = "fail", workers: int = 0, progress: bool = True) -> dict:
    """Render (key, MIDI path) pairs into one packed audio store at ``out_dir``; returns the report.

    Pass 1 renders into a float32 scratch file on disk (the demo is ~2 GB as float32: too much for RAM
    next to the workers); pass 2 applies ONE global gain and encodes FLAC. Bad MIDI files fail the
    run (``on_bad_midi="fail"``, listing every one) or are skipped and listed (``"skip"``).
    """
    import shutil
    from contextlib import closing

    from .audio_store import AudioStoreWriter
    from .scratch import workspace

    if on_bad_midi not in ("fail", "skip"):
        raise ValueError(f"params render.on_bad_midi must be 'fail' or 'skip', got {on_bad_midi!r}")
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    keys, lengths, peaks, rms, errors = [], [], [], [], []
    # The float32 scratch file lives in the stage's scratch folder (.scratch/render/ under `dvc repro`):
    # removed on exit, and at the next start if this run is killed.
    with workspace("render-") as scratch_dir:
        # closing(): an exception in this loop (Ctrl-C included) terminates the pool at once
        with open(scratch_dir / "audio.f32", "wb") as scratch, \
                closing(render_many(items, cfg, workers=workers, progress=progress)) as rendered:
            for key, audio, err in rendered:
                if err is not None:
                    errors.append({"key": key, "error": err})
                    continue
                scratch.write(audio.astype(np.float32).tobytes())
                keys.append(key)
                lengths.append(audio.size)
                peaks.append(float(np.abs(audio).max()))
                rms.append(float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))))
        if errors and on_bad_midi == "fail":
            raise MidiError(f"render: {len(errors)} bad MIDI file(s) (params render.on_bad_midi=fail):\n  "
                            + "\n  ".join(e["error"] for e in errors[:20]))
        if not keys:
            raise MidiError("render: nothing rendered: every MIDI file was bad")
        # One factor for the whole run puts the loudest file at peak_target: no clipping anywhere,
        # full use of 16 bits, and every loudness difference between files kept.
        scale = peak_target / max(peaks)
        if out.exists():
            shutil.rmtree(out)
        writer = AudioStoreWriter(out, cfg.sample_rate)
        data = np.memmap(scratch_dir / "audio.f32", dtype=np.float32, mode="r")
        pos = 0
        for key, n in zip(keys, lengths):
            writer.append(key, data[pos:pos + n] * np.float32(scale))
            pos += n
        del data
        soundfont = Path(cfg.soundfont)
        writer.close({"soundfont": soundfont.name, "soundfont_sha256": file_sha256(soundfont),
                      "synth_gain": cfg.gain, "global_scale": scale, "tail_seconds": cfg.tail_seconds,
                      "excluded": errors})

    def db(x):
        return 20 * np.log10(np.maximum(np.asarray(x) * scale, 1e-9))

    seconds = np.asarray(lengths) / cfg.sample_rate
    return {
        "rendered": len(keys),
        "excluded_bad_midi": len(errors),
        "excluded_keys": [e["key"] for e in errors],
        "total_hours": float(seconds.sum() / 3600),
        "segment_seconds": {"min": float(seconds.min()), "median": float(np.median(seconds)),
                            "max": float(seconds.max())},
        "global_scale": scale,
        "peak_dbfs": {"min": float(db(peaks).min()), "max": float(db(peaks).max())},
        "rms_dbfs": {"min": float(db(rms).min()), "median": float(np.median(db(rms))), "max": float(db(rms).max())},
        "soundfont": Path(cfg.soundfont).name,
        "sample_rate": cfg.sample_rate,
    }
