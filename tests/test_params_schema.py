"""params.yaml is validated before any work: every section has a schema, bad values fail fast and name
`section.key`, the value and what is allowed, and a stage started with a bad value exits at once."""

from __future__ import annotations

import copy
import subprocess
import sys
import time

import pytest
import yaml

from conftest import REPO
from pianoeval.io import load_params
from pianoeval.params_schema import EXTRACTORS, SCHEMAS, SPLITS, ParamsError, validate_params, validate_section

PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
DROP = object()  # remove the key instead of setting it


def with_value(section: str, dotted: str, value) -> dict:
    """A copy of the repository's section with one key set (or dropped)."""
    values = copy.deepcopy(PARAMS[section])
    node = values
    keys = dotted.split(".")
    for k in keys[:-1]:
        node = node[k]
    if value is DROP:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return values


def test_every_section_has_a_schema_and_every_schema_a_section():
    assert sorted(PARAMS) == sorted(SCHEMAS)


def test_repository_params_are_valid():
    validate_params(PARAMS)
    for section in PARAMS:
        assert load_params(section, REPO / "params.yaml") == PARAMS[section]  # validated, returned unchanged


def test_schema_constants_match_the_code():
    from pianoeval.extractors import BACKENDS
    from pianoeval.labels import SPLITS as LABEL_SPLITS

    assert sorted(EXTRACTORS) == sorted(BACKENDS) and SPLITS == LABEL_SPLITS


# (section, key, bad value, what the message must say besides `section.key`)
BAD = [
    ("labels", "n_folds", 1, "greater than or equal to 2"),
    ("labels", "seed", -1, "greater than or equal to 0"),
    ("labels", "pieces", "Beethoven", "valid list"),
    ("render", "on_bad_midi", "ignore", "must be 'fail' or 'skip'"),
    ("render", "sample_rate", 0, "greater than or equal to 8000"),
    ("render", "peak_target", 1.5, "less than or equal to 1"),
    ("render", "soundfont", "piano.wav", "'pretty_midi' or a path to a .sf2/.sf3"),
    ("render", "workers", "2", "valid integer"),
    ("extract", "logmel.n_mels", 0, "greater than 0"),
    ("extract", "logmel.n_mels", -5, "greater than 0"),
    ("extract", "extractor", "logmell", "must be one of extractors"),
    ("extract", "basic_pitch.window_stride", 0, "greater than 0"),
    ("extract", "logmel_bp.backend", "concatt", "unknown backend (did you mean 'concat'?)"),
    ("extract", "engine", "spark", "must be 'local' or 'ray'"),
    ("extract", "dtype", "float8", "'float16' or 'float32'"),
    ("extract", "logmel.fmax", 20000.0, "need fmin < fmax <= sample_rate / 2"),
    ("extract", "logmel.frame_rate", 7.0, "whole number of samples"),
    ("train_quality", "default_split", "pianst", "must be 'pianist', 'segment' or 'piece'"),
    ("train_quality", "mlp.lr", "1e-4", "write e.g. 1.0e-4"),
    ("train_quality", "mlp.batch_size", 0, "greater than 0"),
    ("train_quality", "val_fraction", 1.0, "less than 1"),
    ("train_quality", "n_seeds", True, "valid integer"),
    ("train_quality", "ridge.alphas", [], "at least 1 item"),
    ("masterclass_simulate", "feedback_seconds", [16.0, 6.0], "low <= high"),
    ("masterclass_simulate", "teachers.random.stop_probability", 1.5, "less than or equal to 1"),
    ("masterclass_simulate", "max_segments", 2, "min_segments=10 > max_segments=2"),
    ("masterclass_segments", "on_error", "Skip", "must be 'fail' or 'skip'"),
    ("masterclass_segments", "min_stop_duration", 0.0, "greater than 0"),
    ("masterclass_classify", "n_perm", 0, "greater than 0"),
    ("masterclass_classify", "level", 1.0, "less than 1"),
    ("masterclass_classify", "spline_knots", 1, "greater than or equal to 2"),
    ("audit", "reliability.repeats", "avg", "must be 'mean', 'keep' or 'first'"),
    ("audit", "default_split", "pianists", "must be 'pianist', 'segment' or 'piece'"),
    ("audit", "downstream.variants", ["all", "matched"], "'all' or 'duration_matched'"),
    ("audit", "correlation.moderate", 0.8, "need moderate < high"),
]


