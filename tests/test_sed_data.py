"""`prepare dcase2018` on the real metadata (counts and quirks of FACTS.md), on malformed and
DESED-named lists, and `synth dcase2018` in the real format."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from avtool.core.errors import ItemError
from avtool.corpora.dcase2018 import CLASSES, PrepareConfig, parse_filename, prepare_dcase2018

REAL = Path(__file__).resolve().parents[2] / "shared/data/real_samples/dcase2018/metadata"


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    if not (REAL / "train/weak.csv").is_file():
        pytest.skip(f"real DCASE 2018 metadata not found at {REAL}")
    out = tmp_path_factory.mktemp("dcase-real")
    result = prepare_dcase2018(REAL, out, PrepareConfig())
    return out, result


def test_real_counts(real):
    out, result = real
    assert result["state"] == "done"
    assert result["weak_clips"] == 1578
    assert result["test_clips"] == 288
    assert result["test_events"] == 908
    assert result["rejected_rows"] == 0 and _jsonl(out / "rejects.jsonl") == []
    entries = _jsonl(out / "manifest.jsonl")
    assert len(entries) == 1578 + 288
    weak = [e for e in entries if e["split"] == "weak"]
    # FACTS: label occurrences include 3 repeats (Alarm_bell_ringing once, Running_water twice).
    counts = Counter(label for e in weak for label in e["labels"])
    assert counts["Alarm_bell_ringing"] == 206 - 1 and counts["Running_water"] == 345 - 2
    assert counts["Speech"] == 550 and counts["Dog"] == 214 and counts["Blender"] == 134
    assert Counter(len(e["labels"]) for e in weak) == {1: 984 + 2, 2: 519 - 1, 3: 75 - 1}
    assert sum(e["youtube_id"].startswith("-") for e in weak) == 214
    assert sum("_" in e["youtube_id"] for e in weak) == 220
    test = [e for e in entries if e["split"] == "test"]
    events = Counter(ev["event_label"] for e in test for ev in e["events"])
    assert events == {
        "Alarm_bell_ringing": 112,
        "Blender": 40,
        "Cat": 95,
        "Dishes": 122,
        "Dog": 120,
        "Electric_shaver_toothbrush": 28,
        "Frying": 24,
        "Running_water": 76,
        "Speech": 255,
        "Vacuum_cleaner": 36,
    }
    assert all(1 <= len(e["events"]) <= 20 for e in test)
    example = next(e for e in entries if e["id"] == "Y-Zjgm_sZd10_0.000_4.000")
    assert example["youtube_id"] == "-Zjgm_sZd10"
    assert (example["start"], example["end"], example["duration"]) == (0.0, 4.0, 4.0)
    first = next(e for e in test if e["id"] == "Y00pbt6aJV8Y_350.000_360.000")
    assert first["labels"] == ["Vacuum_cleaner"]
    assert first["events"] == [{"onset": 0.0, "offset": 9.971, "event_label": "Vacuum_cleaner"}]
    # The reference list is the released file, byte for byte.
    assert (out / "reference/test.tsv").read_bytes() == (REAL / "test/test.csv").read_bytes()


def test_real_quirks_reported_not_rejected(real):
    out, result = real
    quirks = _jsonl(out / "quirks.jsonl")
    kinds = Counter((q["split"], q["kind"]) for q in quirks)
    assert kinds == {
        ("weak", "unsorted_labels"): 149,
        ("weak", "short_clip"): 29,
        ("weak", "duplicate_label"): 3,
        ("test", "short_clip"): 3,
        ("test", "overlapping_events"): 12,
        ("test", "offset_past_end"): 1,
        ("test", "out_of_order"): 1,
    }
    assert result["quirk_overlapping_events"] == 12 and result["quirk_short_clip"] == 32
    lines = lambda kind: sorted(q["line"] for q in quirks if q["kind"] == kind)  # noqa: E731
    assert lines("duplicate_label") == [681, 1050, 1505]
    assert lines("offset_past_end") == [804]
    assert lines("out_of_order") == [831]
    overlapping = [q for q in quirks if q["kind"] == "overlapping_events"]
    assert {q["id"] for q in overlapping} == {
        "Y2DF8mtDke8k_460.000_470.000",
        "Y5qx1HGIWJww_170.000_180.000",
        "Y6PwBeL3Abl8_60.000_70.000",
        "Y4trGKbbTmC4_30.000_40.000",
    }
    short_test = sorted(
        q["id"] for q in quirks if q["kind"] == "short_clip" and q["split"] == "test"
    )
    assert short_test == [
        "Y0lNm9pXXHxA_0.000_9.000",
        "Y4h_PCLPoqXE_0.000_5.000",
        "YI_qBcFL7rys_0.000_3.000",
    ]
    durations = Counter(
        q["detail"].split(" ")[0]
        for q in quirks
        if q["kind"] == "short_clip" and q["split"] == "weak"
    )
    assert durations == {"9": 8, "4": 6, "6": 4, "7": 4, "5": 4, "8": 2, "3": 1}


def test_parse_filename_splits_on_the_last_two_underscores():
    parsed = parse_filename("Y_-a_b-c_d_e_30.000_40.000.wav")
    assert parsed["youtube_id"] == "_-a_b-c_d_e"
    assert (parsed["start"], parsed["end"], parsed["id"]) == (
        30.0,
        40.0,
        "Y_-a_b-c_d_e_30.000_40.000",
    )
    for bad, why in [
        ("Yabc_0.000_10.000.wav", "11 characters"),
        ("Xabcdefghijk_0_10.wav", "Y<YouTube id>"),
        ("Yabcdefghijk_10_10.wav", "empty"),
        ("Yabcdefghijk_0_10.mp3", ".wav"),
    ]:
        with pytest.raises(ItemError, match=why):
            parse_filename(bad)


def _write(root: Path, name: str, text: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_malformed_rows_go_to_rejects_and_the_rest_is_kept(tmp_path):
    metadata = tmp_path / "metadata"
    _write(
        metadata,
        "train/weak.csv",
        "filename\tevent_labels\n"
        "Yaaaaaaaaaaa_0.000_10.000.wav\tDog;Cat\n"  # the readme's semicolons
        "Ybbbbbbbbbbb_0.000_10.000.wav\tDog,Unicorn\n"  # unknown class
        "Ycccccccccc_0.000_10.000.wav\tDog\n"  # 10-character id
        "Yddddddddddd_0.000_10.000.wav\n"  # one field
        "Yaaaaaaaaaaa_0.000_10.000.wav\tDog\n",  # listed twice
    )
    _write(
        metadata,
        "train/unlabel_in_domain.csv",
        "filename\nYeeeeeeeeeee_5.000_15.000.wav\n",
    )
    _write(
        metadata,
        "test/test.csv",
        "filename\tonset\toffset\tevent_label\n"
        "Yfffffffffff_0.000_10.000.wav\t1.000\t2.000\tSpeech\n"
        "Yfffffffffff_0.000_10.000.wav\t3.000\t\tSpeech\n"  # half empty: the clip goes too
        "Yggggggggggg_0.000_10.000.wav\t0.500\t1.500\tCat\n"
        "Yaaaaaaaaaaa_0.000_10.000.wav\t0.500\t1.500\tCat\n",  # already a weak clip
    )
    # DESED names for the eval list; an empty row is a clip without events.
    _write(
        metadata,
        "eval/public.tsv",
        "filename\tonset\toffset\tevent_label\n"
        "Yhhhhhhhhhhh_0.000_10.000.wav\t\t\t\n"
        "Yiiiiiiiiiii_0.000_10.000.wav\t1.000\t2.000\tDog\n"
        "Yjjjjjjjjjjj_0.000_10.000.wav\t1.000\t2.000\tCat\n"
        "Yiiiiiiiiiii_0.000_10.000.wav\t\t\t\n",  # apart from its first row, and empty
    )
    out = tmp_path / "out"
    result = prepare_dcase2018(tmp_path, out, PrepareConfig(), max_reject_rate=0.9)
    entries = {e["id"]: e for e in _jsonl(out / "manifest.jsonl")}
    assert sorted(entries) == [
        "Yaaaaaaaaaaa_0.000_10.000",
        "Yeeeeeeeeeee_5.000_15.000",
        "Yggggggggggg_0.000_10.000",
        "Yhhhhhhhhhhh_0.000_10.000",
        "Yiiiiiiiiiii_0.000_10.000",
        "Yjjjjjjjjjjj_0.000_10.000",
    ]
    assert entries["Yiiiiiiiiiii_0.000_10.000"]["labels"] == ["Dog"]
    quirks = {(q["kind"], q["line"]) for q in _jsonl(out / "quirks.jsonl")}
    assert quirks == {("unsorted_labels", 2), ("split_rows", 5), ("empty_row_beside_events", 5)}
    assert entries["Yaaaaaaaaaaa_0.000_10.000"]["labels"] == ["Cat", "Dog"]
    assert entries["Yaaaaaaaaaaa_0.000_10.000"]["split"] == "weak"
    assert entries["Yeeeeeeeeeee_5.000_15.000"]["split"] == "unlabel_in_domain"
    assert entries["Yhhhhhhhhhhh_0.000_10.000"] == {
        "id": "Yhhhhhhhhhhh_0.000_10.000",
        "filename": "Yhhhhhhhhhhh_0.000_10.000.wav",
        "youtube_id": "hhhhhhhhhhh",
        "start": 0.0,
        "end": 10.0,
        "duration": 10.0,
        "split": "eval",
        "labels": [],
        "events": [],
    }
    rejects = _jsonl(out / "rejects.jsonl")
    reasons = {(r["split"], r["line"], r["kind"]): r["reason"] for r in rejects}
    assert "unknown class 'Unicorn'" in reasons[("weak", 3, "row")]
    assert "11 characters" in reasons[("weak", 4, "row")]
    assert "1 fields, expected 2" in reasons[("weak", 5, "row")]
    assert "listed twice" in reasons[("weak", 6, "row")]
    assert "all given or all empty" in reasons[("test", 3, "row")]
    assert "already listed in split weak" in reasons[("test", 5, "row")]
    assert "left out" in reasons[("test", 2, "clip")]
    assert result["rejected_rows"] == 6 and result["rows"] == 14
    assert (out / "reference/eval.tsv").read_text().splitlines()[1] == (
        "Yhhhhhhhhhhh_0.000_10.000.wav\t\t\t"
    )


def test_fails_past_max_reject_rate(cli, tmp_path):
    _write(
        tmp_path,
        "train/weak.csv",
        "filename\tevent_labels\nYaaaaaaaaaaa_0.000_10.000.wav\tDog\nbad.wav\tDog\n",
    )
    code, _, err = cli("prepare", "dcase2018", "--metadata", tmp_path, "--out", tmp_path / "o")
    assert code == 1 and "1 of 2 items rejected" in err and "rejects.jsonl" in err
    assert "is not Y<YouTube id>_<start>_<end>.wav" in err
    code, out, _ = cli(
        "prepare", "dcase2018", "--metadata", tmp_path, "--out", tmp_path / "o2",
        "--max-reject-rate", "0.5",
    )  # fmt: skip
    assert code == 0 and "weak_clips 1" in out
    code, _, err = cli(
        "prepare", "dcase2018", "--metadata", tmp_path / "none", "--out", tmp_path / "o3"
    )
    assert code == 2 and "train/weak.csv" in err
    bad_header = tmp_path / "h"
    _write(
        bad_header, "train/weak.csv", "filename,event_labels\nYaaaaaaaaaaa_0.000_10.000.wav,Dog\n"
    )
    code, _, err = cli("prepare", "dcase2018", "--metadata", bad_header, "--out", tmp_path / "o4")
    assert code == 2 and "tab-separated" in err


def test_synth_metadata_has_the_real_format_and_quirks(tmp_path):
    from avtool.synth.dcase2018 import synth_dcase2018

    out = tmp_path / "synth"
    stamp = synth_dcase2018(out, clips=40, seed=3, media=False)
    assert stamp["counts"]["clips"] == 40
    weak = (out / "metadata/train/weak.csv").read_bytes()
    assert weak.startswith(b"filename\tevent_labels\n") and weak.endswith(b"\n")
    assert b"\r" not in weak and b";" not in weak
    assert (
        (out / "metadata/test/test.csv")
        .read_text()
        .startswith("filename\tonset\toffset\tevent_label\n")
    )
    prepared = tmp_path / "prepared"
    result = prepare_dcase2018(out / "metadata", prepared, PrepareConfig())
    assert result["rejected_rows"] == 0
    for kind in (
        "duplicate_label",
        "unsorted_labels",
        "short_clip",
        "offset_past_end",
        "overlapping_events",
        "out_of_order",
    ):
        assert result[f"quirk_{kind}"] >= 1, kind
    entries = _jsonl(prepared / "manifest.jsonl")
    assert {e["split"] for e in entries} == {"weak", "unlabel_in_domain", "test"}
    assert any(e["youtube_id"].startswith("-") for e in entries)
    assert any("_" in e["youtube_id"] for e in entries)
    assert any(e["split"] == "test" and not e["events"] for e in entries)
    truth: dict[str, set[str]] = {}
    for line in (out / "truth/strong.tsv").read_text().splitlines()[1:]:
        name, _, _, label = line.split("\t")
        truth.setdefault(name[:-4], set()).add(label)
    for entry in entries:
        if entry["split"] == "unlabel_in_domain":
            assert entry["labels"] == [] and truth[entry["id"]]
        else:
            assert set(entry["labels"]) == truth.get(entry["id"], set()), entry["id"]
        assert set(entry["labels"]) <= set(CLASSES)
    assert not (out / "media").exists()
    assert synth_dcase2018(out, clips=40, seed=3, media=False) is None  # up to date
