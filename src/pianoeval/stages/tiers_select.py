"""Stage `tiers_select`: ASAP metadata -> the T2/T3 selection, the T2 and T3 manifests, and the check of
which selected performances PercePiano (the quality model's training data) also holds."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..io import load_params, write_json
from ..midi_match import match_performances, overlap_summary
from ..tiers.asap import check_available, load_asap_metadata, overlap_reference_ids, select_t2_t3
from ..tiers.manifest import read_user_manifest, t2_from_asap, t3_from_asap


def percepiano_overlap(p: dict, refs: dict[str, Path]) -> tuple[pd.DataFrame, dict[str, set[int]], dict]:
    """Match every T1 (PercePiano) MIDI segment against the selected ASAP performances and the other
    performances of their performer-years."""
    # read directly: pianoeval.labels imports scikit-learn (seconds of start-up for three columns)
    labels = pd.read_csv(p["percepiano_labels"], usecols=["key", "midi_file", "pianist_id"],
                         dtype={"key": str, "midi_file": str}, keep_default_na=False)
    midi_dir = Path(p["percepiano_midi"])
    queries = {k: midi_dir / f for k, f in zip(labels["key"], labels["midi_file"])}
    # A segment the render stage skips (render.on_bad_midi: skip) is never trained on, so it cannot
    # leak; it is left out of the check here too and counted, instead of failing the stage.
    on_bad = load_params("render")["on_bad_midi"]
    m = match_performances(queries, refs, n=int(p["match"]["ngram"]), min_fraction=float(p["match"]["min_fraction"]),
                           on_unreadable_query=on_bad)
    pid = dict(zip(labels["key"], labels["pianist_id"].astype(int)))
    m["pianist_id"] = [pid[q] for q in m["query"]]
    overlap: dict[str, set[int]] = {}
    for ref, q_pid in zip(m["reference"], m["pianist_id"]):
        overlap.setdefault(ref, set()).add(int(q_pid))
    return m, overlap, overlap_summary(m, len(queries), len(refs))


def main() -> None:
    p = load_params("tiers_select")
    out = Path(p["out_dir"])
    out.mkdir(parents=True, exist_ok=True)
    meta = load_asap_metadata(p["asap_root"])
    sel = select_t2_t3(meta, p)
    check_available(meta, sel["id"], p["asap_root"])
    paths = dict(zip(meta["id"], meta["midi"]))
    ref_ids = overlap_reference_ids(meta, sel["id"])
    refs = {i: Path(p["asap_root"]) / paths[i] for i in ref_ids}
    absent = [str(f) for f in refs.values() if not f.is_file()]
    if absent:
        raise FileNotFoundError(f"tiers_select: {len(absent)} MIDI file(s) needed by the PercePiano overlap check are "
                                f"missing, e.g. {absent[:3]} (scripts/vendor_asap.py --tiers-from-params adds them)")
    matches, overlap, match_report = percepiano_overlap(p, refs)

    t2p = p["t2"]
    if t2p["source"] == "asap":
        t2 = t2_from_asap(meta, sel.loc[sel["tier"] == "t2", "id"].tolist(), t2p, overlap)
        withdrawn = 0
    elif t2p["source"] == "manifest":
        t2 = read_user_manifest(t2p["manifest"], t2p)
        gone = t2.pop("withdrawn").to_numpy(bool)
        withdrawn = int(gone.sum())
        t2 = t2[~gone].reset_index(drop=True)
    else:
        raise ValueError(f"params tiers_select.t2.source must be 'asap' or 'manifest', got {t2p['source']!r}")
    t3 = t3_from_asap(meta, sel.loc[sel["tier"] == "t3", "id"].tolist(), overlap)

    sel.to_csv(out / "selected.csv", index=False)
    t2.to_csv(out / "t2_manifest.csv", index=False)
    t3.to_csv(out / "t3_manifest.csv", index=False)
    matches.to_csv(out / "percepiano_overlap.csv", index=False, float_format="%.4f")

    asap_round = meta[meta["performer_year"].notna()]
    report = {
        "asap": {"performances": int(len(meta)), "available": int(meta["available"].sum()),
                 "with_round": int(len(asap_round)), "performer_years": int(asap_round["performer_year"].nunique())},
        "t2": {"source": t2p["source"], "performances": int(len(t2)), "performer_years": int(t2["performer_year"].nunique()),
               "folders": int(t2["folder"].nunique()), "withdrawn_excluded": withdrawn,
               "placement_counts": {str(k): int(v) for k, v in t2.drop_duplicates("performer_year")["placement"]
                                    .value_counts().sort_index().items()},
               "percepiano_overlap_performances": int(t2["percepiano_overlap"].sum()),
               "percepiano_overlap_performer_years": int(t2.loc[t2["percepiano_overlap"], "performer_year"].nunique())},
        "t3": {"performances": int(len(t3)), "folders": int(t3["folder"].nunique()),
               "percepiano_overlap_performances": int(t3["percepiano_overlap"].sum())},
        "percepiano_match": {**match_report, "ngram": int(p["match"]["ngram"]),
                             "min_fraction": float(p["match"]["min_fraction"]),
                             "matched_performances": sorted(overlap)},
    }
    write_json("metrics/tiers_select.json", report)
    print(f"tiers_select: T2 {len(t2)} performances of {report['t2']['performer_years']} performer-years "
          f"({withdrawn} withdrawn excluded), T3 {len(t3)} performances in {report['t3']['folders']} folders; "
          f"{match_report['n_references_matched']} selected performance(s) found in PercePiano "
          f"({match_report['n_queries_matched']} T1 segments): T2 {report['t2']['percepiano_overlap_performances']} "
          f"performances flagged, kept out of the competition validation; "
          f"{match_report['n_queries_unreadable']} unreadable T1 MIDI segment(s) left out of the check "
          f"(render.on_bad_midi: skip)")


if __name__ == "__main__":
    main()
