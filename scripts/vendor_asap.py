"""Rebuild the vendored ASAP subset (data/external/asap) from a full ASAP checkout.

Copies, for every listed performance: its MIDI, its annotation file and its score folder's
``midi_score_annotations.txt`` (the alignment check needs it); with --tiers-from-params also the MIDI
alone of every other performance of a selected performer-year (the PercePiano overlap check matches
them: ``overlap_check_midi_only`` in vendored_ids.txt); plus the full ``metadata.csv`` (the
selection and the performer-year placements read every row) and ``LICENSE.md``. The README of the
vendored folder is written by hand (facts and the licence note) and is not touched.

Which performances:
  --tiers-from-params   the T2/T3 default selection (pianoeval.tiers.asap.select_t2_t3 on the full
                        checkout with params.yaml's tiers_select section)
  --ids-file FILE       one performance id per line (e.g. another tier's pool; '#' starts a comment)
The union is written to <dest>/vendored_ids.txt (id<TAB>why), sorted, so the copy is reproducible:
  python scripts/vendor_asap.py --source /path/to/asap-dataset --tiers-from-params --ids-file data/external/asap/extra_ids.txt

Files of performances no longer listed are removed from <dest> (the copy holds exactly the list).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from pianoeval.io import load_params  # noqa: E402
from pianoeval.tiers.asap import METADATA, load_asap_metadata, overlap_reference_ids, select_t2_t3  # noqa: E402

KEEP = {METADATA, "LICENSE.md", "README.md", "vendored_ids.txt", "extra_ids.txt"}


def read_ids(path: Path) -> list[str]:
    out = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(line.split("\t")[0])
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", required=True, help="full ASAP checkout (has metadata.csv)")
    ap.add_argument("--dest", default=str(REPO / "data/external/asap"))
    ap.add_argument("--tiers-from-params", action="store_true")
    ap.add_argument("--ids-file", action="append", default=[])
    ap.add_argument("--params", default=str(REPO / "params.yaml"))
    a = ap.parse_args(argv)
    src, dest = Path(a.source), Path(a.dest)
    meta = load_asap_metadata(src)
    why: dict[str, set[str]] = {}
    if a.tiers_from_params:
        sel = select_t2_t3(meta, load_params("tiers_select", a.params))
        for i, tier in zip(sel["id"], sel["tier"]):
            why.setdefault(i, set()).add(tier)
    for f in a.ids_file:
        for i in read_ids(Path(f)):
            why.setdefault(i, set()).add(Path(f).stem)
    known = set(meta["id"])
    unknown = sorted(set(why) - known)
    if unknown:
        raise SystemExit(f"{len(unknown)} id(s) not in {src / METADATA}: {unknown[:5]}")
    if not why:
        raise SystemExit("nothing to vendor: pass --tiers-from-params and/or --ids-file")
    rows = meta.set_index("id").loc[sorted(why)]
    files = {METADATA, "LICENSE.md"}
    for r in rows.itertuples():
        files |= {r.midi, r.annotations, r.score_annotations}
    if a.tiers_from_params:
        # MIDI only: the PercePiano overlap check matches every performance of a selected performer-year
        midi = dict(zip(meta["id"], meta["midi"]))
        for i in overlap_reference_ids(meta, sel["id"]):
            if i not in why:
                why[i] = {"overlap_check_midi_only"}
                files.add(midi[i])
    dest.mkdir(parents=True, exist_ok=True)
    for old in sorted(p for p in dest.rglob("*") if p.is_file()):
        rel = str(old.relative_to(dest))
        if rel not in files and rel not in KEEP:
            old.unlink()
    for rel in sorted(files):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / rel, dest / rel)
    for d in sorted((p for p in dest.rglob("*") if p.is_dir()), reverse=True):
        if not any(d.iterdir()):
            d.rmdir()
    (dest / "vendored_ids.txt").write_text("".join(f"{i}\t{','.join(sorted(w))}\n" for i, w in sorted(why.items())))
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    print(f"vendored {len(why)} performances ({len(files)} files, {size / 1e6:.1f} MB) into {dest}")


if __name__ == "__main__":
    main()
