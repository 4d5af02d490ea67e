"""Stage `render`: labels table -> one packed FLAC store of every MIDI segment (see pianoeval.render)."""

from __future__ import annotations

from pathlib import Path

from ..io import load_params, write_json
from ..render import SynthConfig, render_store


def main() -> None:
    # Imported here, not at module level: each spawned render worker re-imports this module, and
    # pandas + scikit-learn (via labels) would add seconds to every worker's start.
    from ..labels import load_labels

    p = load_params("render")
    table = load_labels(p["labels"])
    midi_dir = Path(p["midi_dir"])
    cfg = SynthConfig.from_params(p)
    items = [(k, str(midi_dir / f)) for k, f in zip(table["key"], table["midi_file"])]
    missing = [path for _, path in items if not Path(path).is_file()]
    if missing:
        raise FileNotFoundError(f"render: {len(missing)} MIDI file(s) listed in {p['labels']} are missing: "
                                + ", ".join(missing[:20]))

    report = render_store(items, cfg, p["out_dir"], peak_target=p["peak_target"], on_bad_midi=p["on_bad_midi"],
                          workers=p["workers"])
    write_json("metrics/render.json", report)
    print(f"render: {report['rendered']} files, {report['total_hours']:.2f} h, {report['excluded_bad_midi']} excluded, "
          f"global scale {report['global_scale']:.3f}, "
          f"RMS {report['rms_dbfs']['min']:.1f}..{report['rms_dbfs']['max']:.1f} dBFS")


if __name__ == "__main__":
    main()
