"""Teaching moments: pydantic schema, JSONL loader/writer, audio lookup.

One JSONL line = one moment where a teacher stopped the student. Times are seconds from the start
of the video's audio. Required are only the fields segmentation uses: ``moment_id``, ``video_id`` and
the five times (``stop_timestamp``, ``feedback_start``, ``feedback_end``, ``playing_before_start``,
``playing_before_end``); every other schema field is optional and validated when present (a missing
``teacher`` reads as ``"unknown"``: per-teacher metrics then pool those videos). Validation is strict
(``"3"`` is not a float, ``1`` is not a bool, ``3.0`` is not an int; an int is accepted for a float).
A line is rejected when it is not valid UTF-8 / JSON
(``NaN``/``Infinity`` literals included), is not an object, lacks a required field, has a wrong type, has a
non-finite or negative time, has ``feedback_end < feedback_start`` or
``playing_before_end < playing_before_start``, has a playing window ending after the stop
(``playing_before_end > stop_timestamp + 1e-6``), has a ``video_id`` that is not a safe file stem
(``^[A-Za-z0-9_-]{1,64}$``), or repeats a ``moment_id`` seen on an earlier line.
Unknown extra fields are kept and written back after the schema fields.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pianoeval.audio_io import AUDIO_SUFFIXES

VIDEO_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
TIME_TOL = 1e-6
MAX_REPORTED_ERRORS = 20
UNKNOWN_TEACHER = "unknown"
# Layout of a recordings folder: this file, one <video_id>.<audio suffix> per video (any format of
# pianoeval.audio_io.AUDIO_SUFFIXES, suffix in any case), and (simulated
# sessions only) the provenance file that says which PercePiano performance lies where.
MOMENTS_FILE = "all_moments.jsonl"
PROVENANCE_FILE = "provenance.json"


class MomentsError(ValueError):
    """Bad moments file. ``errors`` holds every ``(lineno, reason)`` found (the message shows up to 20)."""

    def __init__(self, path: str | os.PathLike, errors: list[tuple[int, str]]):
        self.path = str(path)
        self.errors = errors
        lines = [f"{self.path}:{n}: {r}" for n, r in errors[:MAX_REPORTED_ERRORS]]
        if len(errors) > MAX_REPORTED_ERRORS:
            lines.append(f"... and {len(errors) - MAX_REPORTED_ERRORS} more bad lines")
        super().__init__("\n".join(lines))


class Moment(BaseModel):
    """One teaching moment (one line of the JSONL file); extra keys are kept in ``model_extra``."""

    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False)

    # Field order = the order written back (write_moments). Required: what segmentation uses (ids and
    # the five times); the rest is optional and validated when present (null allowed).
    moment_id: str = Field(min_length=1)
    video_id: str = Field(pattern=VIDEO_ID_PATTERN)
    video_title: str | None = None
    teacher: str = UNKNOWN_TEACHER
    stop_timestamp: float = Field(ge=0)
    feedback_start: float = Field(ge=0)
    feedback_end: float = Field(ge=0)
    playing_before_start: float = Field(ge=0)
    playing_before_end: float = Field(ge=0)
    transcript_text: str | None = None
    feedback_summary: str | None = None
    musical_dimension: str | None = None
    secondary_dimensions: list[str] | None = None
    severity: str | None = None
    feedback_type: str | None = None
    piece: str | None = None
    composer: str | None = None
    passage_description: str | None = None
    student_level: str | None = None
    stop_order: int | None = None
    total_stops: int | None = None
    time_spent_seconds: float | None = Field(None, ge=0)
    confidence: float | None = None
    demonstrated: bool | None = None
    extracted_at: str | None = None
    extraction_model: str | None = None

    @field_validator("teacher", mode="before")
    @classmethod
    def _teacher_null(cls, v):
        return UNKNOWN_TEACHER if v is None else v

    @model_validator(mode="after")
    def _check_windows(self) -> "Moment":
        if self.feedback_end < self.feedback_start:
            raise ValueError(f"feedback_end {self.feedback_end} < feedback_start {self.feedback_start}")
        if self.playing_before_end < self.playing_before_start:
            raise ValueError(
                f"playing_before_end {self.playing_before_end} < playing_before_start {self.playing_before_start}"
            )
        if self.playing_before_end > self.stop_timestamp + TIME_TOL:
            raise ValueError(
                f"playing window ends after the stop: playing_before_end {self.playing_before_end}"
                f" > stop_timestamp {self.stop_timestamp}"
            )
        return self


SCHEMA_FIELDS: tuple[str, ...] = tuple(Moment.model_fields)
REQUIRED_FIELDS: tuple[str, ...] = tuple(k for k, f in Moment.model_fields.items() if f.is_required())


@dataclass
class LoadReport:
    """Line accounting of one load: ``n_lines == n_blank + n_valid + n_skipped``."""

    path: str
    n_lines: int = 0
    n_blank: int = 0
    n_valid: int = 0
    n_skipped: int = 0
    skipped: list[dict] = field(default_factory=list)  # [{"line": n, "reason": str}]

    def to_dict(self) -> dict:
        return asdict(self)


def _describe(err: ValidationError) -> str:
    """Short, one-line reason naming the offending key(s)."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"])
        if e["type"] == "missing":
            parts.append(f"missing field '{loc}'")
        elif not loc:  # model-level (cross-field) check
            parts.append(e["msg"].removeprefix("Value error, "))
        else:
            parts.append(f"field '{loc}': {e['msg']} (got {e['input']!r:.60})")
    return "; ".join(parts)


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _parse_line(raw: bytes) -> Moment:
    """Raise ValueError(reason) for a bad line."""
    try:
        text = raw.decode("utf-8-sig").rstrip("\r\n")  # tolerate a BOM from Windows editors
    except UnicodeDecodeError as e:
        raise ValueError(f"invalid UTF-8 ({e.reason} at byte {e.start})") from None
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise ValueError(f"invalid JSON: {e.msg} at column {e.colno}") from None
    except ValueError as e:
        raise ValueError(f"invalid JSON: {e}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    try:
        return Moment.model_validate(obj)
    except ValidationError as e:
        raise ValueError(_describe(e)) from None


def load_moments(
    path: str | os.PathLike, on_error: Literal["fail", "skip"] = "fail"
) -> tuple[list[Moment], LoadReport]:
    """Read and validate a moments JSONL file.

    Parameters
    ----------
    path : JSONL file, one moment object per line; blank lines are ignored and counted.
    on_error : ``"fail"`` raises :class:`MomentsError` listing every bad line
        (``"<path>:<lineno>: <reason>"``, up to 20 shown); ``"skip"`` drops bad lines and records
        them in the report.

    Returns
    -------
    moments : valid moments sorted by ``(video_id, stop_timestamp, moment_id)``.
    report : :class:`LoadReport`.
    """
    if on_error not in ("fail", "skip"):
        raise ValueError(f"on_error must be 'fail' or 'skip', got {on_error!r}")
    report = LoadReport(path=str(path))
    moments: list[Moment] = []
    errors: list[tuple[int, str]] = []
    first_line: dict[str, int] = {}
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            report.n_lines += 1
            if not raw.strip():
                report.n_blank += 1
                continue
            try:
                m = _parse_line(raw)
                if m.moment_id in first_line:
                    raise ValueError(f"duplicate moment_id '{m.moment_id}' (first on line {first_line[m.moment_id]})")
            except ValueError as e:
                errors.append((lineno, str(e)))
                continue
            first_line[m.moment_id] = lineno
            moments.append(m)
    if errors and on_error == "fail":
        raise MomentsError(path, errors)
    report.n_valid = len(moments)
    report.n_skipped = len(errors)
    report.skipped = [{"line": n, "reason": r} for n, r in errors]
    moments.sort(key=lambda m: (m.video_id, m.stop_timestamp, m.moment_id))
    return moments, report


def moment_to_dict(m: Moment) -> dict:
    """Schema fields in schema order, then extra fields in their original order."""
    return m.model_dump(mode="json")


def write_moments(path: str | os.PathLike, moments: Iterable[Moment]) -> None:
    """Write moments as JSONL atomically (one object per line, schema keys first, then extras)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(moment_to_dict(m), ensure_ascii=False, allow_nan=False) for m in moments]
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("".join(line + "\n" for line in lines))
    os.replace(tmp, path)


def find_audio(raw_dir: str | os.PathLike, video_ids: Iterable[str]) -> dict[str, Path]:
    """Map each video id to its audio file ``<raw_dir>/<video_id><suffix>``, any suffix of
    :data:`pianoeval.audio_io.AUDIO_SUFFIXES` in any letter case (``ID.WAV``, ``ID.m4a``, ``ID.webm``...).

    Raises
    ------
    ValueError : an id is not a safe file stem, or two audio files exist for one id (ambiguous).
    FileNotFoundError : listing every id with no audio file.
    """
    raw_dir = Path(raw_dir)
    ids = sorted(set(video_ids), key=str)
    bad = [v for v in ids if not isinstance(v, str) or not re.fullmatch(VIDEO_ID_PATTERN[1:-1], v)]
    if bad:
        raise ValueError(f"unsafe video_id(s) (must match {VIDEO_ID_PATTERN}): {bad}")
    by_stem: dict[str, list[Path]] = {}
    if raw_dir.is_dir():
        for p in sorted(raw_dir.iterdir()):
            if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES:
                by_stem.setdefault(p.name[: -len(p.suffix)], []).append(p)
    found: dict[str, Path] = {}
    missing, ambiguous = [], []
    for v in ids:
        hits = by_stem.get(v, [])
        if not hits:
            missing.append(v)
        elif len(hits) > 1:
            ambiguous.append(f"{v} ({', '.join(p.name for p in hits)})")
        else:
            found[v] = hits[0]
    if ambiguous:
        raise ValueError(f"{raw_dir}: more than one audio file for {len(ambiguous)} video(s): {'; '.join(ambiguous)}")
    if missing:
        raise FileNotFoundError(
            f"{raw_dir}: no audio file ({'/'.join(s[1:] for s in AUDIO_SUFFIXES)}, any case) for {len(missing)} "
            f"of {len(ids)} video(s): {', '.join(missing)}"
        )
    return found
