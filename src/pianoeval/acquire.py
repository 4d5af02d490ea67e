"""Audio acquisition: download the items of a manifest with yt-dlp (used as a library), resumably.

Every tier that downloads (masterclass videos, T2 competition performances, T4 unlabeled piano) goes
through this one module, so they share the same manifest format, politeness settings, provenance and
failure accounting.

Manifest
--------
A CSV (header row) or JSONL file (one object per line; chosen by the ``.csv`` / ``.jsonl`` suffix), one
row per item, validated by a pydantic row model. :class:`ManifestRow` has

* ``id``: the item's name in every later stage; files are named by it (``^[A-Za-z0-9_-]{1,64}$``);
* ``url``: an http(s) URL yt-dlp understands (a YouTube watch URL, or a direct media link);
* ``withdrawn`` (optional, default false): the item is not downloaded, and a copy fetched earlier is
  deleted from the output folder and from the archive, so it disappears from every later stage.

A tier adds its own label fields by subclassing::

    class CompetitionRow(ManifestRow):
        placement: int
        competition: str

    rows = read_manifest("data/raw/competition.csv", CompetitionRow)

Unknown columns are rejected (a typo in a label column must not pass silently); empty CSV cells count as
missing (the field's default applies). Bad rows raise :class:`ManifestError` listing every
``file:line: reason``; a duplicate ``id`` is an error.

Fetching
--------
``fetch_manifest(manifest, out_dir, *, options=FetchOptions(), row_model=ManifestRow) -> FetchReport``

For each non-withdrawn row, in manifest order, ``yt_dlp.YoutubeDL`` downloads format ``bestaudio/best``
(no conversion: the raw file is kept, so its sha256 identifies exactly what was fetched) to
``<out_dir>/<id>.<ext>`` with retries and fragment retries, an optional rate limit, sleep intervals
between downloads and requests, ``noplaylist``, and a cookies file only when the environment variable
named by ``FetchOptions.cookies_env`` (default ``PIANOEVAL_COOKIES_FILE``) holds its path (cookies never
sit in params or git). Beside it:

* ``<id>.info.json``: yt-dlp's info dict, sanitised: no cookies, HTTP headers or media URLs (signed
  media URLs embed the downloader's IP address);
* ``archive.jsonl``: the download archive, one provenance record per fetched item (yt-dlp version,
  extractor and its id, format id, codec, sha256 and size of the raw file, uploader, licence, upload
  date, retrieval time). It is keyed by manifest id, not by yt-dlp's own archive key (extractor + video
  id, which for direct links is the URL stem: ``x.m4a`` would be skipped after ``x.wav``). A record is
  appended as soon as its item is complete, so an interrupted run resumes where it stopped (and yt-dlp
  resumes a half-downloaded ``.part`` file); the file is rewritten sorted by id at the end of a run.

An item already in the archive with the same URL, whose file exists with the recorded size, is skipped
without any network access. Failures (HTTP 404, unavailable, private, geo-blocked, sign-in required,
any other error) never stop the other items: each is listed in ``FetchReport.failures`` with a reason
class and yt-dlp's message, and counted. Files in the folder that match no manifest row are listed
(``orphans``), never deleted.

Downstream, :func:`fetched_items` maps the ids of a manifest to their audio files, leaving out withdrawn
and missing items and counting them.

DVC: the output folder is a ``persist: true`` stage output, so a rerun keeps what was fetched and only
downloads new rows. yt-dlp needs network access only here; nothing imports it at module import time.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .audio_io import AUDIO_SUFFIXES, audio_info
from .params_schema import DownloadParams as FetchOptions  # one definition: params sections validate into it

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
ARCHIVE_FILE = "archive.jsonl"
INFO_SUFFIX = ".info.json"
MAX_REPORTED_ERRORS = 20
# Keys dropped from the kept info JSON: credentials and per-download signed URLs (they carry the IP).
_PRIVATE_INFO_KEYS = frozenset({"cookies", "http_headers", "url", "manifest_url", "fragment_base_url", "fragments",
                                "_format_sort_fields"})


class ManifestError(ValueError):
    """Bad manifest; ``errors`` holds every ``(line, reason)`` (the message shows up to 20)."""

    def __init__(self, path: str | os.PathLike, errors: list[tuple[int, str]]):
        self.path, self.errors = str(path), errors
        lines = [f"{self.path}:{n}: {r}" for n, r in errors[:MAX_REPORTED_ERRORS]]
        if len(errors) > MAX_REPORTED_ERRORS:
            lines.append(f"... and {len(errors) - MAX_REPORTED_ERRORS} more bad rows")
        super().__init__("\n".join(lines))


class NotAudioError(RuntimeError):
    """A download that FFmpeg cannot decode as audio (the file is deleted and the item counted as failed)."""


class ManifestRow(BaseModel):
    """One item to download. Subclass to add a tier's label fields (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str = Field(pattern=ID_PATTERN)
    url: str
    withdrawn: bool = False

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if not re.match(r"^https?://[^\s/]+", v):
            raise ValueError(f"not an http(s) URL: {v!r:.80}")
        return v


