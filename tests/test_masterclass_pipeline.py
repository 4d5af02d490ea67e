"""Recorded-audio path end to end (stage mains on a generated stereo 44.1 kHz recording folder), the
leakage guard, and the experiment runner on a toy problem with a known answer."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
import yaml
from conftest import repo_section
from sklearn.metrics import roc_auc_score

from pianoeval.dimensions import DIMENSIONS
from pianoeval.embedding_store import EmbeddingStore
from pianoeval.extractors import load_model
from pianoeval.io import read_json
from pianoeval.masterclass.classify import make_classifier
from pianoeval.masterclass.experiment import MODELS, run_experiment
from pianoeval.masterclass.features import make_segment_table, read_segment_table, read_window
from pianoeval.masterclass.moments import Moment, MomentsError, write_moments
from pianoeval.masterclass.scoring import (
    LeakageError,
    allowed_models,
    check_extractor,
    check_no_leakage,
    score_segments,
    segment_pianists,
)
from pianoeval.models.quality_mlp import QualityMLP, save_checkpoint
from pianoeval.stages import (
    masterclass_classify,
    masterclass_embed,
    masterclass_scores,
    masterclass_segments,
)

SR = 44100
LOGMEL = {"sample_rate": 16000, "frame_rate": 25.0, "n_fft": 512, "n_mels": 16, "fmin": 30.0, "fmax": 8000.0,
          "deltas": False}
STOPS = [(2.0, 6.0), (14.0, 18.0), (26.0, 30.0)]  # playing windows; feedback 0.5 s after each, 2 s long


def moment(vid: str, k: int, pbs: float, pbe: float) -> Moment:
    return Moment(
        moment_id=f"{vid}-{k}", video_id=vid, video_title=f"class {vid}", teacher="T" if vid < "v2" else "U",
        stop_timestamp=pbe, feedback_start=pbe + 0.5, feedback_end=pbe + 2.5, playing_before_start=pbs,
        playing_before_end=pbe, transcript_text="...", feedback_summary="...", musical_dimension="timing",
        secondary_dimensions=[], severity="minor", feedback_type="correction", piece="p", composer="c",
        passage_description=None, student_level=None, stop_order=k + 1, total_stops=len(STOPS),
        time_spent_seconds=2.0, confidence=0.9, demonstrated=False, extracted_at="2025-01-01", extraction_model="x",
    )


def make_recordings(folder, n_videos=4):
    """Stereo 44.1 kHz WAVs: a high tone in the STOP windows, a low tone elsewhere (L and R differ)."""
    folder.mkdir(parents=True)
    moments = []
    for v in range(n_videos):
        vid = f"v{v}"
        t = np.arange(int(36.0 * SR)) / SR
        left = 0.2 * np.sin(2 * np.pi * (200 + 10 * v) * t)
        for a, b in STOPS:
            sel = (t >= a) & (t < b)
            left[sel] = 0.3 * np.sin(2 * np.pi * 1500 * t[sel])
        stereo = np.stack([left, 0.5 * left], axis=1).astype(np.float32)
        sf.write(folder / f"{vid}.wav", stereo, SR, subtype="PCM_16")
        moments += [moment(vid, k, a, b) for k, (a, b) in enumerate(STOPS)]
    moments.append(moment("v0", 9, 14.0, 18.0).model_copy(update={"moment_id": "v0-dup"}))  # exact duplicate
    write_moments(folder / "all_moments.jsonl", moments[::-1])  # unsorted on disk
    with open(folder / "all_moments.jsonl", "a") as fh:
        fh.write('{"moment_id": "broken"\n')  # a bad line: skipped and counted with on_error=skip
    (folder / "orphan.flac").write_bytes(b"")  # audio with no moments: reported, never opened
    return moments


def tiny_checkpoints(folder, train_pianists: dict[str, list[int]], dim: int, extractor_params: dict):
    rng = np.random.default_rng(0)
    for name, pianists in train_pianists.items():
        est = QualityMLP(hidden=8, n_hidden_layers=1, max_epochs=2, batch_size=8, seed=0)
        est.fit(rng.normal(size=(16, dim)), rng.uniform(size=(16, len(DIMENSIONS))))
        save_checkpoint(est, folder / name, metadata={"extractor": "logmel", "extractor_params": extractor_params,
                                                      "train_pianist_ids": pianists})


def test_recorded_audio_path_end_to_end(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    make_recordings(tmp_path / "raw")
    params = {
        # a complete section (params are validated); audio/out belong to the T1 extract stage, unused here
        "extract": repo_section("extract", extractor="logmel", extractors=["logmel"], dtype="float32",
                                loudness_lufs=None, logmel=LOGMEL),
        "masterclass_segments": {"input_dir": "raw", "out": "proc/segments.csv", "on_error": "skip",
                                 "min_continue_duration": 5.0, "min_stop_duration": 1.0, "seed": 0},
        "masterclass_embed": {"segments": "proc/segments.csv", "out": "proc/emb.safetensors"},
        "masterclass_scores": {"segments": "proc/segments.csv", "embeddings": "proc/emb.safetensors",
                               "checkpoints": "ckpt", "out": "proc/scores.csv", "labels": "labels.csv",
                               "oracle_out": "proc/oracle.csv"},
        "masterclass_classify": {"segments": "proc/segments.csv", "embeddings": "proc/emb.safetensors",
                                 "scores": "proc/scores.csv", "oracle": "proc/oracle.csv", "predictions": "proc/pred.csv",
                                 "C": 1.0, "n_components": 8, "spline_knots": 4, "cv_folds": 6,
                                 "min_calibration_class": 7, "n_perm": 39, "level": 0.95,
                                 "negative_control_teacher": "random", "n_jobs": 1, "seed": 0},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    ex_params = load_model("logmel", **LOGMEL).identity()
    tiny_checkpoints(tmp_path / "ckpt", {"fold0": [1, 2], "fold1": [3]}, 2 * LOGMEL["n_mels"], ex_params)

    masterclass_segments.main()
    rep = read_json("metrics/masterclass_segments.json")
    assert rep["load"]["n_skipped"] == 1 and rep["load"]["skipped"][0]["line"] == 14
    assert rep["segments"]["duplicates_dropped"] == 1 and rep["audio_files_without_moments"] == ["orphan"]
    assert rep["counts"]["all"] == {"n_stop": 12, "n_continue": 8, "n_videos": 4, "n_students": 4}
    assert rep["provenance"] is False and rep["replay_overlap"].startswith("unknown")
    seg = pd.read_csv("proc/segments.csv")
    allv = seg[seg.variant == "all"]
    assert sorted(allv.loc[allv.video_id == "v1", ["start", "end"]].itertuples(index=False, name=None)) == [
        (2.0, 6.0), (8.5, 14.0), (14.0, 18.0), (20.5, 26.0), (26.0, 30.0)]
    assert (allv["student"] == allv["video_id"]).all()  # no provenance: each video its own student
    dm = seg[seg.variant == "duration_matched"]
    # 5.5 s gaps host one 4 s piece each: the two later STOPs of a video are matched, the first has no room
    assert (dm.loc[dm.label == 0, "duration"] == 4.0).all() and (dm.label == 0).sum() == 8
    assert (dm.label == 1).sum() == 8 and rep["duration_matched"]["n_stop_unmatched_dropped"] == 4

    masterclass_embed.main()
    store = EmbeddingStore("proc/emb.safetensors")
    ids = sorted(set(seg.segment_id))
    assert sorted(store.keys) == ids and store.extractor_params == ex_params
    assert store.n_frames("v1:stop:00002000-00006000") == 4 * 25 + 1  # 4 s at 25 Hz, centred frames
    mono, sr = read_window("raw/v1.wav", 2.0, 6.0)
    assert sr == SR and mono.shape == (4 * SR,)
    left = sf.read("raw/v1.wav", dtype="float32")[0][2 * SR:6 * SR, 0]
    assert np.allclose(mono, 0.75 * left, atol=1e-4)  # downmix = mean of L and R = 0.5 L

    masterclass_scores.main()
    scores = pd.read_csv("proc/scores.csv")
    assert len(scores) == len(ids) and (scores.n_models == 2).all()  # no provenance: every checkpoint
    srep = read_json("metrics/masterclass_scores.json")
    assert srep["provenance"] is False and srep["oracle"].startswith("none")
    assert ((scores[list(DIMENSIONS)] >= 0) & (scores[list(DIMENSIONS)] <= 1)).all().all()
    assert len(pd.read_csv("proc/oracle.csv")) == 0  # no provenance, no oracle (header only)

    masterclass_classify.main()
    m = read_json("metrics/masterclass.json")
    assert m["n_stop"] == 12 and m["n_continue"] == 8 and m["n_videos"] == 4 and m["n_folds"] == 4
    assert m["model_a.auc"] == 1.0  # the STOP windows hold another tone
    assert m["model_a.auc_p_perm"] == pytest.approx(1 / 40, abs=1e-6) and m["duration_matched.model_a.auc"] == 1.0
    assert m["model_a.auc_ci_low"] > 0.5 and m["model_a.balanced_accuracy"] == 1.0
    assert "oracle_b.auc" not in m and "negative_control.n_videos" not in m  # no oracle, no random teacher
    assert m["model_a.auc_p_holm"] >= m["model_a.auc_p_perm"] and m["settings.n_pvalues_holm"] == 12
    assert m["model_a_cal.folds_calibration_fallback"] == 4  # every training fold has 6 CONTINUE < 7
    assert m["teacher.T.n_stop"] == 6 and m["teacher.U.model_a.auc"] == 1.0
    assert "duration_matched.teacher.U.model_b.auc" in m
    pred = pd.read_csv("proc/pred.csv")
    assert len(pred) == len(seg) and {f"p_{k}" for k in MODELS if k != "oracle_b"} <= set(pred.columns)
    for f in ("roc", "metrics", "coefficients"):
        assert (tmp_path / "plots" / f"masterclass_{f}.png").stat().st_size > 1000
    roc = pd.read_csv("plots/masterclass_roc_all.csv")
    assert len(roc) == 101 and roc["model_a"].iloc[0] == 1.0  # TPR 1 at FPR 0: perfect separation
    assert pd.read_csv("plots/masterclass_pr_duration_matched.csv")["model_a"].min() == 1.0
    cm = pd.read_csv("plots/masterclass_confusion_all_model_a.csv")
    assert len(cm) == 20 and (cm["actual"] == cm["predicted"]).all() and set(cm["actual"]) == {"STOP", "CONTINUE"}
    coefs = pd.read_csv("plots/masterclass_coefficients.csv")
    assert list(coefs.dimension[:19]) == list(DIMENSIONS) and set(coefs.variant) == {"all", "duration_matched"}


# ---------------------------------------------------------------- messy fixture: loader + segmenter

FIXTURE = Path(__file__).parent / "fixtures" / "masterclass" / "messy_moments.jsonl"
FIXTURE_AUDIO = {"A": 100, "B": 50, "C": 40, "D": 30, "E": 100}  # seconds; the fixture's times refer to these


def test_messy_fixture_every_case_counted(tmp_path):
    shutil.copy(FIXTURE, tmp_path / "all_moments.jsonl")
    for v, dur in FIXTURE_AUDIO.items():
        sf.write(tmp_path / f"{v}.flac", np.zeros(dur * 1000, np.int16), 1000)
    with pytest.raises(MomentsError) as ei:
        make_segment_table(tmp_path)  # on_error=fail lists every bad line
    assert [n for n, _ in ei.value.errors] == [9, 13, 16, 19, 20, 21, 22, 23, 28]
    table, rep = make_segment_table(tmp_path, on_error="skip")
    ld = rep["load"]
    assert (ld["n_lines"], ld["n_blank"], ld["n_valid"], ld["n_skipped"]) == (28, 2, 17, 9)
    reasons = " | ".join(s["reason"] for s in rep["load"]["skipped"])
    for frag in ("invalid JSON", "expected a JSON object", "field 'stop_timestamp'",
                 "feedback_end 4.0 < feedback_start", "playing window ends after the stop", "field 'video_id'", "NaN is not valid JSON",
                 "duplicate moment_id 'a1'", "missing field 'stop_timestamp'"):
        assert frag in reasons
    expected = {"duplicates_dropped": 1, "stop_dropped_too_short": 1, "stop_dropped_after_audio_end": 2,
                "stop_clamped": 2, "stop_dropped_too_short_after_clamp": 1, "stop_trimmed_overlap": 2,
                "stop_dropped_overlap": 1, "cont_negative_gap": 3, "cont_shrunk_by_other_moments": 1,
                "cont_dropped_by_other_moments": 1, "cont_dropped_after_audio_end": 1, "cont_clamped": 1,
                "cont_dropped_too_short": 1, "n_stop": 11, "n_continue": 5}
    assert {k: rep["segments"][k] for k in expected} == expected
    allv = table[table.variant == "all"]
    assert allv.loc[allv.label == 0, ["video_id", "start", "end"]].values.tolist() == [
        ["A", 25.0, 30.0], ["A", 52.0, 60.0], ["B", 25.0, 48.0], ["C", 12.0, 39.5], ["D", 12.0, 30.0]]
    assert allv.loc[allv.label == 1, "moment_id"].tolist() == ["a1", "a3", "a4", "a6", "b1", "b2", "c1", "d1", "e1",
                                                               "e2", "e3"]
    # matched variant: one CONTINUE piece per STOP of the same video and length; 6 STOP windows have no
    # CONTINUE stretch long enough in their video (video E has none at all) and are left out, counted
    dm = rep["counts"]["duration_matched"]
    assert dm["n_stop"] == dm["n_continue"] == 5 and rep["duration_matched"]["n_stop_unmatched_dropped"] == 6
    assert rep["duration_matched"]["unmatched_by_video"]["E"] == 3
    table.to_csv(tmp_path / "segments.csv", index=False)
    back = read_segment_table(tmp_path / "segments.csv")
    assert back["segment_id"].tolist() == table["segment_id"].tolist() and back["moment_id"].iloc[1] == ""


# ---------------------------------------------------------------- leakage guard

def windows_df():
    return pd.DataFrame({"segment_id": ["a:stop", "a:cont", "b:stop"], "video_id": ["a", "a", "b"],
                         "start": [1.0, 12.0, 1.0], "end": [10.0, 30.0, 5.0]})


PROV = {"videos": {
    "a": {"performances": [{"pianist_id": 3, "start": 1.0, "end": 10.0}, {"pianist_id": 3, "start": 12.0, "end": 20.0},
                           {"pianist_id": 7, "start": 20.0, "end": 31.0}]},  # a second player inside one window
    "b": {"performances": [{"pianist_id": 5, "start": 0.5, "end": 6.0}]},
}}


def test_segment_pianists_and_allowed_models():
    seg_p = segment_pianists(windows_df(), PROV)
    assert seg_p == {"a:stop": {3}, "a:cont": {3, 7}, "b:stop": {5}}
    model_p = {"f0": {3, 4}, "f1": {5, 7}, "f2": {1, 2}}
    assign = allowed_models(seg_p, model_p, list(seg_p))
    assert assign == {"a:stop": ["f1", "f2"], "a:cont": ["f2"], "b:stop": ["f0", "f2"]}
    check_no_leakage(assign, seg_p, model_p)  # a clean assignment passes
    assert allowed_models(None, model_p, ["x"]) == {"x": ["f0", "f1", "f2"]}
    with pytest.raises(ValueError, match="no entry for video 'a'"):
        segment_pianists(windows_df(), {"videos": {"b": PROV["videos"]["b"]}})


def test_leakage_guard_fires_on_leaking_assignment():
    seg_p = segment_pianists(windows_df(), PROV)
    model_p = {"f0": {3, 4}, "f1": {5, 7}, "f2": {1, 2}}
    leaking = {"a:stop": ["f0", "f2"], "a:cont": ["f2"], "b:stop": ["f2"]}  # f0 trained on pianist 3
    with pytest.raises(LeakageError, match=r"1 leaking .*'f0' trained on pianist\(s\) \[3\] scores segment 'a:stop'"):
        check_no_leakage(leaking, seg_p, model_p)
    with pytest.raises(LeakageError, match="no quality model"):
        check_no_leakage({"a:stop": [], "b:stop": ["f2"]}, seg_p, model_p)
    assert issubclass(LeakageError, AssertionError)


def test_score_segments_refuses_a_leaking_setup(tmp_path):
    """Every checkpoint trained on pianist 3, whose performances fill video a: nothing may score a's segments."""
    torch.set_num_threads(1)
    params = load_model("logmel", **LOGMEL).params()
    tiny_checkpoints(tmp_path / "ckpt", {"fold0": [3, 5], "fold1": [3, 7]}, 32, params)

    class Store:
        extractor, extractor_params = "logmel", params

        def pooled(self, ids):
            return np.random.default_rng(0).normal(size=(len(ids), 32))

    (tmp_path / "prov.json").write_text(json.dumps(PROV))
    with pytest.raises(LeakageError, match=r"2 segment\(s\) .*\['a:cont', 'a:stop'\]"):
        score_segments(windows_df(), Store(), tmp_path / "ckpt", tmp_path / "prov.json")
    tiny_checkpoints(tmp_path / "ckpt", {"fold2": [1]}, 32, params)  # a clean fold appears: allowed everywhere
    scores, rep = score_segments(windows_df(), Store(), tmp_path / "ckpt", tmp_path / "prov.json")
    assert scores["models"].tolist() == ["fold2", "fold2", "fold1;fold2"] and rep["provenance"] is True
    assert rep["segments_per_model"] == {"fold0": 0, "fold1": 1, "fold2": 3}
    Store.extractor_params = {**params, "n_mels": 64}
    with pytest.raises(ValueError, match="rerun train_quality"):
        check_extractor({"fold2": type("H", (), {"config": {"metadata": {"extractor": "logmel",
                                                                          "extractor_params": params}}})()},
                        "logmel", Store.extractor_params)


