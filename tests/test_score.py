"""pianoeval score: the same numbers for an m4a as for the wav it was made from (within codec tolerance),
windows, checkpoint selection (leakage-safe flag), table / JSON / plot output, clear errors, and the level
sensitivity measure (zero on null data, removed by loudness normalisation)."""

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from media_server import encode, piano_like
from pianoeval.cli import main
from pianoeval.dimensions import DIMENSIONS
from pianoeval.extractors import load_model, mean_std
from pianoeval.labels import MEAN_JSON
from pianoeval.loudness import embedding_params, normalize_loudness
from pianoeval.models.quality_mlp import QualityMLP, save_checkpoint
from pianoeval.score import bootstrap_mean_ci, level_sensitivity, load_ensemble, score_audio, windows_of

SR = 16000
LOGMEL = {"sample_rate": SR, "frame_rate": 25.0, "n_fft": 512, "n_mels": 16, "fmin": 30.0, "fmax": 7000.0,
          "deltas": True}


def make_checkpoints(folder, loudness_lufs, pianists):
    """Small fold models fitted on pooled embeddings of synthetic clips (inputs standardised like the real
    ones, so predictions move with the audio)."""
    torch.set_num_threads(1)
    model = load_model("logmel", **LOGMEL)
    rng = np.random.default_rng(0)
    X = []
    for s in range(16):
        clip = piano_like(3.0, SR, seed=100 + s, level=float(rng.uniform(0.05, 0.6)))
        if loudness_lufs is not None:
            clip = normalize_loudness(clip, SR, loudness_lufs)[0]
        X.append(mean_std(model.timestamp_embeddings(clip, SR)[0]))
    X, Y = np.stack(X), rng.uniform(0.2, 0.8, size=(16, len(DIMENSIONS)))
    for i, (name, trained) in enumerate(pianists.items()):
        est = QualityMLP(hidden=16, n_hidden_layers=1, max_epochs=25, batch_size=8, lr=3e-3, seed=i).fit(X, Y)
        save_checkpoint(est, folder / name, metadata={
            "extractor": "logmel", "extractor_params": embedding_params(model.params(), loudness_lufs),
            "train_pianist_ids": trained})
    return folder


FOLDS = {"fold0": [1, 2], "fold1": [3, 4], "fold2": [3, 5]}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_checkpoints(tmp_path_factory.mktemp("ckpt"), -23.0, FOLDS)


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """A 48 s stereo 44.1 kHz WAV, the m4a (AAC) made from it, and an unrelated mp3."""
    d = tmp_path_factory.mktemp("rec")
    x = piano_like(48.0, 44100, seed=7, level=0.25)
    stereo = np.stack([x, 0.7 * x], axis=1)
    sf.write(d / "take.wav", stereo, 44100, subtype="PCM_16")
    encode(d / "take.m4a", stereo, 44100)
    encode(d / "other.mp3", piano_like(48.0, 44100, seed=8, level=0.6), 44100)
    return d


def run_json(capsys, *args) -> dict:
    assert main(["score", *map(str, args), "--json", "--no-progress"]) == 0
    return json.loads(capsys.readouterr().out)


def scores(file_report) -> np.ndarray:
    rows = [file_report["whole"]] + file_report["windows"]
    return np.array([[r[d] for d in DIMENSIONS] for r in rows])


def test_windows_of():
    assert windows_of(70.0) == [(0.0, 30.0), (30.0, 70.0)]
    assert windows_of(75.0) == [(0.0, 30.0), (30.0, 60.0), (60.0, 75.0)]
    assert windows_of(10.0) == [(0.0, 10.0)] and windows_of(44.9) == [(0.0, 44.9)]
    assert windows_of(45.0) == [(0.0, 30.0), (30.0, 45.0)]
    with pytest.raises(ValueError):
        windows_of(0.0)


def test_m4a_gives_the_numbers_of_its_wav(capsys, ckpt, recordings):
    rep = run_json(capsys, recordings / "take.wav", recordings / "take.m4a", recordings / "other.mp3",
                   "--checkpoints", ckpt)
    assert rep["checkpoints"] == ["fold0", "fold1", "fold2"] and rep["loudness_target_lufs"] == -23.0
    wav, m4a, other = rep["files"]
    assert (wav["codec"], m4a["codec"], wav["sample_rate_in"], wav["channels_in"]) == ("pcm_s16le", "aac", 44100, 2)
    assert [(w["start"], w["end"]) for w in wav["windows"]] == [(0.0, 30.0), (30.0, 48.0)]
    assert len(m4a["windows"]) == 2 and abs(m4a["duration_s"] - 48.0) < 0.05
    codec_diff = np.abs(scores(wav) - scores(m4a))
    other_diff = np.abs(scores(wav) - scores(other))
    assert codec_diff.mean() < 0.01 and codec_diff.max() < 0.03  # AAC at its default bitrate
    assert other_diff.mean() > 5 * codec_diff.mean()  # the tolerance is far below what a different take moves
    assert all(0 <= v <= 1 for v in wav["whole"].values())


