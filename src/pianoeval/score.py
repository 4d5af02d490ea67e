"""Score recordings with the 19-dimension quality model: the library behind ``pianoeval score``.

A recording (any format of :data:`pianoeval.audio_io.AUDIO_SUFFIXES`) is decoded to mono at the
checkpoints' extractor rate and scored

* per **window**: consecutive windows of ``window_seconds`` (30 s); a remainder shorter than half a
  window joins the last window (so windows are 15-45 s, and a recording shorter than 45 s is one window);
* as a **whole**: every frame of the recording pooled (mean‖std). The training clips are 6-102 s
  (median 13 s); for much longer recordings the window rows are the ones on the training distribution.

Each window (and the whole recording) goes through exactly the training path: loudness normalisation
to the target the checkpoints were trained with (``extractor_params.loudness_lufs`` in their metadata;
none for checkpoints trained without it), the same extractor and parameters, mean‖std pooling, then
every selected fold checkpoint; the score is the mean over checkpoints (the ensemble).

Checkpoint selection (:func:`load_ensemble`): all ``*.json`` checkpoints of the folder by default. The
fold checkpoints of the pianist split each trained on 3/4 of the PercePiano pianists, so for a
rendition of a PercePiano segment the plain ensemble leaks: ``exclude_key=KEY`` keeps only the
checkpoints whose ``metadata.train_pianist_ids`` exclude that key's pianist (one of four). The result
always names the checkpoints used and why others were left out.
"""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .audio_io import audio_info, load_audio
from .dimensions import DIMENSIONS
from .extractors import load_from_identity, mean_std
from .labels import MEAN_JSON
from .loudness import integrated_loudness, normalize_loudness, split_params
from .masterclass.scoring import load_checkpoints, train_pianists

WINDOW_SECONDS = 30.0
WHOLE_CHUNK_SECONDS = 300.0  # the whole recording is embedded in chunks of this length (bounded memory)


@dataclass
class Ensemble:
    """Selected fold checkpoints and the extractor they were trained on."""

    checkpoint_dir: str
    heads: dict                       # name -> QualityHead
    extractor: str
    extractor_params: dict            # the extractor's own parameters
    loudness_lufs: float | None       # normalisation target of the training embeddings (None = none)
    excluded: dict[str, str] = field(default_factory=dict)  # name -> why it was left out
    model: object = None              # the built extractor

    @property
    def names(self) -> list[str]:
        return sorted(self.heads)

    def predict(self, pooled: np.ndarray) -> np.ndarray:
        """(N, 2D) pooled embeddings -> (N, 19) mean prediction of the selected checkpoints."""
        return np.mean([self.heads[n].predict_pooled(pooled) for n in self.names], axis=0)


def pianist_of_key(key: str, percepiano_dir: str | Path = "data/external/percepiano") -> int:
    """Pianist id of a PercePiano segment key (the 20th value of its row in the mean-label file)."""
    path = Path(percepiano_dir) / MEAN_JSON
    if not path.is_file():
        raise FileNotFoundError(f"{path}: PercePiano label file not found (pass the PercePiano folder)")
    labels = json.loads(path.read_text())
    row = labels.get(key.strip())
    if row is None:
        close = difflib.get_close_matches(key, list(labels), n=3)
        raise KeyError(f"{path}: no PercePiano key '{key}'" + (f" (did you mean {', '.join(close)}?)" if close else ""))
    return int(row[len(DIMENSIONS)])


def load_ensemble(checkpoint_dir: str | Path = "checkpoints/quality", *, exclude_key: str | None = None,
                  percepiano_dir: str | Path = "data/external/percepiano") -> Ensemble:
    """Load the fold checkpoints (optionally only those that never trained on ``exclude_key``'s pianist).

    Raises
    ------
    FileNotFoundError : no checkpoints (run ``dvc pull`` or the train_quality stage).
    ValueError : the checkpoints disagree on the extractor or its parameters, or every checkpoint trained
        on the excluded pianist.
    """
    heads = load_checkpoints(checkpoint_dir)
    metas = {n: h.config["metadata"] for n, h in heads.items()}
    kinds = {(m.get("extractor"), json.dumps(m.get("extractor_params"), sort_keys=True)) for m in metas.values()}
    if len(kinds) != 1:
        raise ValueError(f"{checkpoint_dir}: checkpoints were trained on different extractors/settings: {sorted(kinds)}")
    extractor, stored = next(iter(kinds))
    ex_params, target = split_params(json.loads(stored))
    excluded: dict[str, str] = {}
    if exclude_key is not None:
        pianist = pianist_of_key(exclude_key, percepiano_dir)
        for name, trained in train_pianists(heads).items():
            if pianist in trained:
                excluded[name] = f"trained on pianist {pianist} ({exclude_key})"
        if len(excluded) == len(heads):
            raise ValueError(f"{checkpoint_dir}: every checkpoint trained on pianist {pianist} of '{exclude_key}'")
        heads = {n: h for n, h in heads.items() if n not in excluded}
    model = load_from_identity(ex_params, default_backend=extractor)
    return Ensemble(str(checkpoint_dir), heads, extractor, ex_params, target, excluded, model)


