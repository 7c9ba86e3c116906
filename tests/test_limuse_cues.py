"""LiMuSE cues: voiceprints tell speakers apart; face descriptors and masks per frame."""

from __future__ import annotations

import numpy as np

from avtool.core.journal import write_jsonl
from avtool.core.store import FeatureStore
from avtool.core.video import write_video
from avtool.corpora.grid import GridConfig, MixtureCounts, SplitSpeakers, read_mixture_list
from avtool.synth.grid import draw_face, speakers, synth_grid


def test_voiceprint_same_speaker_closer_than_different(tmp_path, cli):
    synth_grid(tmp_path / "GRID", 3, 3, seed=1)
    rows = [
        {"id": p.stem + "_" + p.parent.name, "path": str(p), "speaker": p.parent.name}
        for p in sorted((tmp_path / "GRID" / "audio_25k").rglob("*.wav"))
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


def test_face_descriptors_mask_and_faceless_share(tmp_path, cli):
    look = speakers(2)[1]
    frames = [draw_face(144, 180, o, look) for o in np.linspace(0, 1, 6)]
    frames += [np.full((144, 180, 3), 90, np.uint8)] * 4  # no face in the last 4 frames
    video = tmp_path / "s2" / "bbaf2n.mpg"
    write_video(video, np.stack(frames), 25)
    write_jsonl(tmp_path / "videos.jsonl", [{"id": "s2_bbaf2n", "path": str(video)}])
    code, out, err = cli(
        "features", "face", "--manifest", tmp_path / "videos.jsonl", "--out", tmp_path / "face"
    )
    assert code == 0, err
    item = FeatureStore(tmp_path / "face")["s2_bbaf2n"]
    assert item["embedding"].shape == (10, 128)
    assert item["mask"].tolist() == [1] * 6 + [0] * 4
    assert np.all(item["embedding"][6:] == 0) and np.all(np.abs(item["embedding"][:6]).sum(1) > 0)
    assert "face-less frames 0.400" in out


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
