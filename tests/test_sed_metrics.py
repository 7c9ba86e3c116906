"""SED scores: `evaluate_event_lists` equals sed_eval called directly with the paper's settings,
on the real DCASE 2018 test list against a perturbed copy; list reading; `evaluate sed`."""

from __future__ import annotations

import csv
import json
import random
import warnings
from pathlib import Path

import pytest

from avtool.metrics.sed import HEADLINE, evaluate_event_lists, read_event_list

REAL = Path(__file__).resolve().parents[2] / "shared/data/real_samples/dcase2018/metadata"
TEST_CSV = REAL / "test/test.csv"
CLASSES = [
    "Alarm_bell_ringing",
    "Blender",
    "Cat",
    "Dishes",
    "Dog",
    "Electric_shaver_toothbrush",
    "Frying",
    "Running_water",
    "Speech",
    "Vacuum_cleaner",
]


def _needs_real() -> None:
    if not TEST_CSV.is_file():
        pytest.skip(f"real DCASE 2018 metadata not found at {REAL}")


def _perturb(rows: list[dict], seed: int = 7) -> list[dict]:
    """Shifted onsets and offsets, dropped, added and relabelled events."""
    rng = random.Random(seed)
    out = []
    for row in rows:
        if rng.random() < 0.15:
            continue
        onset = max(0.0, float(row["onset"]) + rng.uniform(-0.4, 0.4))
        offset = max(onset + 0.05, float(row["offset"]) + rng.uniform(-0.4, 0.4))
        label = row["event_label"] if rng.random() > 0.1 else rng.choice(CLASSES)
        out.append(
            {"filename": row["filename"], "onset": onset, "offset": offset, "event_label": label}
        )
        if rng.random() < 0.1:
            start = rng.uniform(0, 9)
            out.append(
                {
                    "filename": row["filename"],
                    "onset": start,
                    "offset": start + rng.uniform(0.3, 1.0),
                    "event_label": rng.choice(CLASSES),
                }
            )
    return out