@pytest.mark.parametrize("section,key,value,allowed", BAD, ids=[f"{s}.{k}={v!r}" for s, k, v, _ in BAD])
def test_bad_value_names_key_value_and_rule(section, key, value, allowed):
    t0 = time.perf_counter()
    with pytest.raises(ParamsError) as err:
        validate_section(section, with_value(section, key, value))
    assert time.perf_counter() - t0 < 1.0
    msg = str(err.value)
    assert allowed in msg
    if f"{section}.{key}" in msg:  # a rule on the value itself: key and value named
        assert f"{section}.{key} = {value!r}" in msg or f"{section}.{key}[1] = {value[1]!r}" in msg
    else:  # a rule across keys: the (sub)section named
        assert f"{section}.{key.rsplit('.', 1)[0]}: " in msg or f"{section}: " in msg


@pytest.mark.parametrize("section,key,near", [("extract", "logmel.n_mel", "n_mels"),
                                              ("train_quality", "mlp.dropuot", "dropout"),
                                              ("audit", "cca.n_nul", "n_null")])
def test_misspelt_key_is_an_error_that_suggests_the_right_one(section, key, near):
    values = with_value(section, key, 1)
    with pytest.raises(ParamsError, match=rf"{section}\.{key}: unknown key \(did you mean '{near}'\?\); allowed: "):
        validate_section(section, values)


def test_missing_key_and_missing_section():
    with pytest.raises(ParamsError, match=r"render\.gain: required key missing"):
        validate_section("render", with_value("render", "gain", DROP))
    with pytest.raises(ParamsError, match="section 'new_stage' has no schema"):
        validate_section("new_stage", {"x": 1})


def test_input_paths_are_checked_when_asked(tmp_path):
    values = with_value("render", "midi_dir", str(tmp_path / "midi_typo"))
    values.update(labels=str(tmp_path))  # a directory where a file is expected
    validate_section("render", values)  # structure only: inputs may not exist yet
    with pytest.raises(ParamsError) as err:
        validate_section("render", values, check_paths=True)
    assert "render.midi_dir = " in str(err.value) and "no such directory" in str(err.value)
    assert "render.labels = " in str(err.value) and "is a directory, expected a file" in str(err.value)


def test_all_problems_of_a_file_are_reported_together():
    params = copy.deepcopy(PARAMS)
    params["render"]["workers"] = -1
    params["audit"]["cca"]["n_pca"] = 0
    with pytest.raises(ParamsError, match=r"2 invalid settings:\n  render\.workers = -1: .*\n  audit\.cca\.n_pca = 0"):
        validate_params(params)


@pytest.mark.parametrize("stage,key,value", [("extract", "logmel.n_mels", 0),
                                             ("train_quality", "default_split", "pianst")])
def test_stage_with_a_bad_value_exits_before_any_work(tmp_path, stage, key, value):
    """The issue's cases: `n_mels: 0` embedded all 1200 segments before failing, `pianst` trained for
    76 s and exited 0. Now the stage process exits with status 2 before importing torch."""
    params = copy.deepcopy(PARAMS)
    params[stage] = with_value(stage, key, value)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", f"pianoeval.stages.{stage}"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60)
    elapsed = time.perf_counter() - t0
    assert res.returncode == 2, res.stderr
    assert f"{stage}: not started" in res.stderr and f"{stage}.{key} = {value!r}" in res.stderr
    assert "Traceback" not in res.stderr
    assert elapsed < 5.0, f"{elapsed:.1f} s"  # ~0.6 s alone; generous for a loaded 2-core machine
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == [tmp_path / "params.yaml"]  # nothing written
