"""Every DVC stage must list, as deps, every pianoeval module its code imports (directly or not):
otherwise a code change leaves `dvc status` clean while the outputs are stale."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

from conftest import REPO

SRC = REPO / "src"


def module_file(name: str) -> Path | None:
    base = SRC / Path(*name.split("."))
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def imported_modules(path: Path, package: str) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("pianoeval")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            if not mod.startswith("pianoeval"):
                continue
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names if module_file(f"{mod}.{a.name}")}
    return out


def closure(module: str) -> set[Path]:
    seen: set[str] = set()
    todo = [module]
    files: set[Path] = set()
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        f = module_file(mod)
        if f is None:
            continue
        files.add(f)
        # importing a.b.c runs a/__init__ and a/b/__init__ too
        parts = mod.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        package = mod if f.name == "__init__.py" else mod.rsplit(".", 1)[0]
        todo += sorted(imported_modules(f, package))
    return files


def docstring_only(path: Path) -> bool:
    body = ast.parse(path.read_text()).body
    return all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body)


def missing_deps() -> dict[str, list[str]]:
    """Stage -> repo-relative module files its code imports but its deps do not cover."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    out = {}
    for name, stage in stages.items():
        stage = stage.get("do", stage)  # foreach/matrix stages keep their body under `do`
        module = stage["cmd"].split("-m ", 1)[1].split()[0]
        deps = [REPO / d for d in stage.get("deps", [])]
        miss = [str(f.relative_to(REPO)) for f in sorted(closure(module))
                if not (f.name == "__init__.py" and docstring_only(f))
                and not any(f == d or d in f.parents for d in deps)]
        if miss:
            out[name] = miss
    return out


def test_every_stage_lists_the_code_it_runs():
    problems = missing_deps()
    assert not problems, "stage code not listed in dvc.yaml deps:\n" + "\n".join(
        f"{stage}: {f}" for stage, files in problems.items() for f in files)