def windows_of(duration: float, window_seconds: float = WINDOW_SECONDS) -> list[tuple[float, float]]:
    """Consecutive windows covering [0, duration); a remainder < half a window joins the last window."""
    if duration <= 0:
        raise ValueError(f"duration must be > 0, got {duration}")
    n = max(1, int(duration // window_seconds))
    if duration - n * window_seconds >= window_seconds / 2:
        n += 1
    edges = [i * window_seconds for i in range(n)] + [duration]
    return [(edges[i], min(edges[i + 1], duration)) for i in range(n)]


def _embed_pooled(ens: Ensemble, x: np.ndarray, sr: int, chunk_seconds: float | None = None) -> np.ndarray:
    """(n,) audio -> (2D,) pooled embedding; long audio is embedded in chunks whose frames are pooled together."""
    if chunk_seconds is None or len(x) <= chunk_seconds * sr:
        return ens.model.pooled_embedding(x, sr)  # pooled as the training store pooled
    step = int(chunk_seconds * sr)
    frames = []
    for i in range(0, len(x), step):
        f, pooled = ens.model.store_embeddings(x[i:i + step], sr)
        if pooled is not None:  # a model with its own pooling (concat: per member): pool the whole clip
            return ens.model.pooled_embedding(x, sr)
        frames.append(ens.model.combine_layers(f))
    return mean_std(np.concatenate(frames))


def _normalise(ens: Ensemble, x: np.ndarray, sr: int) -> tuple[np.ndarray, float | None]:
    if ens.loudness_lufs is None:
        return x, 0.0
    return normalize_loudness(x, sr, ens.loudness_lufs)


def score_audio(ens: Ensemble, audio: np.ndarray, sample_rate: int, *, window_seconds: float = WINDOW_SECONDS,
                progress: bool = False, desc: str = "score") -> dict:
    """Score (n,) mono audio at the extractor's rate.

    Returns
    -------
    dict: ``duration_s``, ``loudness_lufs`` (measured, whole recording), ``whole`` ({dimension: score}),
    ``windows`` ([{start, end, gain_db, <dimension>: score}]); ``gain_db`` is None for a silent window
    (scored unscaled).
    """
    from tqdm import tqdm

    x = np.asarray(audio, dtype=np.float32)
    duration = len(x) / sample_rate
    wins = windows_of(duration, window_seconds)
    pooled, gains = [], []
    for start, end in tqdm(wins, desc=desc, unit="window", disable=not progress or len(wins) < 4, leave=False):
        seg, gain = _normalise(ens, x[int(round(start * sample_rate)):int(round(end * sample_rate))], sample_rate)
        gains.append(gain)
        pooled.append(_embed_pooled(ens, seg, sample_rate))
    whole, whole_gain = _normalise(ens, x, sample_rate)
    pooled.append(_embed_pooled(ens, whole, sample_rate, WHOLE_CHUNK_SECONDS))
    pred = ens.predict(np.stack(pooled))
    loud = integrated_loudness(x, sample_rate)
    return {
        "duration_s": duration,
        "loudness_lufs": loud if math.isfinite(loud) else None,
        "gain_db": whole_gain,
        "whole": dict(zip(DIMENSIONS, map(float, pred[-1]))),
        "windows": [{"start": s, "end": e, "gain_db": g, **dict(zip(DIMENSIONS, map(float, p)))}
                    for (s, e), g, p in zip(wins, gains, pred[:-1])],
    }


def score_files(paths, ens: Ensemble, *, window_seconds: float = WINDOW_SECONDS, progress: bool = True) -> dict:
    """Score every file; returns the report ``pianoeval score --json`` prints."""
    sr = ens.model.sample_rate
    files = []
    for path in paths:
        info = audio_info(path)
        x = load_audio(path, sr)
        res = score_audio(ens, x, sr, window_seconds=window_seconds, progress=progress, desc=Path(path).name)
        files.append({"path": str(path), "codec": info.codec, "sample_rate_in": info.sample_rate,
                      "channels_in": info.channels, **res})
    return {
        "checkpoint_dir": ens.checkpoint_dir,
        "checkpoints": ens.names,
        "excluded_checkpoints": ens.excluded,
        "extractor": ens.extractor,
        "extractor_params": ens.extractor_params,
        "loudness_target_lufs": ens.loudness_lufs,
        "window_seconds": window_seconds,
        "dimensions": list(DIMENSIONS),
        "files": files,
    }


def format_table(report: dict, max_window_columns: int = 6) -> str:
    """Plain-text report: which checkpoints, then per file a table of the 19 dimensions (rows) x whole
    recording and windows (columns; long recordings show the window min / median / max instead)."""
    lines = [f"checkpoints: {', '.join(report['checkpoints'])} (ensemble mean of {len(report['checkpoints'])}, "
             f"from {report['checkpoint_dir']})"]
    for name, why in sorted(report["excluded_checkpoints"].items()):
        lines.append(f"  left out: {name}: {why}")
    target = report["loudness_target_lufs"]
    lines.append(f"extractor: {report['extractor']}; loudness: "
                 + (f"each window normalised to {target:g} LUFS" if target is not None else "not normalised"))
    for f in report["files"]:
        wins = f["windows"]
        loud = f"{f['loudness_lufs']:.1f} LUFS" if f["loudness_lufs"] is not None else "silent"
        lines += ["", f"{f['path']}  ({f['duration_s']:.1f} s, {f['codec']} {f['sample_rate_in']} Hz, {loud}, "
                      f"{len(wins)} window{'s' if len(wins) != 1 else ''})"]
        if len(wins) <= max_window_columns:
            heads = ["whole"] + [f"{_mmss(w['start'])}-{_mmss(w['end'])}" for w in wins]
            cols = [[f["whole"][d] for d in DIMENSIONS]] + [[w[d] for d in DIMENSIONS] for w in wins]
        else:
            heads = ["whole", "win min", "win median", "win max"]
            m = np.array([[w[d] for d in DIMENSIONS] for w in wins])
            cols = [[f["whole"][d] for d in DIMENSIONS], m.min(0), np.median(m, 0), m.max(0)]
        width = max(11, *(len(h) + 2 for h in heads))
        lines.append(f"{'dimension':<22}" + "".join(f"{h:>{width}}" for h in heads))
        for i, d in enumerate(DIMENSIONS):
            lines.append(f"{d:<22}" + "".join(f"{c[i]:>{width}.3f}" for c in cols))
    return "\n".join(lines)


def _mmss(t: float) -> str:
    return f"{int(t // 60)}:{int(round(t % 60)):02d}" if round(t % 60) < 60 else f"{int(t // 60) + 1}:00"


def plot_scores(report: dict, path: str | Path) -> None:
    """Horizontal bar chart of the whole-recording scores, one bar per file for every dimension."""
    import pandas as pd

    from .plots import bar_chart_per_dimension

    rows = [{"dimension": d, "score": f["whole"][d], "file": Path(f["path"]).name}
            for f in report["files"] for d in DIMENSIONS]
    bar_chart_per_dimension(pd.DataFrame(rows), str(path), value="score", group="file",
                            title=f"Predicted quality, whole recording (ensemble of {len(report['checkpoints'])} "
                                  "checkpoints)")


def bootstrap_mean_ci(per_item: np.ndarray, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of (n,) per-item values (items resampled with replacement)."""
    v = np.asarray(per_item, dtype=float)
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(axis=1)
    a = (1 - level) / 2
    return float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def level_sensitivity(ens: Ensemble, clips: list[np.ndarray], sample_rate: int, gains_db=(-6.0, 6.0), *,
                      n_boot: int = 2000, seed: int = 0) -> dict:
    """How much the whole-recording scores move when each clip's level changes by ``gains_db``.

    Each clip is scored as is and scaled by each gain (float arithmetic: nothing clips), through
    :func:`score_audio` (the ``pianoeval score`` path). Per gain: the mean absolute change of the 19
    predictions over clips x dimensions, a bootstrap 95% CI over clips, the largest change, and the mean
    absolute and signed change per dimension.

    Returns
    -------
    dict: ``n_clips``, ``per_gain`` {"-6 dB": {...}}, ``mean_abs_change`` (over all gains).
    """
    base = np.array([[score_audio(ens, c, sample_rate)["whole"][d] for d in DIMENSIONS] for c in clips])
    out, all_abs = {"n_clips": len(clips), "per_gain": {}}, []
    for g in gains_db:
        scale = np.float32(10.0 ** (g / 20.0))
        moved = np.array([[score_audio(ens, c * scale, sample_rate)["whole"][d] for d in DIMENSIONS] for c in clips])
        diff = moved - base                      # (n_clips, 19)
        per_clip = np.abs(diff).mean(axis=1)     # (n_clips,)
        lo, hi = bootstrap_mean_ci(per_clip, n_boot=n_boot, seed=seed)
        out["per_gain"][f"{g:+g} dB"] = {
            "mean_abs_change": float(per_clip.mean()), "ci95": [lo, hi], "max_abs_change": float(np.abs(diff).max()),
            "per_dimension_mean_abs": dict(zip(DIMENSIONS, map(float, np.abs(diff).mean(axis=0)))),
            "per_dimension_mean_signed": dict(zip(DIMENSIONS, map(float, diff.mean(axis=0)))),
        }
        all_abs.append(per_clip)
    out["mean_abs_change"] = float(np.mean(all_abs))
    return out