# ---------------------------------------------------------------- experiment on a toy with a known answer

def test_run_experiment_known_answer():
    rng = np.random.default_rng(0)
    rows = []
    for v in range(8):
        for k in range(10):
            rows.append({"segment_id": f"v{v}:{k}", "video_id": f"v{v}", "student": f"s{v}",
                         "teacher": "good" if v < 6 else "random", "label": int(k < 4), "duration": 8.0 + k % 3})
    seg = pd.DataFrame(rows)
    seg = pd.concat([seg.assign(variant="all"), seg.assign(variant="duration_matched")], ignore_index=True)
    ids = seg.segment_id.unique().tolist()
    y = np.array([int(i.split(":")[1]) < 4 for i in ids])
    good = np.array([int(i[1]) < 6 for i in ids])
    q = np.full((len(ids), 19), 0.5)
    q[:, 1:] += rng.normal(0, 0.01, (len(ids), 18))  # other dimensions: small noise
    q[:, 0] = np.where(good, np.where(y, 0.1, 0.9) + rng.normal(0, 0.02, len(ids)), rng.uniform(0.3, 0.7, len(ids)))
    # only timing separates STOP for the good teacher; for the random one it is unrelated to the label
    scores = pd.DataFrame(q, columns=list(DIMENSIONS)).assign(segment_id=ids)
    oracle = scores.copy()
    oracle[list(DIMENSIONS)] = rng.normal(size=(len(ids), 19))  # an "oracle" that knows nothing

    class Emb:
        def pooled(self, keys):
            return np.random.default_rng(1).normal(size=(len(keys), 6))

    res = run_experiment(seg, Emb(), scores, oracle, C=1.0, n_components=4, cv_folds=3, n_perm=39, seed=0, n_jobs=1)
    m = res["metrics"]
    assert m["n_stop"] == 24 and m["n_continue"] == 36 and m["n_videos"] == 6 and m["n_folds"] == 3
    mb = m["model_b"]
    assert mb["auc"] == 1.0 and mb["auc_p_perm"] == pytest.approx(1 / 40) and mb["balanced_accuracy"] == 1.0
    assert mb["auc_ci_low"] > 0.5 and mb["auc_p_holm"] == pytest.approx(min(1.0, m["settings"]["n_pvalues_holm"] / 40))
    assert m["teacher"]["good"]["model_b"]["auc"] == 1.0 and "random" not in m["teacher"]
    # the duration pattern (8, 9, 10 s) is identical for both labels within every video: chance level
    assert m["duration"]["auc"] < 0.6 and m["duration"]["auc_p_perm"] > 0.1
    # Model B vs the uninformative oracle: the gap is negative and significant before correction
    assert mb["gap_to_oracle"]["delta_auc"] < -0.3 and mb["gap_to_oracle"]["p"] <= 0.1
    # negative control: a model fitted on every graded video scores the random teacher's two videos
    nc = m["negative_control"]
    assert (nc["teacher"], nc["n_videos"], nc["n_stop"], nc["n_continue"]) == ("random", 2, 8, 12)
    head = ~seg.teacher.eq("random") & seg.variant.eq("all")
    ctrl = seg.teacher.eq("random") & seg.variant.eq("all")
    qi = scores.set_index("segment_id")
    ref = make_classifier(1.0).set_params(lr__tol=1e-10).fit(qi.loc[seg[head].segment_id].to_numpy(),
                                                               seg[head].label)
    expect = roc_auc_score(seg[ctrl].label, ref.predict_proba(qi.loc[seg[ctrl].segment_id].to_numpy())[:, 1])
    assert nc["model_b"]["auc"] == pytest.approx(expect, abs=1e-6)
    assert nc["model_b"]["ci_low"] <= nc["model_b"]["auc"] <= nc["model_b"]["ci_high"]
    coef = res["coefficients"].query("variant == 'all'").set_index("dimension")["coefficient"]
    assert coef.abs().idxmax() == "timing" and coef["timing"] < 0  # low timing rating -> STOP
    assert len(res["predictions"]) == 120 and set(res["roc"]["model"]) >= {"model_a", "model_b", "oracle_b"}
    assert set(res["plot_data"]) >= {"roc_all", "pr_all", "confusion_all_model_b", "confusion_duration_matched_model_a"}
