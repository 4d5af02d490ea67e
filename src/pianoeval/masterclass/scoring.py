"""Model B input: the 19 predicted quality dimensions of each segment, without pianist leakage.

A simulated segment is made of PercePiano performances, and the fold checkpoints of the quality
model were trained on PercePiano. A checkpoint may score a segment only when none of the
segment's pianists (from ``provenance.json``: which performance lies where in the session audio)
is among the checkpoint's ``metadata.train_pianist_ids``; the scores are the mean over the allowed
checkpoints. :func:`check_no_leakage` re-checks the final assignment and raises
:class:`LeakageError`. Real recordings come without provenance: every checkpoint is allowed and
the report says so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pianoeval.dimensions import DIMENSIONS
from pianoeval.io import read_json
from pianoeval.models.quality_mlp import load_checkpoint


class LeakageError(AssertionError):
    """A quality model would score a performance of a pianist it was trained on (or nothing may score it)."""


def load_checkpoints(folder: str | Path) -> dict[str, object]:
    """stem name -> QualityHead for every ``<stem>.json`` in ``folder`` (sorted)."""
    stems = sorted(p.with_suffix("") for p in Path(folder).glob("*.json"))
    if not stems:
        raise FileNotFoundError(f"{folder}: no quality checkpoints (*.json); run the train_quality stage")
    heads = {s.name: load_checkpoint(s) for s in stems}
    for name, h in heads.items():
        if list(h.config.get("dim_names", [])) != list(DIMENSIONS):
            raise ValueError(f"{folder}/{name}.json: dim_names differ from the 19 PercePiano dimensions")
        if "train_pianist_ids" not in h.config.get("metadata", {}):
            raise ValueError(f"{folder}/{name}.json: metadata.train_pianist_ids missing (needed by the leakage guard)")
    return heads


def train_pianists(heads: dict) -> dict[str, set[int]]:
    return {n: {int(v) for v in h.config["metadata"]["train_pianist_ids"]} for n, h in heads.items()}


def segment_pianists(windows: pd.DataFrame, provenance: dict | None) -> dict[str, set[int]] | None:
    """segment_id -> pianist ids of every performance overlapping the window (None without provenance).

    Parameters
    ----------
    windows : columns segment_id, video_id, start, end.
    provenance : parsed provenance.json (``videos.<id>.performances[{pianist_id, start, end[, audio_end]}]``;
        ``audio_end`` includes the release tail, which is that pianist's audio too).
    """
    if provenance is None:
        return None
    videos = provenance.get("videos", {})
    out = {}
    for row in windows.itertuples(index=False):
        if row.video_id not in videos:
            raise ValueError(f"provenance.json: no entry for video '{row.video_id}' (segment {row.segment_id})")
        out[row.segment_id] = {int(e["pianist_id"]) for e in videos[row.video_id]["performances"]
                               if e["start"] < row.end and e.get("audio_end", e["end"]) > row.start}
    return out


def allowed_models(seg_pianists: dict[str, set[int]] | None, model_pianists: dict[str, set[int]],
                   segment_ids) -> dict[str, list[str]]:
    """segment_id -> checkpoints that never trained on any of the segment's pianists (all without provenance)."""
    if seg_pianists is None:
        return {s: sorted(model_pianists) for s in segment_ids}
    return {s: sorted(m for m, trained in model_pianists.items() if not trained & seg_pianists[s])
            for s in segment_ids}


def check_no_leakage(assignment: dict[str, list[str]], seg_pianists: dict[str, set[int]] | None,
                     model_pianists: dict[str, set[int]]) -> None:
    """Raise :class:`LeakageError` if a segment is scored by a model trained on one of its pianists,
    or if a segment has no model at all."""
    empty = sorted(s for s, ms in assignment.items() if not ms)
    if empty:
        raise LeakageError(f"{len(empty)} segment(s) have no quality model that did not train on their pianist, "
                           f"e.g. {empty[:3]}")
    if seg_pianists is None:
        return
    leaks = [(s, m, sorted(model_pianists[m] & seg_pianists[s])) for s, ms in assignment.items() for m in ms
             if model_pianists[m] & seg_pianists[s]]
    if leaks:
        s, m, p = leaks[0]
        raise LeakageError(f"{len(leaks)} leaking (segment, model) pair(s), e.g. model '{m}' trained on pianist(s) "
                           f"{p} scores segment '{s}'")


def check_extractor(heads: dict, extractor: str, extractor_params: dict) -> None:
    """The checkpoints must have been trained on embeddings of the same extractor and settings."""
    for name, h in heads.items():
        meta = h.config["metadata"]
        if meta.get("extractor") != extractor or meta.get("extractor_params") != extractor_params:
            raise ValueError(f"checkpoint '{name}' was trained on {meta.get('extractor')} "
                             f"{meta.get('extractor_params')}"
                             f" embeddings, the segments use {extractor} {extractor_params}: rerun train_quality")


def quality_scores(pooled: np.ndarray, segment_ids: list[str], heads: dict,
                   assignment: dict[str, list[str]]) -> pd.DataFrame:
    """Mean prediction of each segment's allowed checkpoints.

    Parameters
    ----------
    pooled : (N, 2D) pooled embeddings, rows in ``segment_ids`` order.

    Returns
    -------
    DataFrame: segment_id, the 19 dimensions, n_models, models (';'-joined).
    """
    preds = {m: h.predict_pooled(pooled) for m, h in heads.items()}  # (N, 19) each
    out = np.empty((len(segment_ids), len(DIMENSIONS)))
    for i, s in enumerate(segment_ids):
        out[i] = np.mean([preds[m][i] for m in assignment[s]], axis=0)
    df = pd.DataFrame(out, columns=list(DIMENSIONS))
    df.insert(0, "segment_id", segment_ids)
    df["n_models"] = [len(assignment[s]) for s in segment_ids]
    df["models"] = [";".join(assignment[s]) for s in segment_ids]
    return df


def score_segments(windows: pd.DataFrame, store, checkpoint_dir: str | Path,
                   provenance_path: str | Path | None) -> tuple[pd.DataFrame, dict]:
    """Leakage-guarded quality scores of every window; returns (scores table, report)."""
    heads = load_checkpoints(checkpoint_dir)
    check_extractor(heads, store.extractor, store.extractor_params)
    ids = windows["segment_id"].tolist()
    prov = read_json(provenance_path) if provenance_path and Path(provenance_path).is_file() else None
    model_p = train_pianists(heads)
    seg_p = segment_pianists(windows, prov)
    assignment = allowed_models(seg_p, model_p, ids)
    check_no_leakage(assignment, seg_p, model_p)
    scores = quality_scores(store.pooled(ids), ids, heads, assignment)
    n = scores["n_models"]
    report = {"n_segments": len(ids), "n_checkpoints": len(heads), "provenance": prov is not None,
              "leakage_guard": "pianist-disjoint checkpoints only" if prov is not None else
              "no provenance (real recordings): all checkpoints used, no pianist overlap check possible",
              "models_per_segment": {"min": int(n.min()), "mean": float(n.mean()), "max": int(n.max())},
              "segments_per_model": {m: sum(m in a for a in assignment.values()) for m in heads}}
    return scores, report
