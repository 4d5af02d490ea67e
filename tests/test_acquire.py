"""acquire: yt-dlp downloads from an http.server on 127.0.0.1 (generic extractor, direct media links),
archive keyed by manifest id, resume, failures listed and counted, withdrawn items removed, manifests
validated. Offline: nothing leaves 127.0.0.1."""

import hashlib
import json
import shutil
from datetime import datetime, timezone

import numpy as np
import pytest
from pydantic import ValidationError

from media_server import encode, piano_like, serve
from pianoeval.acquire import (
    ARCHIVE_FILE,
    FetchOptions,
    ManifestError,
    ManifestRow,
    classify_failure,
    fetch_manifest,
    fetched_items,
    read_archive,
    read_manifest,
    summary_line,
)
from pianoeval.audio_io import load_audio

SUFFIXES = (".wav", ".flac", ".mp3", ".m4a", ".webm", ".opus", ".ogg")
FIXED_NOW = lambda: datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)  # noqa: E731


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """One folder with the same 3 s clip in every format, all named x.<ext> (one URL stem)."""
    folder = tmp_path_factory.mktemp("media")
    x = piano_like(3.0, 24000, seed=2)
    for s in SUFFIXES:
        sr = 48000 if s in (".webm", ".opus") else 24000
        encode(folder / f"x{s}", np.interp(np.arange(int(3.0 * sr)) * 24000 / sr, np.arange(len(x)), x), sr)
    (folder / "page.wav").write_text("<html>not audio</html>")
    return folder


def manifest_rows(base, withdrawn=()):
    rows = [ManifestRow(id=f"item_{s[1:]}", url=f"{base}/x{s}", withdrawn=f"item_{s[1:]}" in withdrawn)
            for s in SUFFIXES]
    rows.insert(3, ManifestRow(id="gone", url=f"{base}/missing.m4a"))  # a 404 in the middle of the list
    return rows


