"""Stage `render`: labels table -> one packed FLAC store of every MIDI segment (see pianoeval.render)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..audio_store import AudioStoreWriter
from ..io import load_params, write_json
from ..labels import load_labels
from ..render import SynthConfig, file_sha256, render_many, resolve_soundfont


def main() -> None:
    p = load_params("render")
    table = load_labels(p["labels"])
    midi_dir = Path(p["midi_dir"])
    soundfont = resolve_soundfont(p["soundfont"])
    cfg = SynthConfig(soundfont=str(soundfont), sample_rate=p["sample_rate"], gain=p["gain"],
                      tail_seconds=p["tail_seconds"])
    items = [(k, str(midi_dir / f)) for k, f in zip(table["key"], table["midi_file"])]
    missing = [path for _, path in items if not Path(path).is_file()]
    if missing:
        raise FileNotFoundError(f"render: {len(missing)} MIDI file(s) listed in {p['labels']} are missing: "
                                + ", ".join(missing[:20]))

    out = Path(p["out_dir"])
    # Pass 1 renders into a float32 scratch file on disk (the demo is ~2 GB as float32: too much
    # for RAM alongside the workers); pass 2 applies one global gain and encodes FLAC.
    scratch_dir = Path(tempfile.mkdtemp(prefix="render-", dir=out.parent))
    keys, lengths, peaks, rms, errors = [], [], [], [], []
    try:
        with open(scratch_dir / "audio.f32", "wb") as scratch:
            for key, audio, err in render_many(items, cfg, workers=p["workers"]):
                if err is not None:
                    errors.append({"key": key, "error": err})
                    continue
                scratch.write(audio.astype(np.float32).tobytes())
                keys.append(key)
                lengths.append(audio.size)
                peaks.append(float(np.abs(audio).max()))
                rms.append(float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))))
        if errors and p["on_bad_midi"] == "fail":
            raise ValueError(f"render: {len(errors)} bad MIDI file(s) (params render.on_bad_midi=fail):\n  "
                             + "\n  ".join(e["error"] for e in errors[:20]))
        if not keys:
            raise ValueError("render: nothing rendered")

        global_peak = max(peaks)
        # One factor for the whole run puts the loudest file at peak_target: no clipping anywhere,
        # full use of 16 bits, and every loudness difference between files kept.
        scale = p["peak_target"] / global_peak
        if out.exists():
            shutil.rmtree(out)
        writer = AudioStoreWriter(out, cfg.sample_rate)
        data = np.memmap(scratch_dir / "audio.f32", dtype=np.float32, mode="r")
        pos = 0
        for key, n in zip(keys, lengths):
            writer.append(key, data[pos:pos + n] * np.float32(scale))
            pos += n
        del data
        meta = {"soundfont": soundfont.name, "soundfont_sha256": file_sha256(soundfont),
                "synth_gain": cfg.gain, "global_scale": scale, "tail_seconds": cfg.tail_seconds,
                "excluded": errors}
        writer.close(meta)
    finally:
        shutil.rmtree(scratch_dir, ignore_errors=True)

    db = lambda x: 20 * np.log10(np.maximum(np.asarray(x) * scale, 1e-9))  # noqa: E731
    seconds = np.asarray(lengths) / cfg.sample_rate
    report = {
        "rendered": len(keys),
        "excluded_bad_midi": len(errors),
        "total_hours": float(seconds.sum() / 3600),
        "segment_seconds": {"min": float(seconds.min()), "median": float(np.median(seconds)),
                            "max": float(seconds.max())},
        "global_scale": scale,
        "peak_dbfs": {"min": float(db(peaks).min()), "max": float(db(peaks).max())},
        "rms_dbfs": {"min": float(db(rms).min()), "median": float(np.median(db(rms))), "max": float(db(rms).max())},
        "soundfont": soundfont.name,
        "sample_rate": cfg.sample_rate,
    }
    write_json("metrics/render.json", report)
    print(f"render: {len(keys)} files, {report['total_hours']:.2f} h, {len(errors)} excluded, "
          f"global scale {scale:.3f}, RMS {report['rms_dbfs']['min']:.1f}..{report['rms_dbfs']['max']:.1f} dBFS")


if __name__ == "__main__":
    main()
