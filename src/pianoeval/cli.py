"""The ``pianoeval`` command (console entry point in pyproject). Subcommands:

``pianoeval score AUDIO... [--json] [--plot PNG] [--checkpoints DIR] [--exclude-key KEY] [--window S]``
    19-dimension quality scores of recordings in any format (see :mod:`pianoeval.score`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _score(args: argparse.Namespace) -> int:
    from .audio_io import is_audio_file
    from .io import _clean
    from .score import format_table, load_ensemble, plot_scores, score_files

    missing = [p for p in args.audio if not Path(p).is_file()]
    if missing:
        print(f"pianoeval score: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    unknown = [p for p in args.audio if not is_audio_file(p)]
    if unknown:
        from .audio_io import AUDIO_SUFFIXES

        print(f"pianoeval score: not an audio file suffix ({' '.join(AUDIO_SUFFIXES)}): {', '.join(unknown)}",
              file=sys.stderr)
        return 2
    ens = load_ensemble(args.checkpoints, exclude_key=args.exclude_key, percepiano_dir=args.percepiano_dir)
    report = score_files(args.audio, ens, window_seconds=args.window, progress=not args.no_progress)
    if args.json:
        print(json.dumps(_clean(report), indent=2))
    else:
        print(format_table(report))
    if args.plot:
        plot_scores(report, args.plot)
        print(f"plot: {args.plot}", file=sys.stderr if args.json else sys.stdout)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pianoeval", description="Piano-performance assessment tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    sc = sub.add_parser("score", help="19-dimension quality scores of recordings (any audio format)",
                        description="Score recordings with the ensemble of the quality-model fold checkpoints: "
                                    "per 30 s window and for the whole recording.")
    sc.add_argument("audio", nargs="+", help="audio files (wav, flac, mp3, m4a, webm, opus, ogg, ...)")
    sc.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sc.add_argument("--plot", metavar="PNG", help="write a bar chart of the whole-recording scores")
    sc.add_argument("--checkpoints", default="checkpoints/quality", help="fold checkpoint folder "
                    "(default: %(default)s, from `dvc pull` or the train_quality stage)")
    sc.add_argument("--exclude-key", metavar="KEY", help="the input is a rendition of this PercePiano segment: use "
                    "only checkpoints that never trained on its pianist (leakage-safe)")
    sc.add_argument("--percepiano-dir", default="data/external/percepiano",
                    help="PercePiano folder with the label files (for --exclude-key; default: %(default)s)")
    sc.add_argument("--window", type=float, default=30.0, help="window length in seconds (default: %(default)s)")
    sc.add_argument("--no-progress", action="store_true", help="no progress bar")
    sc.set_defaults(func=_score)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "window", 1.0) <= 0:
        build_parser().error("--window must be > 0")
    try:
        return args.func(args)
    except (FileNotFoundError, KeyError, ValueError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"pianoeval {args.command}: {msg}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
