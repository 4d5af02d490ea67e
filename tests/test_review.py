"""`make review BASE=<rev>` and CI's metrics diff, on two real commits of a temporary clone."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import REPO

GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}


def git(args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True, text=True).stdout


def review(args, cwd):
    return subprocess.run([sys.executable, "-m", "pianoeval.review", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_review_folder_and_ci_metrics_diff_on_two_commits(tmp_path):
    clone = tmp_path / "clone"
    git(["clone", "-q", str(REPO), str(clone)], tmp_path)
    # Second commit: a parameter, a metric and a plot's data change, as after a real rerun.
    params = (clone / "params.yaml").read_text()
    assert "    dropout: 0.2\n" in params
    (clone / "params.yaml").write_text(params.replace("    dropout: 0.2\n", "    dropout: 0.35\n", 1))
    quality = json.loads((clone / "metrics/quality.json").read_text())
    old_r2 = quality["mlp"]["pianist"]["r2_mean"]
    quality["mlp"]["pianist"]["r2_mean"] = 0.123456
    (clone / "metrics/quality.json").write_text(json.dumps(quality, indent=2) + "\n")
    rows = (clone / "plots/quality_r2_per_dim.csv").read_text().splitlines()
    rows[1] = rows[1].rsplit(",", 1)[0] + ",0.9999"
    (clone / "plots/quality_r2_per_dim.csv").write_text("\n".join(rows) + "\n")
    git(["commit", "-qam", "dropout 0.35"], clone)

    res = review(["--base", "HEAD~1", "--out", "review"], clone)
    assert res.returncode == 0, res.stderr
    out = clone / "review"
    params_md = (out / "params.md").read_text()
    assert "| params.yaml | train_quality.mlp.dropout | 0.2      | 0.35        |" in params_md
    assert params_md.count("params.yaml") == 1  # changed parameters only
    metrics_md = (out / "metrics.md").read_text()
    line = next(x for x in metrics_md.splitlines() if "mlp.pianist.r2_mean" in x)
    assert f"{old_r2:g}"[:6] in line and "0.12346" in line
    html = (out / "plots" / "index.html").read_text()
    assert "HEAD~1" in html and "workspace" in html and "quality_r2_per_dim_csv" in html and "0.9999" in html
    assert "1 changed parameter(s)" in (out / "index.md").read_text()
    assert git(["status", "--porcelain"], clone) == ""  # the review folder is git-ignored

    ci = review(["--ci"], clone)
    assert ci.returncode == 0, ci.stderr
    assert ci.stdout.startswith("Metrics, HEAD~1 (") and "mlp.pianist.r2_mean" in ci.stdout
    assert "0.12346" in ci.stdout and "params" not in ci.stdout

    bad = review(["--base", "no-such-rev"], clone)
    assert bad.returncode == 1 and "BASE='no-such-rev' is not a commit" in bad.stderr


def test_ci_metrics_diff_without_a_previous_commit(tmp_path):
    shallow = tmp_path / "shallow"
    git(["clone", "-q", "--depth", "1", f"file://{REPO}", str(shallow)], tmp_path)
    res = review(["--ci"], shallow)
    assert res.returncode == 0 and "no previous commit in this clone" in res.stdout
