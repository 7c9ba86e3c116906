"""SED recipe end to end on a miniature corpus: train sed (spectral, and spectral + both
pretrained streams) -> evaluate sed --run -> report sed; post-processing and §5's protocol."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sed_fixtures import make_corpus, write_pretrained_store

from avtool.core.errors import InputError
from avtool.corpora.dcase2018 import CLASSES
from avtool.recipes.sed import (
    SED_LOGMEL,
    STEP_SECONDS,
    decode_events,
    select_seeds,
    spectral_frames,
)

SECONDS = 2.0  # short clips keep the CNN cheap; the 10 s frame counts are tested elsewhere
TINY = [
    "--set", "train.batch_size=2", "--set", "rampup_steps=2", "--set", "threads=1",
    "--set", f"clip_seconds={SECONDS}", "--set", "scaler_clips=4", "--set", "evaluation.best=1",
]  # fmt: skip


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, Path, dict[str, Path]]:
    from avtool.features.logmel import extract_logmel

    root = tmp_path_factory.mktemp("sed")
    counts = {"weak": 4, "unlabel_in_domain": 2, "test": 2, "eval": 2}
    manifest = make_corpus(root / "corpus", counts, duration=SECONDS)
    extract_logmel(manifest, root / "logmel", SED_LOGMEL)
    # The demo's sparse pretrained streams: 2 VGGish patches and 4 VGG16 frames per 2 s clip.
    write_pretrained_store(
        root / "vggish", root / "corpus", "vggish", 128, {"patch_hop_seconds": 0.96}, 2, SECONDS
    )
    write_pretrained_store(
        root / "vgg16", root / "corpus", "vgg16", 4096, {"fps": 1.51}, 4, SECONDS
    )
    stores = {"logmel": root / "logmel", "vggish": root / "vggish", "vgg16": root / "vgg16"}
    return root, manifest, stores


def test_train_evaluate_report_two_settings(cli, corpus):
    root, manifest, stores = corpus
    runs = root / "runs"
    settings = (("spectral", "spectral", 1), ("fused", "spectral,vggish,vgg16", 2))
    for name, inputs, seeds in settings:
        code, out, err = cli(
            "train", "sed", "--manifest", manifest, "--out", runs / name, "--inputs", inputs,
            "--logmel", stores["logmel"], "--vggish", stores["vggish"], "--vgg16", stores["vgg16"],
            "--seeds", seeds, "--steps", 3, *TINY,
        )  # fmt: skip
        assert code == 0, err
        code, out, err = cli("evaluate", "sed", "--run", runs / name)
        assert code == 0, err
    code, out, err = cli("train", "sed", "--manifest", manifest, "--out", runs / "fused",
                         "--inputs", "spectral,vggish,vgg16", "--logmel", stores["logmel"],
                         "--vggish", stores["vggish"], "--vgg16", stores["vgg16"],
                         "--seeds", 2, "--steps", 3, *TINY)  # fmt: skip
    assert code == 0 and "up to date" in out, err

    results = json.loads((runs / "fused" / "evaluation" / "results.json").read_text())
    assert results["inputs"] == ["spectral", "vggish", "vgg16"]
    assert results["clips"] == {"validation": 2, "test": 2}
    assert sorted(results["seeds"]) == ["seed-00", "seed-01"]
    protocol = results["protocol"]
    assert protocol["of"] == 2 and len(protocol["selected"]) == 1
    best = protocol["selected"][0]
    for key in ("clip_f1_micro", "segment_f1_micro", "event_f1_macro"):
        assert protocol["test"][key] == pytest.approx(results["seeds"][best]["test"][key] or 0.0)
        assert 0.0 <= protocol["test"][key] <= 1.0
    assert "sed_eval" in results["metric_versions"]
    for seed in ("seed-00", "seed-01"):
        summary = json.loads((runs / "fused" / seed / "done.json").read_text())
        assert summary["global_step"] >= 3
        lines = (runs / "fused" / "evaluation" / seed / "test_predictions.tsv").read_text()
        assert lines.splitlines()[0] == "filename\tonset\toffset\tevent_label"
    model_summary = json.loads((runs / "fused" / "summary.json").read_text())
    assert model_summary["runs"]["seed-00"]["parameters"] == 1_072_126
    assert len(model_summary["scaler"]["mean"]) == 128

    code, out, err = cli("report", "sed", "--run", runs, "--out", root / "report")
    assert code == 0, err
    table = (root / "report" / "table.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ✓")]
    assert len(rows) == 2
    assert rows[0].startswith("| ✓ | – | – |") and "76.22%" in rows[0]  # Table 3's order
    assert rows[1].startswith("| ✓ | ✓ | ✓ |") and "83.72%" in rows[1]
    figures = sorted(p.name for p in (root / "report" / "figures").iterdir())
    assert "per_class_f1.png" in figures
    assert sum(name.startswith("timeline-") for name in figures) == 2  # both test clips
    assert (root / "report" / "figures" / "per_class_f1.png").read_bytes()[:4] == b"\x89PNG"


def test_train_refuses_a_missing_store(cli, corpus):
    root, manifest, stores = corpus
    code, _, err = cli("train", "sed", "--manifest", manifest, "--out", root / "bad",
                       "--inputs", "spectral,vgg16", "--logmel", stores["logmel"])  # fmt: skip
    assert code == 2
    assert "--vgg16 DIR" in err


def test_spectral_frames_and_step_length():
    assert spectral_frames(10.0) == 604
    assert spectral_frames(10.0) // 4 == 151
    assert pytest.approx(4 * 366 / 22100) == STEP_SECONDS


def test_decode_events_threshold_median_and_clip_mask():
    frames = np.zeros((151, len(CLASSES)), np.float32)
    frames[10:40, 0] = 0.9  # a 30-step event
    frames[60, 0] = 0.9  # a one-step blip: the 7-step median filter removes it
    frames[100:120, 2] = 0.8  # active frames, but the clip says the class is absent
    clip = np.zeros(len(CLASSES), np.float32)
    clip[0] = 0.8
    events = decode_events(frames, clip, CLASSES)
    assert events == [
        {
            "onset": round(10 * STEP_SECONDS, 3),
            "offset": round(40 * STEP_SECONDS, 3),
            "event_label": CLASSES[0],
        }
    ]
    frames[130:, 0] = 0.9  # from 8.6 s past a 9 s clip's end: cut at its duration
    cut = decode_events(frames, clip, CLASSES, duration=9.0)
    assert max(e["offset"] for e in cut) == 9.0


def test_protocol_keeps_the_best_seeds_on_validation():
    def scores(value: float) -> dict:
        return {"clip_f1_micro": value, "segment_f1_micro": value, "event_f1_macro": value}

    seeds = {
        f"seed-{i:02d}": {"validation": scores(v), "test": scores(t)}
        for i, (v, t) in enumerate([(0.1, 0.9), (0.5, 0.4), (0.7, 0.2), (0.3, 0.6)])
    }
    protocol = select_seeds(seeds, best=2)
    assert protocol["selected"] == ["seed-02", "seed-01"]
    assert protocol["test"]["clip_f1_micro"] == pytest.approx(0.3)
    seeds["seed-01"]["test"]["event_f1_macro"] = None  # sed_eval's undefined score counts 0
    assert select_seeds(seeds, best=2)["test"]["event_f1_macro"] == pytest.approx(0.1)


def test_evaluate_refuses_a_folder_without_a_run(tmp_path):
    from avtool.recipes.sed import evaluate_run

    with pytest.raises(InputError, match="no finished `avtool train sed` run"):
        evaluate_run(tmp_path)