@dataclass
class FetchReport:
    """What one :func:`fetch_manifest` run did. Counts add up: ``n_rows == n_withdrawn + n_downloaded +
    n_already + n_failed``."""

    out_dir: str
    n_rows: int = 0
    n_withdrawn: int = 0
    n_downloaded: int = 0
    n_already: int = 0           # skipped: in the archive with its file present
    n_failed: int = 0
    withdrawn_removed: list[str] = field(default_factory=list)  # ids whose earlier download was deleted
    failures: list[dict] = field(default_factory=list)  # [{"id", "url", "reason", "message"}]
    failures_by_reason: dict[str, int] = field(default_factory=dict)
    duplicate_urls: list[list[str]] = field(default_factory=list)  # ids sharing one URL (each downloaded)
    orphans: list[str] = field(default_factory=list)  # audio files in out_dir matching no manifest row
    cookies: bool = False
    yt_dlp_version: str | None = None
    items: dict[str, dict] = field(default_factory=dict)  # id -> provenance record (fetched, not withdrawn)

    def to_metrics(self) -> dict:
        """Counts and lists for a stage's metrics file (the per-item records stay in the archive)."""
        d = asdict(self)
        d.pop("items")
        d["bytes"] = int(sum(r["bytes"] for r in self.items.values()))
        d["seconds"] = float(sum(r.get("duration") or 0.0 for r in self.items.values()))
        return d


# ---------------------------------------------------------------- manifest

def _row_error(e: ValidationError) -> str:
    parts = []
    for err in e.errors():
        loc = ".".join(str(x) for x in err["loc"])
        if err["type"] == "missing":
            parts.append(f"missing field '{loc}'")
        elif err["type"] == "extra_forbidden":
            parts.append(f"unknown field '{loc}'")
        else:
            parts.append(f"field '{loc}': {err['msg'].removeprefix('Value error, ')} (got {err['input']!r:.60})")
    return "; ".join(parts)


def _raw_rows(path: Path) -> Iterable[tuple[int, dict | str]]:
    """(line, dict) per row, or (line, reason) for a row that is not a record."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames:
                return
            for row in reader:
                if None in row:
                    yield reader.line_num, f"{len(row[None])} more cells than header columns"
                    continue
                if not any((v or "").strip() for v in row.values()):
                    continue  # blank line
                # an empty cell is a missing value: the field's default applies
                yield reader.line_num, {k.strip(): v for k, v in row.items() if v is not None and v.strip() != ""}
    elif suffix == ".jsonl":
        with open(path, "rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                if not raw.strip():
                    continue
                try:
                    obj = json.loads(raw.decode("utf-8-sig"))
                except (UnicodeDecodeError, json.JSONDecodeError) as e:
                    yield lineno, f"invalid JSON ({e})"
                    continue
                yield lineno, obj if isinstance(obj, dict) else f"expected a JSON object, got {type(obj).__name__}"
    else:
        raise ValueError(f"{path}: a manifest must be .csv or .jsonl, got '{path.suffix}'")


def read_manifest(path: str | os.PathLike, row_model: type[ManifestRow] = ManifestRow) -> list[ManifestRow]:
    """Read and validate a manifest (CSV or JSONL) into ``row_model`` rows, in file order.

    Raises
    ------
    FileNotFoundError : no such file.
    ManifestError : every bad row as ``file:line: reason`` (missing/unknown/invalid field, duplicate id).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: manifest not found")
    rows: list[ManifestRow] = []
    errors: list[tuple[int, str]] = []
    first: dict[str, int] = {}
    for line, raw in _raw_rows(path):
        if isinstance(raw, str):
            errors.append((line, raw))
            continue
        try:
            row = row_model.model_validate(raw)
        except ValidationError as e:
            errors.append((line, _row_error(e)))
            continue
        if row.id in first:
            errors.append((line, f"duplicate id '{row.id}' (first on line {first[row.id]})"))
            continue
        first[row.id] = line
        rows.append(row)
    if errors:
        raise ManifestError(path, errors)
    return rows