def walk_keys(obj):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield from walk_keys(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from walk_keys(v)


def test_fetch_every_format_then_rerun_skips_via_archive(tmp_path, media):
    out = tmp_path / "out"
    with serve(media) as base:
        rows = manifest_rows(base)
        rep = fetch_manifest(rows, out, progress=False, now=FIXED_NOW)
    assert (rep.n_rows, rep.n_downloaded, rep.n_failed, rep.n_already, rep.n_withdrawn) == (8, 7, 1, 0, 0)
    assert rep.failures == [{"id": "gone", "url": f"{base}/missing.m4a", "reason": "not_found",
                             "message": rep.failures[0]["message"]}]
    assert "404" in rep.failures[0]["message"] and rep.failures_by_reason == {"not_found": 1}
    assert "7 downloaded" in summary_line(rep) and "1 failed (not_found 1)" in summary_line(rep)
    # files are named by manifest id: x.wav and x.m4a share yt-dlp's archive key 'x' but both arrive
    for s in SUFFIXES:
        f = out / f"item_{s[1:]}{s}"
        assert f.is_file() and f.read_bytes() == (media / f"x{s}").read_bytes()
        rec = rep.items[f"item_{s[1:]}"]
        assert rec["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest() and rec["bytes"] == f.stat().st_size
        assert rec["extractor"] == "Generic" and rec["extractor_id"] == "x" and rec["ext"] == s[1:]
        assert rec["retrieved_at"] == "2026-01-02T03:04:05Z" and rec["yt_dlp_version"]
        assert {"format_id", "acodec", "codec", "uploader", "license", "upload_date", "duration"} <= set(rec)
        assert abs(rec["duration"] - 3.0) < 0.1
        info = json.loads((out / f"item_{s[1:]}.info.json").read_text())
        keys = set(walk_keys(info))
        assert info["id"] == "x" and not keys & {"url", "http_headers", "cookies"}  # no signed URLs, no secrets
    archive = read_archive(out)
    assert sorted(archive) == sorted(f"item_{s[1:]}" for s in SUFFIXES)
    lines = (out / ARCHIVE_FILE).read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == sorted(archive)  # compacted, sorted by id

    # rerun with the server gone: everything is skipped from the archive, nothing touches the network
    rep2 = fetch_manifest(rows, out, progress=False)
    assert (rep2.n_already, rep2.n_downloaded, rep2.n_failed) == (7, 0, 1)
    assert rep2.failures[0]["id"] == "gone"
    files, counts = fetched_items(rows, out)
    assert list(files) == [r.id for r in rows if r.id != "gone"]
    assert counts == {"n_rows": 8, "n_withdrawn": 0, "n_missing": 1, "missing": ["gone"]}
    assert np.allclose(load_audio(files["item_m4a"], 24000)[:100], load_audio(files["item_wav"], 24000)[:100],
                       atol=0.05)


def test_withdrawn_item_is_removed_and_disappears_downstream(tmp_path, media):
    out = tmp_path / "out"
    with serve(media) as base:
        fetch_manifest(manifest_rows(base), out, progress=False)
        (out / "item_flac.flac.part").write_bytes(b"partial")  # leftovers of the item go too
        rows = manifest_rows(base, withdrawn={"item_flac"})
        rep = fetch_manifest(rows, out, progress=False)
    assert rep.n_withdrawn == 1 and rep.withdrawn_removed == ["item_flac"] and rep.n_already == 6
    assert not list(out.glob("item_flac*")) and "item_flac" not in read_archive(out)
    assert "item_flac" not in rep.items
    files, counts = fetched_items(rows, out)
    assert "item_flac" not in files and counts["n_withdrawn"] == 1 and counts["missing"] == ["gone"]


def test_interrupted_run_resumes(tmp_path, media):
    out = tmp_path / "out"
    with serve(media) as base:
        rows = manifest_rows(base)[:3]
        fetch_manifest(rows, out, progress=False)
        # the run was killed while writing the archive record of item_wav (its file is complete);
        # item_flac's file was lost since
        lines = (out / ARCHIVE_FILE).read_text().splitlines()
        assert [json.loads(x)["id"] for x in lines] == ["item_flac", "item_mp3", "item_wav"]
        (out / ARCHIVE_FILE).write_text("\n".join(lines[:2]) + "\n" + lines[2][:25])
        (out / "item_flac.flac").unlink()
        rep = fetch_manifest(rows, out, progress=False)
        assert rep.n_already == 1 and rep.n_downloaded == 2 and rep.n_failed == 0
        assert sorted(read_archive(out)) == ["item_flac", "item_mp3", "item_wav"]
        # a row whose URL changed is fetched afresh under the same id
        moved = [r if r.id != "item_mp3" else r.model_copy(update={"url": f"{base}/x.ogg"}) for r in rows]
        rep = fetch_manifest(moved, out, progress=False)
    assert rep.n_downloaded == 1 and not (out / "item_mp3.mp3").exists() and (out / "item_mp3.ogg").is_file()
    assert read_archive(out)["item_mp3"]["url"].endswith("/x.ogg")


def test_non_audio_download_is_a_counted_failure(tmp_path, media):
    with serve(media) as base:
        rep = fetch_manifest([ManifestRow(id="page", url=f"{base}/page.wav")], tmp_path / "o", progress=False)
    assert rep.n_failed == 1 and rep.failures[0]["reason"] == "not_audio" and not list((tmp_path / "o").glob("page.*"))


def test_cookies_only_from_the_environment(tmp_path, media, monkeypatch):
    monkeypatch.setenv("PIANOEVAL_COOKIES_FILE", str(tmp_path / "nope.txt"))
    with pytest.raises(FileNotFoundError, match="PIANOEVAL_COOKIES_FILE"):
        fetch_manifest([], tmp_path / "o", progress=False)
    (tmp_path / "cookies.txt").write_text("# Netscape HTTP Cookie File\n")
    monkeypatch.setenv("PIANOEVAL_COOKIES_FILE", str(tmp_path / "cookies.txt"))
    with serve(media) as base:
        rep = fetch_manifest([ManifestRow(id="a", url=f"{base}/x.wav")], tmp_path / "o", progress=False)
    assert rep.cookies is True and rep.n_downloaded == 1
    assert str(tmp_path / "cookies.txt") not in json.dumps(rep.to_metrics())  # the path is not recorded
    with pytest.raises(ValidationError, match="cookiefile"):
        FetchOptions.model_validate({"cookiefile": "/home/me/cookies.txt"})  # no cookies path in params


def test_manifest_csv_jsonl_and_tier_fields(tmp_path):
    class CompetitionRow(ManifestRow):
        placement: int
        competition: str

    csv_path = tmp_path / "m.csv"
    csv_path.write_text("id,url,withdrawn,placement,competition\n"
                        "p1,https://www.youtube.com/watch?v=abc,,1,Chopin 2025\n"
                        "p2,https://www.youtube.com/watch?v=def,true,2,Chopin 2025\n\n")
    rows = read_manifest(csv_path, CompetitionRow)
    assert [(r.id, r.withdrawn, r.placement) for r in rows] == [("p1", False, 1), ("p2", True, 2)]
    jl = tmp_path / "m.jsonl"
    jl.write_text('{"id": "a", "url": "https://x.org/a.m4a"}\n\n{"id": "b", "url": "https://x.org/b.m4a", '
                  '"withdrawn": true}\n')
    assert [r.withdrawn for r in read_manifest(jl)] == [False, True]

    bad = tmp_path / "bad.csv"
    bad.write_text("id,url,placment\n"  # typo in a label column
                   "ok1,https://a.org/1,3\n")
    with pytest.raises(ManifestError, match=r"bad.csv:2: unknown field 'placment'"):
        read_manifest(bad)
    bad.write_text("id,url\n"
                   "ok,https://a.org/1\n"
                   "../etc,https://a.org/2\n"
                   "ok,https://a.org/3\n"
                   "x,ftp://a.org/4\n"
                   ",https://a.org/5\n"
                   "y,https://a.org/6,extra\n")
    with pytest.raises(ManifestError) as ei:
        read_manifest(bad)
    assert [n for n, _ in ei.value.errors] == [3, 4, 5, 6, 7]
    text = str(ei.value)
    for frag in ("bad.csv:3: field 'id'", "bad.csv:4: duplicate id 'ok' (first on line 2)", "not an http(s) URL",
                 "bad.csv:6: missing field 'id'", "bad.csv:7: 1 more cells than header columns"):
        assert frag in text
    jl.write_text('{"id": "a", "url": "https://x.org/a"}\n[1, 2]\n{"id": "b"\n')
    with pytest.raises(ManifestError, match=r"m.jsonl:2: expected a JSON object(.|\n)*m.jsonl:3: invalid JSON"):
        read_manifest(jl)
    with pytest.raises(ValueError, match="must be .csv or .jsonl"):
        read_manifest(shutil.copy(jl, tmp_path / "m.txt"))


def test_failure_classes():
    from yt_dlp.utils import DownloadError, GeoRestrictedError

    assert classify_failure(DownloadError("ERROR: HTTP Error 404: Not Found")) == "not_found"
    assert classify_failure(DownloadError("ERROR: [youtube] abc: Video unavailable")) == "unavailable"
    assert classify_failure(DownloadError("ERROR: [youtube] abc: Private video. Sign in if ...")) == "private"
    assert classify_failure(DownloadError("x", exc_info=(None, GeoRestrictedError("blocked"), None))) == "geo_blocked"
    assert classify_failure(DownloadError("The uploader has not made this video available in your country")) \
        == "geo_blocked"
    assert classify_failure(DownloadError("Sign in to confirm you're not a bot")) == "login_required"
    assert classify_failure(RuntimeError("something else")) == "error"


def test_options_validate():
    assert FetchOptions().format == "bestaudio/best"
    with pytest.raises(ValidationError, match="retries"):
        FetchOptions(retries=-1)
    with pytest.raises(ValidationError, match="extra"):
        FetchOptions.model_validate({"rate_limit": 10})
