"""LiMuSE recipe end to end: train -> quantize -> packed file -> evaluate -> report, on
hand-made miniature mixtures (and on mixtures built from the real GRID clips when present)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from avtool.core.journal import write_jsonl
from avtool.core.store import StoreWriter, store_attrs

SR, SAMPLES, FRAMES = 16000, 3200, 5  # 0.2 s at 25 fps
SMALL = [
    "--set", "model.groups=4", "--set", "model.filters=16", "--set", "model.kernel=32",
    "--set", "model.audio_blocks=2", "--set", "model.audio_repeats=1",
    "--set", "model.fusion_blocks=2", "--set", "train.batch_size=2",
]  # fmt: skip
REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_samples" / "grid"


def _store(path: Path, extractor: str, items: dict[str, np.ndarray]) -> None:
    writer = StoreWriter(path, "00000-of-00001", store_attrs(extractor, {"fps": 25.0}))
    for key, value in items.items():
        writer.add(key, value)
    writer.commit()
    writer.finalize()


def _mini_grid(root: Path) -> Path:
    """lists/mixtures.jsonl + mix/ wavs, a voiceprint store and a face store in the face
    stage's per-frame record format (`embedding`, `mask`)."""
    rng = np.random.default_rng(0)
    t = np.arange(SAMPLES) / SR
    rows, voiceprints, faces = [], {}, {}
    for index, split in enumerate(["train"] * 4 + ["test"] * 2):
        mid = f"{split}-{index:06d}"
        f0 = 150 + 40 * index
        target = 0.3 * np.sin(2 * np.pi * f0 * t) * (1 + np.sin(2 * np.pi * 3 * t))
        other = 0.3 * rng.standard_normal(SAMPLES)
        mixture = np.stack([target + other, np.roll(target, 2) + np.roll(other, -2)], 1)
        folder = root / "mix" / split
        folder.mkdir(parents=True, exist_ok=True)
        soundfile.write(folder / f"{mid}-mix.wav", mixture, SR, subtype="PCM_16")
        soundfile.write(folder / f"{mid}-target.wav", target, SR, subtype="PCM_16")
        rows.append({
            "id": mid, "split": split, "target": f"t{index}", "enrol": f"e{index}",
            "path": f"../mix/{split}/{mid}-mix.wav", "target_path": f"../mix/{split}/{mid}-target.wav",
        })  # fmt: skip
        voiceprints[f"e{index}"] = rng.standard_normal(8).astype(np.float32)
        record = np.zeros(FRAMES, np.dtype([("embedding", np.float32, (6,)), ("mask", np.uint8)]))
        record["embedding"] = rng.standard_normal((FRAMES, 6))
        record["mask"] = 1
        faces[f"t{index}"] = record
    (root / "lists").mkdir(parents=True)
    write_jsonl(root / "lists" / "mixtures.jsonl", rows)
    (root / "mix" / "stage.json").write_text("{}")
    (root / "lists" / "stage.json").write_text("{}")
    _store(root / "voiceprint", "voiceprint-test", voiceprints)
    _store(root / "face", "face-test", faces)
    return root