def _sed_eval_directly(reference: Path, estimated: Path) -> dict[str, float]:
    """The DCASE recipe written out by hand: per reference file, the paper's settings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import dcase_util
        import sed_eval

    def load(path: Path) -> list[dict]:
        with path.open() as handle:
            return [
                {
                    "filename": r["filename"],
                    "onset": float(r["onset"]),
                    "offset": float(r["offset"]),
                    "event_label": r["event_label"],
                }
                for r in csv.DictReader(handle, delimiter="\t")
            ]

    ref, est = load(reference), load(estimated)
    classes = sorted({r["event_label"] for r in ref + est})
    segment = sed_eval.sound_event.SegmentBasedMetrics(
        event_label_list=classes, time_resolution=1.0
    )
    event = sed_eval.sound_event.EventBasedMetrics(
        event_label_list=classes,
        t_collar=0.2,
        percentage_of_length=0.2,
        empty_system_output_handling="zero_score",
    )
    tagging = sed_eval.audio_tag.AudioTaggingMetrics(tags=classes)
    container = dcase_util.containers.MetaDataContainer
    for name in dict.fromkeys(r["filename"] for r in ref):
        ref_events = container([r for r in ref if r["filename"] == name])
        est_events = container([r for r in est if r["filename"] == name])
        segment.evaluate(ref_events, est_events)
        event.evaluate(ref_events, est_events)
        tagging.evaluate(
            container([{"filename": name, "tags": sorted({e["event_label"] for e in ref_events})}]),
            container([{"filename": name, "tags": sorted({e["event_label"] for e in est_events})}]),
        )
    return {
        "clip_f1_micro": tagging.results_overall_metrics()["f_measure"]["f_measure"],
        "segment_f1_micro": segment.results_overall_metrics()["f_measure"]["f_measure"],
        "segment_error_rate": segment.results_overall_metrics()["error_rate"]["error_rate"],
        "event_f1_macro": event.results_class_wise_average_metrics()["f_measure"]["f_measure"],
        "event_f1_micro": event.results_overall_metrics()["f_measure"]["f_measure"],
        "per_class_event_f1": {
            name: value["f_measure"]["f_measure"]
            for name, value in event.results_class_wise_metrics().items()
        },
    }


def test_real_test_list_against_perturbed_copy_equals_sed_eval(tmp_path):
    _needs_real()
    with TEST_CSV.open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert len(rows) == 908
    perturbed = _perturb(rows)
    estimated = tmp_path / "estimated.tsv"
    # Columns in another order, as other tools write them.
    lines = ["event_label\toffset\tfilename\tonset"]
    lines += [
        f"{r['event_label']}\t{r['offset']:.3f}\t{r['filename']}\t{r['onset']:.3f}"
        for r in perturbed
    ]
    estimated.write_text("\n".join(lines) + "\n")
    reordered = tmp_path / "estimated-plain.tsv"
    lines = ["filename\tonset\toffset\tevent_label"]
    lines += [
        f"{r['filename']}\t{r['onset']:.3f}\t{r['offset']:.3f}\t{r['event_label']}"
        for r in perturbed
    ]
    reordered.write_text("\n".join(lines) + "\n")

    ours = evaluate_event_lists(TEST_CSV, estimated)
    direct = _sed_eval_directly(TEST_CSV, reordered)
    for key in HEADLINE:
        assert ours[key] == pytest.approx(direct[key], abs=1e-6), key
        assert 0.0 < ours[key] < 1.0, key  # a real perturbation: neither perfect nor nothing
    for name, value in direct["per_class_event_f1"].items():
        assert ours["per_class"][name]["event_f1"] == pytest.approx(value, abs=1e-6), name
    assert ours["counts"]["clips"] == 288
    assert ours["counts"]["reference_events"] == 908
    assert ours["counts"]["estimated_events"] == len(perturbed)
    assert ours["settings"]["t_collar"] == 0.2 and ours["settings"]["percentage_of_length"] == 0.2
    assert set(ours["versions"]) == {"sed_eval", "dcase_util"}


def test_hand_counted_scores_and_clips_without_events(tmp_path):
    """Two clips with events and one without: every figure counted by hand."""
    reference = tmp_path / "reference.tsv"
    reference.write_text(
        "filename\tonset\toffset\tevent_label\n"
        "Ya.wav\t0.000\t2.000\tDog\n"
        "Ya.wav\t5.000\t6.000\tCat\n"
        "Yb.wav\t1.000\t3.000\tSpeech\n"
        "Yc.wav\t\t\t\n"
    )
    # No header: filename onset offset event_label. Folders and ".wav" do not matter.
    estimated = tmp_path / "estimated.tsv"
    estimated.write_text(
        "audio/Ya.wav\t0.100\t2.050\tDog\n"  # onset within 200 ms, offset within 200 ms: hit
        "Yb\t1.500\t3.000\tSpeech\n"  # onset 500 ms late: event miss, segment hits
        "Yc.wav\t0.000\t1.000\tCat\n"  # a clip without reference events: false alarm
    )
    rows = read_event_list(estimated)
    assert [r["filename"] for r in rows] == ["audio/Ya.wav", "Yb", "Yc.wav"]
    result = evaluate_event_lists(reference, estimated)
    # Tags: ref {a: Dog, Cat; b: Speech; c: -}, est {a: Dog; b: Speech; c: Cat}: TP 2, FP 1, FN 1.
    assert result["clip_f1_micro"] == pytest.approx(2 / 3)
    # Events: TP 1 (Ya Dog), FP 2 (Yb Speech late, Yc Cat), FN 2 (Ya Cat, Yb Speech).
    assert result["event_f1_micro"] == pytest.approx(2 * 1 / (2 * 1 + 2 + 2))
    # Segments of 1 s: ref active (a,0)(a,1)Dog (a,5)Cat (b,1)(b,2)Speech; est (a,0)(a,1)(a,2)Dog,
    # (b,1)(b,2)Speech, (c,0)Cat: TP 4, FP 2, FN 1.
    assert result["segment_f1_micro"] == pytest.approx(2 * 4 / (2 * 4 + 2 + 1))
    assert result["counts"]["clips"] == 3
    assert result["counts"]["clips_without_reference_events"] == 1
    assert result["classes"] == ["Cat", "Dog", "Speech"]


def test_clip_ids_choose_the_clips(tmp_path):
    reference = tmp_path / "r.tsv"
    reference.write_text(
        "filename\tonset\toffset\tevent_label\nYa.wav\t0\t1\tDog\nYb.wav\t0\t1\tCat\n"
    )
    result = evaluate_event_lists(
        reference,
        [{"filename": "Ya.wav", "onset": 0.0, "offset": 1.0, "event_label": "Dog"}],
        clip_ids=["Ya"],
    )
    assert result["counts"]["clips"] == 1
    assert result["clip_f1_micro"] == 1.0 and result["event_f1_micro"] == 1.0


def test_bad_rows_name_the_file_and_line(tmp_path):
    from avtool.core.errors import InputError

    path = tmp_path / "bad.tsv"
    path.write_text("filename\tonset\toffset\tevent_label\nYa.wav\tzero\t1\tDog\n")
    with pytest.raises(InputError, match=r"bad.tsv:2: onset 'zero'"):
        read_event_list(path)
    path.write_text("filename\tonset\toffset\tevent_label\nYa.wav\t2\t1\tDog\n")
    with pytest.raises(InputError, match=r"bad.tsv:2: offset 1 before onset 2"):
        read_event_list(path)


def test_cli_writes_results_json(cli, tmp_path):
    reference = tmp_path / "r.tsv"
    reference.write_text(
        "filename\tonset\toffset\tevent_label\nYa.wav\t0\t2\tDog\nYb.wav\t3\t4\tCat\n"
    )
    estimated = tmp_path / "e.tsv"
    estimated.write_text("event_label\tfilename\tonset\toffset\nDog\tYa.wav\t0.05\t2.1\n")
    out = tmp_path / "eval"
    code, stdout, _ = cli(
        "evaluate", "sed", "--reference", reference, "--estimated", estimated, "--out", out
    )
    assert code == 0, stdout
    results = json.loads((out / "results.json").read_text())
    for key in HEADLINE:
        assert 0.0 <= results[key] <= 1.0
    assert results["clip_f1_micro"] == pytest.approx(2 / 3)
    assert results["event_f1_micro"] == pytest.approx(2 / 3)
    assert results["versions"]["sed_eval"]
    assert (out / "stage.json").exists()
    code, stdout, _ = cli(
        "evaluate", "sed", "--reference", reference, "--estimated", estimated, "--out", out
    )
    assert code == 0 and "up to date" in stdout
    code, _, err = cli("evaluate", "sed", "--reference", reference, "--out", out)
    assert code == 2 and "--estimated" in err


def test_a_silent_system_scores_zero_and_no_labels_is_an_error(tmp_path):
    from avtool.core.errors import InputError

    reference = tmp_path / "r.tsv"
    reference.write_text("filename\tonset\toffset\tevent_label\nYa.wav\t0\t2\tDog\n")
    silent = tmp_path / "e.tsv"
    silent.write_text("filename\tonset\toffset\tevent_label\n")
    result = evaluate_event_lists(reference, silent)
    assert [result[k] for k in HEADLINE] == [0.0, 0.0, 1.0, 0.0, 0.0]
    nothing = [{"filename": "Ya.wav", "onset": None, "offset": None, "event_label": None}]
    with pytest.raises(InputError, match="nothing to score"):
        evaluate_event_lists(nothing, [])
