"""LiMuSE cues: voiceprints tell speakers apart; identity, mouth shape and mask per video."""

from __future__ import annotations

import json

import numpy as np

from avtool.core.journal import read_jsonl, write_jsonl
from avtool.core.store import FeatureStore
from avtool.core.video import write_video
from avtool.corpora.grid import GridConfig, MixtureCounts, SplitSpeakers, read_mixture_list
from avtool.features.face import (
    IDENTITY_DIM,
    MOUTH_COLUMNS,
    MOUTH_DIM,
    mouth_features,
    opening_envelope_correlation,
    read_visual,
)
from avtool.synth.grid import draw_face, mouth_openings, speakers, synth_grid


def test_voiceprint_same_speaker_closer_than_different(tmp_path, cli):
    synth_grid(tmp_path / "GRID", 3, 3, seed=1, size=(180, 144))
    rows = [
        {"id": p.stem + "_" + p.parent.name, "path": str(p), "speaker": p.parent.name}
        for p in sorted((tmp_path / "GRID").glob("s*/*.mpg"))
    ]
    write_jsonl(tmp_path / "utts.jsonl", rows)
    code, _, err = cli(
        "features", "voiceprint", "--manifest", tmp_path / "utts.jsonl", "--out", tmp_path / "vp"
    )
    assert code == 0, err
    store = FeatureStore(tmp_path / "vp")
    speaker = {r["id"]: r["speaker"] for r in rows}
    ids = sorted(store)
    vectors = np.stack([store[i] for i in ids])
    assert vectors.shape == (9, 256)
    cosine = vectors @ vectors.T
    same = [cosine[a, b] for a in range(9) for b in range(a) if speaker[ids[a]] == speaker[ids[b]]]
    other = [cosine[a, b] for a in range(9) for b in range(a) if speaker[ids[a]] != speaker[ids[b]]]
    assert np.mean(same) > np.mean(other) + 0.05


def test_face_cues_mask_identity_mouth_and_truncated_video(tmp_path, cli):
    look = speakers(2)[1]
    openings = np.abs(np.sin(np.arange(16) / 2.0))
    frames = [draw_face(144, 180, o, look) for o in openings]
    frames += [np.full((144, 180, 3), 90, np.uint8)] * 7  # no face in the last 7 frames
    video = tmp_path / "s2" / "bbaf2n.mpg"
    write_video(video, np.stack(frames), 25)
    cut = tmp_path / "s2" / "bbazzn.mpg"
    write_video(cut, np.stack(frames[:2]), 25)
    rows = [
        {"id": "s2_bbaf2n", "path": str(video)},
        {"id": "s2_bbazzn", "path": str(cut), "seconds": 2.977937},  # a 2-frame "3 s" clip
    ]
    write_jsonl(tmp_path / "videos.jsonl", rows)
    args = ["features", "face", "--manifest", tmp_path / "videos.jsonl", "--out", tmp_path / "face"]
    code, out, err = cli(*args, "--max-reject-rate", 0.5)
    assert code == 0, err
    store = FeatureStore(tmp_path / "face")
    assert store.attrs["params"]["mouth_dim"] == MOUTH_DIM == 45
    assert store.attrs["params"]["identity_dim"] == IDENTITY_DIM == 128
    record = store["s2_bbaf2n"][0]
    # Key frames 0, 10 and the last: the face goes between 10 and 22, so 11-21 are detected.
    assert record["mask"].tolist() == [1] * 16 + [0] * 7
    mouth, identity = read_visual(store, "s2_bbaf2n")
    assert mouth.shape == (23, 45) and mouth.dtype == np.float32
    assert identity.shape == (128,) and abs(np.linalg.norm(identity) - 1) < 1e-5
    assert np.all(mouth[16:] == 0) and np.all(np.abs(mouth[:16]).sum(1) > 0)
    # The drawn mouth opens and closes with `openings`; the inner-lip height follows it.
    height = mouth[:16, MOUTH_COLUMNS.index("inner_height")]
    assert np.corrcoef(height, openings)[0, 1] > 0.8
    (reject,) = read_jsonl(tmp_path / "face" / "rejects.jsonl")
    assert reject["id"] == "s2_bbazzn"
    assert (
        "truncated video, 2 frames decoded where its 2.978 s of audio imply 74" in reject["reason"]
    )
    assert "face-less frames 0.304" in out
    assert json.loads((tmp_path / "face" / "faceless.json").read_text())["items"] == 1


