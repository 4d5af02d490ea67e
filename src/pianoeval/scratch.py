"""Scratch files in one known place: ``.scratch/<stage>/`` under the directory a stage runs in.

A stage started with ``python -m pianoeval.stages.<stage>`` owns ``.scratch/<stage>/`` for its run
(:func:`begin_stage`, called by :mod:`pianoeval.runtime`): whatever is found there at start is stale
(an earlier run of the stage was killed, e.g. with ``kill -9``), so it is removed and reported with its
size; the folder is removed again when the stage exits, also on an error or Ctrl-C. Library code asks
for space with :func:`workspace` (a fresh folder, removed on exit) and :func:`temp_path` (where to
write a file or folder before an atomic rename onto its final path); outside a stage, e.g. in unit
tests, these fall back to the system temp folder and to the target's own folder.

``PIANOEVAL_SCRATCH`` overrides the root. The root is git- and DVC-ignored.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

ENV_ROOT = "PIANOEVAL_SCRATCH"
ENV_STAGE_DIR = "PIANOEVAL_STAGE_SCRATCH"  # inherited by worker processes of the stage
DEFAULT_ROOT = ".scratch"


def scratch_root() -> Path:
    return Path(os.environ.get(ENV_ROOT, DEFAULT_ROOT))


def stage_dir() -> Path | None:
    """The running stage's scratch folder, or None outside a stage."""
    d = os.environ.get(ENV_STAGE_DIR)
    return Path(d) if d and Path(d).is_dir() else None


def folder_size(path: Path) -> tuple[int, int]:
    """(bytes, files) under ``path``."""
    total, n = 0, 0
    for root, _, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, f)).st_size
                n += 1
    return total, n


def begin_stage(stage: str) -> dict:
    """Claim ``<root>/<stage>/`` for this process: remove stale content, create it, remove it at exit.

    Returns ``{"dir", "stale_bytes", "stale_files"}`` (what an earlier killed run left behind).
    """
    path = scratch_root() / stage
    stale_bytes = stale_files = 0
    if path.exists():
        stale_bytes, stale_files = folder_size(path)
        shutil.rmtree(path)
    path.mkdir(parents=True)
    os.environ[ENV_STAGE_DIR] = str(path.resolve())
    owner = os.getpid()

    def _cleanup() -> None:
        if os.getpid() == owner:  # never from a forked child that inherited the handler
            shutil.rmtree(path, ignore_errors=True)

    atexit.register(_cleanup)
    return {"dir": str(path), "stale_bytes": stale_bytes, "stale_files": stale_files}


@contextlib.contextmanager
def workspace(prefix: str) -> Iterator[Path]:
    """A fresh folder for temporary files (inside the stage's scratch folder when a stage runs),
    removed when the block exits, whatever the reason."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=stage_dir()))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def temp_path(target: str | os.PathLike) -> Path:
    """Where to write ``target``'s content before ``os.replace`` puts it in place: a unique name in
    the stage's scratch folder when that is on the same file system (a rename cannot cross file
    systems), else a hidden name beside the target. Callers remove it if they fail."""
    target = Path(target)
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    d = stage_dir()
    if d is not None and os.stat(d).st_dev == os.stat(parent).st_dev:
        fd, name = tempfile.mkstemp(prefix=f"{target.name}.", suffix=".tmp", dir=d)
        os.close(fd)
        os.unlink(name)  # only the unique name is wanted: the caller creates a file or a folder
        return Path(name)
    return parent / f".{target.name}.{os.getpid()}.tmp"
