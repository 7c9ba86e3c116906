"""GRID on real files: the 8 s1 clips of ../shared/data/real_samples/grid (see its FACTS.md)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from avtool.core.audio import load_audio
from avtool.core.journal import read_jsonl, write_jsonl
from avtool.core.store import FeatureStore
from avtool.core.video import iter_frames
from avtool.features.face import opening_envelope_correlation, read_visual

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_samples" / "grid"
pytestmark = pytest.mark.skipif(
    not (REAL / "s1").is_dir(), reason=f"real GRID samples not found at {REAL}"
)
CODES = ["bbizzn", "bwag7a", "lgbs9a", "lray5s", "pgwlzn", "pric3s", "sbbbzp", "swwjzp"]
# bbizzn's first group of pictures decodes to grey and half-drawn frames (its first I-frame is
# 1.6 KB): no face can be seen before frame 12, from which the stream is intact.
FIRST_INTACT = {"bbizzn": 12}
# Measured 2026-11 (bench/face.py): inner-lip height vs 25 fps RMS envelope, per clip.
MEASURED_R = {
    "bbizzn": 0.472,
    "bwag7a": 0.382,
    "lgbs9a": 0.589,
    "lray5s": 0.553,
    "pgwlzn": 0.425,
    "pric3s": 0.512,
    "sbbbzp": 0.432,
    "swwjzp": 0.481,
}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    from avtool.cli.main import main

    out = tmp_path_factory.mktemp("real") / "data"
    assert main(["prepare", "grid", "--root", str(REAL), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def face_store(prepared, tmp_path_factory) -> Path:
    """`features face` over the 8 clips (manifest as videos.jsonl writes it) and a truncated one."""
    from avtool.features.face import FaceParams, extract_face

    work = tmp_path_factory.mktemp("face")
    rows = [
        {"id": u["id"], "path": str(prepared / "index" / u["video"]), "seconds": u["seconds"]}
        for u in read_jsonl(prepared / "index" / "utterances.jsonl")
    ]
    truncated = work / "s1" / "pric3s.mpg"
    truncated.parent.mkdir()
    truncated.write_bytes((REAL / "s1" / "pric3s.mpg").read_bytes()[:10240])
    rows.append({"id": "s1_cut", "path": str(truncated), "seconds": rows[0]["seconds"]})
    write_jsonl(work / "videos.jsonl", rows)
    extract_face(work / "videos.jsonl", work / "store", FaceParams(), max_reject_rate=0.5)
    return work / "store"


def test_prepare_grid_accepts_every_real_clip_with_default_options(prepared):
    utterances = {u["code"]: u for u in read_jsonl(prepared / "index" / "utterances.jsonl")}
    assert sorted(utterances) == CODES
    assert list(read_jsonl(prepared / "index" / "rejects.jsonl")) == []
    assert utterances["bbizzn"]["words"] == "bin blue in z zero now"
    assert utterances["sbbbzp"]["frames"] == 74
    assert {u["frames"] for c, u in utterances.items() if c != "sbbbzp"} == {75}
    for u in utterances.values():
        assert u["audio_source"] == "video" and "align_warning" not in u
        assert u["pad_s"] == pytest.approx(3 - 131328 / 44100, abs=1e-4)


def test_decoded_audio_and_frames_match_facts():
    for code in CODES:
        path = REAL / "s1" / f"{code}.mpg"
        audio, sr = load_audio(path, sr=None, mono=False)
        assert (sr, audio.shape) == (44100, (2, 131328)), code
        frames = sum(1 for _ in iter_frames(path))
        assert frames == (74 if code == "sbbbzp" else 75), code


def test_index_rejects_a_truncated_real_clip(tmp_path):
    root = tmp_path / "GRID"
    shutil.copytree(REAL, root)
    clip = root / "s1" / "pric3s.mpg"
    clip.chmod(0o644)
    clip.write_bytes(clip.read_bytes()[:10240])
    from avtool.corpora.grid import GridConfig, build_index

    counts = build_index(root, tmp_path / "index", GridConfig())
    (reject,) = read_jsonl(tmp_path / "index" / "rejects.jsonl")
    assert counts["utterances"] == 7 and reject["id"] == "s1_pric3s"
    # Its first 10 KB hold two pictures and not one audio packet.
    assert "no audio stream" in reject["reason"]


def test_face_cues_find_the_face_in_every_frame(face_store):
    store = FeatureStore(face_store)
    for code in CODES:
        record = store[f"s1_{code}"][0]
        first = FIRST_INTACT.get(code, 0)
        assert len(record["mask"]) == (74 if code == "sbbbzp" else 75)
        assert record["mask"][first:].all(), code
    identities = np.stack([read_visual(store, f"s1_{c}")[1] for c in CODES])
    # One speaker: the per-video identities agree.
    assert (identities @ identities.T).min() > 0.95


def test_face_stage_rejects_a_truncated_video(face_store):
    (reject,) = read_jsonl(face_store / "rejects.jsonl")
    assert reject["id"] == "s1_cut" and "truncated video" in reject["reason"]


def test_mouth_opening_follows_the_audio_envelope(face_store):
    store = FeatureStore(face_store)
    measured = {}
    for code in CODES:
        mouth, _ = read_visual(store, f"s1_{code}")
        audio, sr = load_audio(REAL / "s1" / f"{code}.mpg", sr=16000)
        measured[code] = opening_envelope_correlation(
            mouth, store[f"s1_{code}"][0]["mask"], audio, sr
        )
    for code, r in measured.items():
        assert r > 0.25, (code, r, MEASURED_R[code])
    assert np.mean(list(measured.values())) > 0.4, measured