def test_mouth_features_ignore_position_scale_and_roll():
    rng = np.random.default_rng(0)
    points = rng.uniform(100, 200, (68, 2))
    angle = 0.3
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = 1.7 * points @ turn.T + [40, -25]
    assert np.allclose(mouth_features(points), mouth_features(moved), atol=1e-4)
    opened = points.copy()
    opened[65:68, 1] += 10  # lower inner lip down
    assert mouth_features(opened)[40] > mouth_features(points)[40]


def test_opening_envelope_correlation_of_a_synthetic_talker():
    audio = np.zeros(44100 * 3, np.float32)
    audio[30000:90000] = np.sin(np.arange(60000) / 5.0) * np.hanning(60000)
    opening = mouth_openings(audio, 44100, 75)
    mouth = np.zeros((75, MOUTH_DIM), np.float32)
    mouth[:, MOUTH_COLUMNS.index("inner_height")] = opening
    assert opening_envelope_correlation(mouth, np.ones(75), audio, 44100) > 0.99
    elsewhere = np.roll(audio, 40000)  # the same speech 0.9 s later than the mouth moves
    assert opening_envelope_correlation(mouth, np.ones(75), elsewhere, 44100) < 0.2


def test_official_list_format_and_enrolment_leak(tmp_path):
    listing = tmp_path / "datalist_2mix_test.txt"
    listing.write_text(
        "mixture/test/0_RIR0_s16_lgak6a_s12_pbbb6a_mix.wav target/test/0_RIR0_s16_lgak6a_target.wav "
        "ref/test/s16/swwn7n.wav lip_fea/test/s16/lgak6a.npy 5.03 3.92 4.42 3.02 f m\n"
        "mixture/test/1_RIR1_s18_lrap3n_s6_lgwf7n_mix.wav target/test/1_RIR1_s18_lrap3n_target.wav "
        "ref/test/s18/lrap3n.wav lip_fea/test/s18/lrap3n.npy 5.52 3.49 4.59 3.70 f m\n"
    )
    config = GridConfig(speakers=SplitSpeakers(), mixtures=MixtureCounts())
    first, second = read_mixture_list(listing, config)
    assert (first["id"], first["target"], first["interferer"], first["enrol"]) == (
        "test-000000",
        "s16_lgak6a",
        "s12_pbbb6a",
        "s16_swwn7n",
    )
    assert first["target_azimuth"] == 5.03 and first["interferer_distance"] == 3.02
    assert -5 <= first["snr_db"] <= 5
    assert not first["enrol_is_target"] and second["enrol_is_target"]


def test_prepare_grid_cli_dry_run_and_run(tmp_path, cli):
    code, _, err = cli(
        "synth", "grid", "--out", tmp_path / "GRID", "--speakers", 4, "--utterances", 2
    )
    assert code == 0, err
    args = ["prepare", "grid", "--root", tmp_path / "GRID", "--out", tmp_path / "data"]
    args += ["--set", "speakers.valid=[]", "--set", "speakers.test=[s3,s4]"]
    args += ["--set", "mixtures.train=2", "--set", "mixtures.valid=0", "--set", "mixtures.test=2"]
    code, out, err = cli(*args, "--dry-run")
    assert code == 0 and "would run" in out, err
    code, out, err = cli(*args, "--jobs", 2)
    assert code == 0 and "mix_done 4" in out, err
    code, out, _ = cli(*args)
    assert code == 0 and "up to date" in out