def test_train_quantize_evaluate_report(tmp_path, cli):
    data = _mini_grid(tmp_path / "grid")
    run = tmp_path / "runs" / "k4"
    code, _, err = cli(
        "train", "limuse", "--data", data, "--voiceprint", data / "voiceprint",
        "--face", data / "face", "--out", run, "--epochs", "1", "--device", "cpu", *SMALL,
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["model"]["voiceprint_dim"] == 8 and summary["model"]["face_dim"] == 6
    assert summary["train_items"] == 4 and summary["epochs_run"] == 1
    code, _, err = cli(
        "quantize", "limuse", "--run", run, "--epochs", "1", "--device", "cpu",
        "--set", "train.batch_size=2",
    )  # fmt: skip
    assert code == 0, err
    quantized = tmp_path / "runs" / "k4-q3"
    qsummary = json.loads((quantized / "summary.json").read_text())
    assert qsummary["bytes"] == (quantized / "model.avtq").stat().st_size
    assert qsummary["max_deviation"] == 0.0
    assert qsummary["bytes"] < 4 * qsummary["params"] / 3
    for path in (run, quantized):
        code, _, err = cli("evaluate", "limuse", "--run", path)
        assert code == 0, err
    results = json.loads((quantized / "evaluation" / "results.json").read_text())
    assert results["items"] == 2 and results["packed"] and results["method"] == "LiMuSE"
    items = [
        json.loads(x)
        for x in (quantized / "evaluation" / "items.jsonl").read_text().split("\n")
        if x
    ]
    assert results["si_sdri"] == pytest.approx(np.mean([r["si_sdri"] for r in items]))
    code, _out, err = cli(
        "report", "limuse", "--run", tmp_path / "runs", "--out", tmp_path / "report"
    )
    assert code == 0, err
    table = (tmp_path / "report" / "table.md").read_text()
    assert "| k4 | LiMuSE (w/o Q) | 4 |" in table and "| k4-q3 | LiMuSE | 4 |" in table
    assert (tmp_path / "report" / "si_sdri.png").stat().st_size > 1000


def test_shuffled_visual_order_permutes_frames(tmp_path):
    from avtool.recipes.limuse import LimuseConfig, LimuseMixtures

    data = _mini_grid(tmp_path / "grid")
    args = (data, "train", data / "voiceprint", data / "face")
    timed = LimuseMixtures(*args, LimuseConfig())[0][2].numpy()
    shuffled = LimuseMixtures(*args, LimuseConfig(visual_order="shuffled"))[0][2].numpy()
    assert not np.array_equal(timed, shuffled)
    assert np.array_equal(np.sort(timed, axis=0), np.sort(shuffled, axis=0))


def test_missing_cue_items_are_left_out_and_counted(tmp_path):
    from avtool.recipes.limuse import LimuseConfig, LimuseMixtures

    data = _mini_grid(tmp_path / "grid")
    rows = [json.loads(x) for x in (data / "lists" / "mixtures.jsonl").read_text().splitlines()]
    rows[0]["enrol"] = "nobody"
    write_jsonl(data / "lists" / "mixtures.jsonl", rows)
    mixtures = LimuseMixtures(data, "train", data / "voiceprint", data / "face", LimuseConfig())
    assert (len(mixtures), mixtures.missing) == (3, 1)


def test_tasnet_baseline_trains_with_pit(tmp_path, cli):
    data = _mini_grid(tmp_path / "grid")
    run = tmp_path / "tasnet"
    code, _, err = cli(
        "train", "limuse", "--data", data, "--out", run, "--arch", "tasnet", "--epochs", "1",
        "--device", "cpu", "--set", "tasnet.blocks=2", "--set", "tasnet.repeats=1",
        "--set", "tasnet.filters=16", "--set", "tasnet.kernel=32", "--set", "train.batch_size=2",
    )  # fmt: skip
    assert code == 0, err
    code, _, err = cli("evaluate", "limuse", "--run", run)
    assert code == 0, err
    results = json.loads((run / "evaluation" / "results.json").read_text())
    assert results["method"] == "TasNet (dual-channel)" and results["items"] == 2


def test_not_a_run_is_refused(tmp_path, cli):
    code, _, err = cli("evaluate", "limuse", "--run", tmp_path)
    assert code == 2 and "no finished LiMuSE run" in err


@pytest.mark.skipif(not REAL.is_dir(), reason=f"real GRID samples not found at {REAL}")
def test_real_grid_clips_train_quantize_export_load_evaluate(tmp_path, cli):
    """The eight real s1 clips as four two-clip pseudo-speakers (train s1 s2, test s3 s4):
    the real MPEG audio tracks, frame counts (one clip has 74 frames) and the face stage.
    Mixtures of 2 s: the clips' audio tracks decode to 2.978 s, under prepare's 3 s. The
    index stage reads a `z` digit (zero) as no digit, so those clips go in as digit 0."""
    clips = sorted((REAL / "s1").glob("*.mpg"))
    root = tmp_path / "GRID"
    for position, clip in enumerate(clips):
        speaker = f"s{position // 2 + 1}"
        (root / speaker).mkdir(parents=True, exist_ok=True)
        (root / "alignments" / speaker).mkdir(parents=True, exist_ok=True)
        code = clip.stem[:4] + clip.stem[4].replace("z", "0") + clip.stem[5]
        shutil.copy(clip, root / speaker / f"{code}.mpg")
        align = REAL / "alignments" / "s1" / f"{clip.stem}.align"
        shutil.copy(align, root / "alignments" / speaker / f"{code}.align")
    data = tmp_path / "data"
    code, _, err = cli(
        "prepare", "grid", "--root", root, "--out", data, "--set", "speakers.valid=[]",
        "--set", "speakers.test=[s3,s4]", "--set", "mixtures.train=1",
        "--set", "mixtures.valid=0", "--set", "mixtures.test=1", "--set", "samples=32000",
    )  # fmt: skip
    assert code == 0, err
    for kind, manifest in (("voiceprint", "enrolment"), ("face", "videos")):
        code, _, err = cli(
            "features", kind, "--manifest", data / "lists" / f"{manifest}.jsonl",
            "--out", tmp_path / kind,
        )  # fmt: skip
        assert code == 0, err
    run = tmp_path / "run"
    code, _, err = cli(
        "train", "limuse", "--data", data, "--voiceprint", tmp_path / "voiceprint",
        "--face", tmp_path / "face", "--out", run, "--epochs", "1", "--device", "cpu",
        *SMALL[:-2], "--set", "train.batch_size=1",
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["model"]["voiceprint_dim"] == 256 and summary["model"]["face_dim"] > 0
    code, _, err = cli("quantize", "limuse", "--run", run, "--epochs", "1", "--device", "cpu",
                       "--set", "train.batch_size=1")  # fmt: skip
    assert code == 0, err
    quantized = tmp_path / "run-q3"
    assert json.loads((quantized / "summary.json").read_text())["max_deviation"] == 0.0
    code, _, err = cli("evaluate", "limuse", "--run", quantized)
    assert code == 0, err
    results = json.loads((quantized / "evaluation" / "results.json").read_text())
    assert results["items"] == 1 and np.isfinite(results["si_sdri"])
