"""`make review BASE=<git rev>`: what a change does to params, metrics and plots, in one folder.

Writes ``<out>/`` (git-ignored, replaced on each run), comparing BASE with the work tree:

* ``params.md``: ``dvc params diff BASE --md`` (changed parameters only);
* ``metrics.md``: ``dvc metrics diff BASE --md`` (every changed metric, old, new and change);
* ``plots/index.html``: ``dvc plots diff BASE`` (every plot of dvc.yaml, both versions side by side);
* ``index.md``: what was compared and how to rebuild it.

Metrics, plots and reports are git-tracked (``cache: false``), so none of this needs a DVC remote.
``--ci`` prints the metrics diff of HEAD against its parent (CI runs it after the tests) and says so
instead of failing when there is no parent (first commit, or a shallow clone).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path


class ReviewError(RuntimeError):
    """A git or dvc command failed; the message holds its command and output."""


def _run(args: list[str], cwd: Path) -> str:
    res = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    if res.returncode != 0:
        raise ReviewError(f"`{' '.join(args)}` failed ({res.returncode}):\n{res.stdout}{res.stderr}")
    return res.stdout


def dvc(args: list[str], cwd: Path) -> str:
    return _run([sys.executable, "-m", "dvc", *args], cwd)


def resolve(rev: str, cwd: Path) -> str | None:
    """Full commit id of ``rev``, or None when it does not exist here."""
    res = subprocess.run(["git", "rev-parse", "--verify", "-q", f"{rev}^{{commit}}"], cwd=cwd, capture_output=True,
                         text=True)
    return res.stdout.strip() if res.returncode == 0 else None


def write_review(base: str, out: str | Path, repo: str | Path = ".") -> dict[str, Path]:
    """Write the review folder for ``base`` vs the work tree; returns the files written."""
    repo = Path(repo).resolve()
    commit = resolve(base, repo)
    if commit is None:
        raise ReviewError(f"review: BASE={base!r} is not a commit of {repo}")
    out = (repo / out) if not Path(out).is_absolute() else Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    files = {"params": out / "params.md", "metrics": out / "metrics.md", "plots": out / "plots" / "index.html",
             "index": out / "index.md"}
    params = dvc(["params", "diff", base, "--md"], repo)
    metrics = dvc(["metrics", "diff", base, "--md"], repo)
    files["params"].write_text(params or "No parameter changed.\n")
    files["metrics"].write_text(metrics or "No metric changed.\n")
    dvc(["plots", "diff", base, "-o", str(out / "plots")], repo)
    if not files["plots"].is_file():
        raise ReviewError(f"dvc plots diff wrote no {files['plots']}")
    n_params = max(0, len(params.strip().splitlines()) - 2) if params.strip() else 0
    n_metrics = max(0, len(metrics.strip().splitlines()) - 2) if metrics.strip() else 0
    files["index"].write_text(
        f"# Review: {base} ({commit[:10]}) vs the work tree\n\n"
        f"* [params.md](params.md): {n_params} changed parameter(s) (`dvc params diff {base} --md`)\n"
        f"* [metrics.md](metrics.md): {n_metrics} changed metric(s) (`dvc metrics diff {base} --md`)\n"
        f"* [plots/index.html](plots/index.html): every plot, both versions (`dvc plots diff {base}`)\n\n"
        f"Rebuild with `make review BASE={base}`.\n")
    return files


def ci_metrics_diff(repo: str | Path = ".") -> str:
    """The metrics diff of HEAD against its parent, as Markdown, or a sentence saying there is none."""
    repo = Path(repo).resolve()
    head, parent = resolve("HEAD", repo), resolve("HEAD~1", repo)
    if head is None or parent is None:
        return "review: no previous commit in this clone (first commit or shallow clone): no metrics diff.\n"
    diff = dvc(["metrics", "diff", "HEAD~1", "HEAD", "--md"], repo)
    title = f"Metrics, HEAD~1 ({parent[:10]}) -> HEAD ({head[:10]}):\n\n"
    return title + (diff if diff.strip() else "No metric changed.\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pianoeval.review", description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default="HEAD", help="git revision to compare the work tree with (default HEAD)")
    ap.add_argument("--out", default="review", help="output folder (default: review/, git-ignored)")
    ap.add_argument("--ci", action="store_true", help="print the metrics diff of HEAD against HEAD~1 and exit")
    args = ap.parse_args(argv)
    try:
        if args.ci:
            print(ci_metrics_diff(), end="")
            return 0
        files = write_review(args.base, args.out)
    except ReviewError as e:
        print(e, file=sys.stderr)
        return 1
    print(files["index"].read_text(), end="")
    print(f"\nwritten to {files['index'].parent}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
