"""Add to dvc.yaml every pianoeval module a stage imports but does not list as a dep, and drop `src/`
deps that no longer exist (a deleted module would make the stage fail before it runs).

`tests/test_dvc_deps.py` fails while a stage's code is missing from its deps (a code change would then
leave `dvc status` clean over stale outputs); this script is the fix it points to. It only adds module
files (after the stage's other `src/` deps), never removes anything, and keeps comments and layout
(ruamel round trip). Usage: `python scripts/sync_dvc_deps.py` from the repository root.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from test_dvc_deps import missing_deps  # noqa: E402  (the test's own import analysis: one definition)


def main() -> int:
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    path = REPO / "dvc.yaml"
    doc = yaml.load(path.read_text())
    gone = 0
    for stage, stage_def in doc["stages"].items():
        deps = (stage_def["do"] if "foreach" in stage_def else stage_def).get("deps", [])
        for d in [d for d in deps if isinstance(d, str) and d.startswith("src/") and not (REPO / d).exists()]:
            deps.remove(d)
            gone += 1
            print(f"{stage}: - {d} (no longer exists)")
    missing = missing_deps() if not gone else {}
    if not missing and not gone:
        print("dvc.yaml: every stage lists the code it imports")
        return 0
    for stage, files in missing.items():
        stage_def = doc["stages"][stage]
        deps = (stage_def["do"] if "foreach" in stage_def else stage_def)["deps"]  # foreach: the template
        last_src = max((i for i, d in enumerate(deps) if isinstance(d, str) and d.startswith("src/")), default=-1)
        for offset, f in enumerate(files, start=1):
            deps.insert(last_src + offset, f)
        print(f"{stage}: + {', '.join(files)}")
    with open(path, "w") as fh:
        yaml.dump(doc, fh)
    if gone:
        return main()  # now that the file parses for the import check, add what is missing
    return 0


if __name__ == "__main__":
    sys.exit(main())