# ---------------------------------------------------------------- archive

def read_archive(out_dir: str | os.PathLike) -> dict[str, dict]:
    """id -> provenance record of every item in ``<out_dir>/archive.jsonl`` (the last record of an id wins)."""
    path = Path(out_dir) / ARCHIVE_FILE
    out: dict[str, dict] = {}
    if not path.is_file():
        return out
    lines = path.read_text(encoding="utf-8").splitlines()
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            out[rec["id"]] = rec
        except (json.JSONDecodeError, KeyError, TypeError):
            if lineno == len(lines):  # a run killed mid-write: that item is simply fetched again
                continue
            raise ValueError(f"{path}:{lineno}: not an archive record") from None
    return out


def _append_archive(out_dir: Path, rec: dict) -> None:
    with open(out_dir / ARCHIVE_FILE, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(rec, sort_keys=True, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _write_archive(out_dir: Path, records: dict[str, dict]) -> None:
    text = "".join(json.dumps(records[k], sort_keys=True, ensure_ascii=False) + "\n" for k in sorted(records))
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{ARCHIVE_FILE}.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, out_dir / ARCHIVE_FILE)


def _item_files(out_dir: Path, item_id: str) -> list[Path]:
    """Files this module may have written for an id: audio, info JSON, yt-dlp partials."""
    out = []
    for p in out_dir.glob(f"{item_id}.*"):
        rest = p.name[len(item_id):].lower()
        if rest in AUDIO_SUFFIXES or rest in (INFO_SUFFIX, ".unknown_video") or rest.endswith((".part", ".ytdl")):
            out.append(p)
    return sorted(out)


def fetched_items(rows: Sequence[ManifestRow], out_dir: str | os.PathLike) -> tuple[dict[str, Path], dict]:
    """Audio file of every fetched, non-withdrawn manifest row, for the stages after a fetch.

    Returns
    -------
    files : id -> audio path (manifest order).
    counts : ``{"n_rows", "n_withdrawn", "n_missing", "missing": [ids]}``: rows not fetched (failed or
        never run) are counted and listed, never silently dropped.
    """
    out_dir = Path(out_dir)
    archive = read_archive(out_dir)
    files, missing, n_withdrawn = {}, [], 0
    for r in rows:
        if r.withdrawn:
            n_withdrawn += 1
            continue
        rec = archive.get(r.id)
        if rec is None or rec.get("url") != r.url or not (out_dir / rec["file"]).is_file():
            missing.append(r.id)
            continue
        files[r.id] = out_dir / rec["file"]
    return files, {"n_rows": len(rows), "n_withdrawn": n_withdrawn, "n_missing": len(missing), "missing": missing}


# ---------------------------------------------------------------- download

def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _strip_private(obj):
    if isinstance(obj, dict):
        return {k: _strip_private(v) for k, v in obj.items() if k not in _PRIVATE_INFO_KEYS}
    if isinstance(obj, list):
        return [_strip_private(v) for v in obj]
    return obj


def classify_failure(exc: BaseException) -> str:
    """Reason class of a failed item: not_audio, not_found, forbidden, geo_blocked, private,
    login_required, unavailable, playlist or error."""
    from yt_dlp.utils import GeoRestrictedError

    if isinstance(exc, NotAudioError):
        return "not_audio"
    inner = getattr(exc, "exc_info", None)
    inner = inner[1] if inner and len(inner) > 1 else None
    if isinstance(exc, GeoRestrictedError) or isinstance(inner, GeoRestrictedError):
        return "geo_blocked"
    msg = str(exc).lower()
    for reason, pattern in (("not_found", r"http error 404|not found"), ("forbidden", r"http error 403"),
                            ("geo_blocked", r"geo|not available in your country|your country"),
                            ("private", r"private video"),
                            ("login_required", r"sign in|login required|cookies"),
                            ("unavailable", r"unavailable|removed|terminated|no longer available|does not exist"),
                            ("playlist", r"playlist")):
        if re.search(pattern, msg):
            return reason
    return "error"


class _Log:
    """yt-dlp logger: keeps warnings per item, drops progress chatter (stage consoles stay readable)."""

    def __init__(self):
        self.warnings: list[str] = []

    def debug(self, msg: str) -> None:
        pass

    def info(self, msg: str) -> None:
        pass

    def warning(self, msg: str) -> None:
        self.warnings.append(str(msg))

    def error(self, msg: str) -> None:
        pass  # the exception raised with it carries the message


def _ydl_params(opts: FetchOptions, out_dir: Path, item_id: str, cookiefile: str | None, log: _Log) -> dict:
    p = {
        "format": opts.format,
        "outtmpl": {"default": str(out_dir / f"{item_id}.%(ext)s")},
        "retries": opts.retries,
        "fragment_retries": opts.fragment_retries,
        "extractor_retries": opts.extractor_retries,
        "socket_timeout": opts.socket_timeout,
        "noplaylist": True,
        "continuedl": True,         # resume a .part file left by an interrupted run
        "overwrites": False,        # a complete file from an interrupted run is kept and recorded
        "fixup": "never",           # keep the raw bytes (fixups need the ffmpeg binary and change the file)
        "writeinfojson": False,     # written here, sanitised
        "quiet": True,
        "no_warnings": False,
        "noprogress": True,
        "logger": log,
        "sleep_interval_requests": opts.sleep_interval_requests or None,
    }
    if opts.ratelimit:
        p["ratelimit"] = opts.ratelimit
    if opts.sleep_interval:
        p["sleep_interval"] = opts.sleep_interval
        if opts.max_sleep_interval:
            p["max_sleep_interval"] = max(opts.max_sleep_interval, opts.sleep_interval)
    if cookiefile:
        p["cookiefile"] = cookiefile
    return p


def _cookiefile(opts: FetchOptions) -> str | None:
    path = os.environ.get(opts.cookies_env, "").strip()
    if not path:
        return None
    if not Path(path).is_file():
        raise FileNotFoundError(f"environment variable {opts.cookies_env} names a cookies file that does not exist")
    return path


def _download_one(row: ManifestRow, out_dir: Path, opts: FetchOptions, cookiefile: str | None,
                  retrieved_at: str) -> dict:
    """Download one row; returns its provenance record (raises on failure)."""
    import yt_dlp

    log = _Log()
    with yt_dlp.YoutubeDL(_ydl_params(opts, out_dir, row.id, cookiefile, log)) as ydl:
        info = ydl.extract_info(row.url, download=True)
        if info is None:
            raise RuntimeError("yt-dlp returned no information")
        if info.get("_type") in ("playlist", "multi_video"):
            raise RuntimeError("the URL is a playlist: give one video per manifest row")
        downloads = info.get("requested_downloads") or [{}]
        path = Path(downloads[0].get("filepath") or ydl.prepare_filename(info))
        clean = _strip_private(ydl.sanitize_info(info, remove_private_keys=True))
    if not path.is_file():
        raise RuntimeError(f"yt-dlp reported {path.name} but it is not in {out_dir}")
    try:  # what arrived must be audio this project can decode (not, say, an HTML error page)
        decoded = audio_info(path)
    except ValueError as e:
        path.unlink()
        raise NotAudioError(f"downloaded {path.name} is not decodable audio ({e})") from None
    info_path = out_dir / f"{row.id}{INFO_SUFFIX}"
    info_path.write_text(json.dumps(clean, sort_keys=True, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return {
        "id": row.id, "url": row.url, "file": path.name, "bytes": path.stat().st_size, "sha256": _sha256(path),
        "yt_dlp_version": yt_dlp.version.__version__, "extractor": info.get("extractor_key") or info.get("extractor"),
        "extractor_id": info.get("id"), "webpage_url": info.get("webpage_url"),
        "format_id": info.get("format_id"), "ext": info.get("ext"), "acodec": info.get("acodec"),
        "abr": info.get("abr"), "asr": info.get("asr") or decoded.sample_rate,
        "audio_channels": info.get("audio_channels") or decoded.channels, "codec": decoded.codec,
        "duration": info.get("duration") or decoded.duration, "title": info.get("title"), "uploader": info.get("uploader"),
        "uploader_id": info.get("uploader_id"), "channel": info.get("channel"), "license": info.get("license"),
        "upload_date": info.get("upload_date"), "retrieved_at": retrieved_at, "warnings": log.warnings,
    }


def fetch_manifest(manifest: str | os.PathLike | Sequence[ManifestRow], out_dir: str | os.PathLike, *,
                   options: FetchOptions | dict | None = None, row_model: type[ManifestRow] = ManifestRow,
                   progress: bool = True, now: Callable[[], datetime] | None = None) -> FetchReport:
    """Download every non-withdrawn manifest row into ``out_dir`` (see the module docstring).

    Parameters
    ----------
    manifest : a manifest file (CSV/JSONL, read with ``row_model``) or rows already read.
    out_dir : output folder (created); a DVC ``persist: true`` output in a stage.
    options : :class:`FetchOptions` or a dict of its fields (e.g. a params subsection).
    progress : show a tqdm bar over the items.
    now : clock for ``retrieved_at`` (UTC; tests pass a fixed one).

    Returns
    -------
    FetchReport : counts, failures by reason, and the provenance record of every fetched item.
    """
    import yt_dlp

    opts = options if isinstance(options, FetchOptions) else FetchOptions.model_validate(options or {})
    rows = read_manifest(manifest, row_model) if isinstance(manifest, (str, os.PathLike)) else list(manifest)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cookiefile = _cookiefile(opts)
    clock = now or (lambda: datetime.now(timezone.utc))
    report = FetchReport(out_dir=str(out_dir), n_rows=len(rows), cookies=cookiefile is not None,
                         yt_dlp_version=yt_dlp.version.__version__)
    archive = read_archive(out_dir)
    by_url: dict[str, list[str]] = {}
    for r in rows:
        if not r.withdrawn:
            by_url.setdefault(r.url, []).append(r.id)
    report.duplicate_urls = [ids for ids in by_url.values() if len(ids) > 1]

    from tqdm import tqdm

    for row in tqdm(rows, desc=f"fetch {out_dir.name}", unit="item", disable=not progress, mininterval=2.0):
        if row.withdrawn:
            report.n_withdrawn += 1
            files = _item_files(out_dir, row.id)
            recorded = out_dir / archive[row.id]["file"] if row.id in archive else None
            if recorded is not None and recorded.is_file() and recorded not in files:
                files.append(recorded)
            if files or row.id in archive:
                for f in files:
                    f.unlink()
                archive.pop(row.id, None)
                report.withdrawn_removed.append(row.id)
            continue
        rec = archive.get(row.id)
        if rec is not None and rec.get("url") == row.url and (out_dir / rec["file"]).is_file() \
                and (out_dir / rec["file"]).stat().st_size == rec["bytes"]:
            report.n_already += 1
            report.items[row.id] = rec
            continue
        if rec is not None and rec.get("url") != row.url:  # the row now points elsewhere: fetch afresh
            for f in _item_files(out_dir, row.id):
                f.unlink()
            archive.pop(row.id, None)
        try:
            rec = _download_one(row, out_dir, opts, cookiefile, clock().strftime("%Y-%m-%dT%H:%M:%SZ"))
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as e:  # any failure is this item's: listed, counted, the others go on
            reason = classify_failure(e)
            report.n_failed += 1
            report.failures_by_reason[reason] = report.failures_by_reason.get(reason, 0) + 1
            report.failures.append({"id": row.id, "url": row.url, "reason": reason,
                                    "message": re.sub(r"\s+", " ", str(e)).strip()[:500]})
            continue
        _append_archive(out_dir, rec)
        archive[row.id] = rec
        report.items[row.id] = rec
        report.n_downloaded += 1
    # Archive records of ids that left the manifest stay (their files are reported as orphans, not deleted).
    _write_archive(out_dir, archive)
    known = {r.id for r in rows}
    report.orphans = sorted(p.name for p in out_dir.iterdir()
                            if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES and p.name.split(".")[0] not in known)
    report.failures_by_reason = dict(sorted(report.failures_by_reason.items()))
    return report


def summary_line(report: FetchReport) -> str:
    """One console line: every count, failures by reason."""
    fails = ", ".join(f"{k} {v}" for k, v in report.failures_by_reason.items())
    return (f"{report.n_rows} rows: {report.n_downloaded} downloaded, {report.n_already} already fetched, "
            f"{report.n_withdrawn} withdrawn ({len(report.withdrawn_removed)} removed), {report.n_failed} failed"
            + (f" ({fails})" if fails else "") + (f"; {len(report.orphans)} orphan files" if report.orphans else ""))


def failure_outcome(stage: str, report: FetchReport, on_failure: str, line: str) -> tuple[str, int]:
    """The stage's console line and exit code after a fetch: with failed downloads and
    ``on_failure: fail`` the line lists every failure (id and reason) and what to do, and the code is 1."""
    if not (report.n_failed and on_failure == "fail"):
        return line, 0
    return (line + f"\n{stage}: failed downloads (on_failure: fail): "
            + "; ".join(f"{f['id']} ({f['reason']})" for f in report.failures)
            + f". Rerun to retry, mark them withdrawn in the manifest, or set {stage}.on_failure: skip"), 1


__all__ = ["ARCHIVE_FILE", "FetchOptions", "FetchReport", "ManifestError", "ManifestRow", "classify_failure",
           "failure_outcome", "fetch_manifest", "fetched_items", "read_archive", "read_manifest", "summary_line"]