def test_table_plot_and_leakage_safe_selection(capsys, tmp_path, recordings, ckpt):
    ck = ckpt
    pp = tmp_path / "percepiano"
    pp.mkdir()
    (pp / MEAN_JSON).write_text(json.dumps({"Piece_8bars_3_1": [0.5] * len(DIMENSIONS) + [3]}))
    png = tmp_path / "scores.png"
    assert main(["score", str(recordings / "take.wav"), "--checkpoints", str(ck), "--exclude-key",
                 "Piece_8bars_3_1", "--percepiano-dir", str(pp), "--plot", str(png), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "checkpoints: fold0 (ensemble mean of 1" in out
    assert "left out: fold1: trained on pianist 3 (Piece_8bars_3_1)" in out and "left out: fold2" in out
    assert "each window normalised to -23 LUFS" in out and "0:00-0:30" in out and "0:30-0:48" in out
    assert sum(line.split()[:1] == [d] for line in out.splitlines() for d in DIMENSIONS) == len(DIMENSIONS)
    assert png.stat().st_size > 5000
    ens = load_ensemble(ck, exclude_key="Piece_8bars_3_1", percepiano_dir=pp)
    assert ens.names == ["fold0"] and set(ens.excluded) == {"fold1", "fold2"}

    ck2 = tmp_path / "ck2"  # the same models, all trained on pianist 3
    shutil.copytree(ck, ck2)
    for js in ck2.glob("*.json"):
        cfg = json.loads(js.read_text())
        cfg["metadata"]["train_pianist_ids"].append(3)
        js.write_text(json.dumps(cfg))
    assert main(["score", str(recordings / "take.wav"), "--checkpoints", str(ck2), "--exclude-key",
                 "Piece_8bars_3_1", "--percepiano-dir", str(pp)]) == 1
    assert "every checkpoint trained on pianist 3" in capsys.readouterr().err
    assert main(["score", str(recordings / "take.wav"), "--checkpoints", str(ck), "--exclude-key",
                 "Piece_8bars_3_2", "--percepiano-dir", str(pp)]) == 1
    assert "no PercePiano key 'Piece_8bars_3_2' (did you mean Piece_8bars_3_1?)" in capsys.readouterr().err
    assert main(["score", str(tmp_path / "nope.wav"), "--checkpoints", str(ck)]) == 2
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("x")
    assert main(["score", str(tmp_path / "notes.txt"), "--checkpoints", str(ck)]) == 2
    assert "not an audio file suffix" in capsys.readouterr().err
    assert main(["score", str(recordings / "take.wav"), "--checkpoints", str(tmp_path)]) == 1
    assert "no quality checkpoints" in capsys.readouterr().err


def test_progress_bar_on_long_input(capsys, ckpt):
    ens = load_ensemble(ckpt)
    x = piano_like(150.0, SR, seed=9)
    res = score_audio(ens, x, SR, progress=True)
    assert len(res["windows"]) == 5 and "window" in capsys.readouterr().err
    score_audio(ens, x[: 60 * SR], SR, progress=True)  # 2 windows: no bar
    assert capsys.readouterr().err == ""


def test_level_sensitivity_null_and_normalisation(tmp_path, ckpt):
    clips = [piano_like(4.0, SR, seed=s, level=0.2 + 0.1 * s) for s in range(4)]
    norm = level_sensitivity(load_ensemble(ckpt), clips, SR, gains_db=(-6.0, 0.0, 6.0), n_boot=200)
    null = norm["per_gain"]["+0 dB"]
    assert null["mean_abs_change"] == 0.0 and null["ci95"] == [0.0, 0.0]  # no level change: no change at all
    assert norm["per_gain"]["-6 dB"]["mean_abs_change"] < 1e-4 and norm["per_gain"]["+6 dB"]["max_abs_change"] < 1e-3
    raw_ckpt = make_checkpoints(tmp_path / "raw", None, {"fold0": [1]})
    raw = level_sensitivity(load_ensemble(raw_ckpt), clips, SR, n_boot=200)
    assert raw["per_gain"]["-6 dB"]["mean_abs_change"] > 0.005  # without normalisation the level leaks in
    r = raw["per_gain"]["-6 dB"]
    assert r["ci95"][0] <= r["mean_abs_change"] <= r["ci95"][1] and raw["n_clips"] == 4


def test_bootstrap_ci_covers_the_true_mean_on_null_data():
    rng = np.random.default_rng(0)
    hits = [lo <= 0.0 <= hi for lo, hi in (bootstrap_mean_ci(rng.standard_normal(50), n_boot=500, seed=i)
                                            for i in range(200))]
    assert 0.88 <= np.mean(hits) <= 0.99  # nominal 95%
    assert bootstrap_mean_ci(np.full(10, 0.3)) == (pytest.approx(0.3), pytest.approx(0.3))
