"""Which MIDI performances are the same recording? Note-sequence matching for leakage checks.

Two files hold the same performance when they share long runs of identical (pitch, velocity)
notes in onset order: a different pianist playing the same music matches the pitches but not the
velocities of 8 notes in a row (measured on ASAP vs PercePiano: pitch-only 8-grams give false
matches between different performances of the Schubert Impromptu D935/3; pitch+velocity 8-grams
give none, and the true matches share 100% of their 8-grams). A PercePiano segment is a few bars cut
from a performance, so the test is containment: the fraction of the query's n-grams found in the
reference.

Used by the tiers (a T2/T3 performance that PercePiano also holds must not be scored by a quality
model trained on it) and reusable wherever one dataset must be kept out of another's test folds.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

_MIX = np.uint64(0x9E3779B97F4A7C15)


def note_tokens(pitch: np.ndarray, velocity: np.ndarray) -> np.ndarray:
    """(n,) int64 token per note (pitch, velocity), notes already in onset order."""
    return np.asarray(pitch, dtype=np.int64) * 128 + np.asarray(velocity, dtype=np.int64)


def ngram_hashes(tokens: np.ndarray, n: int) -> np.ndarray:
    """Sorted unique 64-bit hashes of every run of ``n`` consecutive tokens ((0,) when fewer notes)."""
    tokens = np.asarray(tokens, dtype=np.uint64)
    if len(tokens) < n:
        return np.zeros(0, dtype=np.uint64)
    h = np.zeros(len(tokens) - n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):  # polynomial rolling hash, wrapping modulo 2^64
            h = h * _MIX + tokens[k:len(tokens) - n + 1 + k] + np.uint64(1)
    return np.unique(h)


def file_hashes(path: str | Path, n: int) -> np.ndarray:
    """n-gram hashes of one MIDI file's notes (see :func:`ngram_hashes`)."""
    from .midi_notes import read_performance

    perf = read_performance(path)
    return ngram_hashes(note_tokens(perf.pitch, perf.velocity), n)


def match_performances(queries: Mapping[str, str | Path], references: Mapping[str, str | Path], *, n: int = 8,
                       min_fraction: float = 0.5, on_unreadable_query: str = "fail") -> pd.DataFrame:
    """Every (query, reference) pair whose n-gram containment reaches ``min_fraction``.

    Parameters
    ----------
    queries, references : id -> MIDI path. Queries are typically short segments (PercePiano),
        references full performances (ASAP).
    n : notes per n-gram; min_fraction : share of the query's n-grams found in the reference.
    on_unreadable_query : "fail" raises on a query MIDI that cannot be read (naming the file); "skip"
        leaves it out and lists its id in ``result.attrs["unreadable_queries"]`` (the caller reports the
        count; render.on_bad_midi=skip drops the same segments from training, so none can leak).

    Returns
    -------
    DataFrame query, reference, fraction, n_query_ngrams (one row per match, sorted); a query with
    fewer than ``n`` notes cannot match and is counted by :func:`overlap_summary`.
    """
    ref_ids = sorted(references)
    ref_hashes = [file_hashes(references[r], n) for r in ref_ids]
    # One inverted index: hash -> reference numbers, as parallel sorted arrays.
    all_h = np.concatenate(ref_hashes) if ref_hashes else np.zeros(0, np.uint64)
    all_r = np.concatenate([np.full(len(h), i) for i, h in enumerate(ref_hashes)]) if ref_hashes else np.zeros(0, int)
    order = np.argsort(all_h, kind="stable")
    all_h, all_r = all_h[order], all_r[order]
    if on_unreadable_query not in ("fail", "skip"):
        raise ValueError(f"on_unreadable_query must be 'fail' or 'skip', got {on_unreadable_query!r}")
    rows, unreadable = [], []
    for q in sorted(queries):
        try:
            qh = file_hashes(queries[q], n)
        except ValueError:  # read_performance names the file and the parser's complaint
            if on_unreadable_query == "fail":
                raise
            unreadable.append(q)
            continue
        if not len(qh):
            continue
        lo, hi = np.searchsorted(all_h, qh, "left"), np.searchsorted(all_h, qh, "right")
        hits = np.concatenate([all_r[a:b] for a, b in zip(lo, hi) if b > a]) if (hi > lo).any() else np.zeros(0, int)
        if not hits.size:
            continue
        counts = np.bincount(hits, minlength=len(ref_ids))
        for r in np.flatnonzero(counts / len(qh) >= min_fraction):
            rows.append((q, ref_ids[r], float(counts[r] / len(qh)), len(qh)))
    result = pd.DataFrame(rows, columns=["query", "reference", "fraction", "n_query_ngrams"])
    result.attrs["unreadable_queries"] = unreadable
    return result


def overlap_summary(matches: pd.DataFrame, n_queries: int, n_references: int) -> dict:
    """Counts for the metrics: queries and references involved in at least one match, and queries
    left out as unreadable (``on_unreadable_query="skip"``)."""
    return {"n_queries": int(n_queries), "n_references": int(n_references), "n_matches": int(len(matches)),
            "n_queries_unreadable": len(matches.attrs.get("unreadable_queries", [])),
            "n_queries_matched": int(matches["query"].nunique()) if len(matches) else 0,
            "n_references_matched": int(matches["reference"].nunique()) if len(matches) else 0}
