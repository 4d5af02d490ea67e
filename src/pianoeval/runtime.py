"""What every stage does before its own code runs (``python -m pianoeval.stages.<stage>``).

``pianoeval/stages/__init__.py`` calls :func:`start_invoked_stage`, which Python runs before the stage
module itself, so before the stage imports torch or reads any data:

1. stale scratch of an earlier killed run of the stage is removed and reported (:mod:`pianoeval.scratch`);
2. the stage's params.yaml section is validated, input paths included: a bad value ends the stage
   within a second with exit status 2 and ``params.yaml: <section>.<key> = <value>: <rule>``
   (:mod:`pianoeval.params_schema`), no traceback;
3. SIGTERM is turned into KeyboardInterrupt, so ``kill`` cleans up like Ctrl-C (workers stopped,
   scratch removed, non-zero exit).

Importing a stage module any other way (tests, ``python -c``) does none of this.
"""

from __future__ import annotations

import signal
import sys

STAGE_PACKAGE = "pianoeval.stages."
EXIT_BAD_PARAMS = 2


def invoked_stage(argv: list[str] | None = None) -> str | None:
    """The stage name when this interpreter was started as ``python [opts] -m pianoeval.stages.<stage>``."""
    argv = list(getattr(sys, "orig_argv", []) if argv is None else argv)
    i = 1
    while i < len(argv):
        arg = argv[i]
        module = argv[i + 1] if arg == "-m" and i + 1 < len(argv) else arg[2:] if arg.startswith("-m") else None
        if module is not None:
            return module[len(STAGE_PACKAGE):] if module.startswith(STAGE_PACKAGE) else None
        if not arg.startswith("-") or arg == "-c":  # a script or -c: not a stage
            return None
        i += 2 if arg in ("-X", "-W", "--check-hash-based-pycs") else 1
    return None


def start_stage(stage: str, params_path: str = "params.yaml") -> None:
    """Steps 1-3 of the module docstring for ``stage``."""
    from . import scratch
    from .params_schema import SCHEMAS, ParamsError

    info = scratch.begin_stage(stage)
    if info["stale_files"]:
        print(f"{stage}: removed stale scratch of an earlier killed run: {info['dir']} "
              f"({info['stale_bytes'] / 1e6:.1f} MB in {info['stale_files']} file(s))", flush=True)
    if stage in SCHEMAS:
        from .io import load_params

        try:
            load_params(stage, params_path, check_paths=True)
        except (ParamsError, KeyError, OSError) as e:
            message = e.args[0] if isinstance(e, KeyError) and e.args else e
            print(f"{stage}: not started: {message}", file=sys.stderr, flush=True)
            sys.exit(EXIT_BAD_PARAMS)
    signal.signal(signal.SIGTERM, _terminate)
    default_hook = sys.excepthook

    def interrupted(kind, value, tb):
        if issubclass(kind, KeyboardInterrupt):  # one line, not a traceback; Python still exits non-zero
            print(f"{stage}: interrupted ({str(value) or 'Ctrl-C'}); workers stopped, scratch removed", file=sys.stderr)
        else:
            default_hook(kind, value, tb)

    sys.excepthook = interrupted


def _terminate(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


def start_invoked_stage() -> None:
    stage = invoked_stage()
    if stage:
        start_stage(stage)
