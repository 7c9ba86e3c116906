"""ATL end to end through the CLI on a small two-genre fixture: features, generator, BLEU,
genre classifiers on real and generated lyrics, report."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf

RAP = [
    "money",
    "block",
    "flow",
    "hustle",
    "rhyme",
    "street",
    "cash",
    "crew",
    "grind",
    "beat",
    "mic",
    "hood",
    "chain",
]
COUNTRY = [
    "truck",
    "road",
    "whiskey",
    "porch",
    "river",
    "dirt",
    "boots",
    "church",
    "heart",
    "town",
    "field",
    "guitar",
]
SHARED = ["you", "we", "the", "my", "your", "all", "night", "love", "baby", "know", "never"]
SR = 16000


def make_catalog(root, per_genre: int = 5, seconds: float = 2.0, seed: int = 0):
    """Songs in the `prepare lyrics` manifest layout: a low drone for rap, a high tone for
    country (so the clip says the genre), Genius-style lyrics from two vocabularies."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for genre, words, pitch in (("rap", RAP, 60.0), ("country", COUNTRY, 440.0)):
        for k in range(per_genre):
            song_id = f"{genre[:2]}{k:02d}"
            t = np.arange(int(seconds * SR)) / SR
            tone = 0.3 * np.sin(2 * np.pi * pitch * (1 + 0.03 * k) * t)
            sf.write(root / f"{song_id}.wav", tone.astype(np.float32), SR)
            lines = ["[Verse 1: Somebody]"]
            for _ in range(5):
                picks = [rng.choice(words if rng.random() < 0.75 else SHARED) for _ in range(5)]
                lines.append(" ".join(map(str, picks)).capitalize() + ",")
            (root / f"{song_id}.txt").write_text("\n".join(lines), encoding="utf-8")
            split = {per_genre - 1: "test", per_genre - 2: "valid"}.get(k, "train")
            rows.append({
                "id": song_id, "genre": genre, "split": split, "title": f"Song {k}",
                "artist": "Artist", "duration": seconds, "path": f"{song_id}.wav",
                "lyrics_path": f"{song_id}.txt",
            })  # fmt: skip
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root / "manifest.jsonl"


@pytest.fixture(scope="module")
def atl(tmp_path_factory):
    import torch

    from avtool.cli.main import main

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is faster on a shared machine
    root = tmp_path_factory.mktemp("atl")
    manifest = make_catalog(root / "prep")
    csv_path = root / "text" / "songs.csv"
    generated = root / "gen" / "evaluation-test" / "generated.csv"
    fast = ["--device", "cpu", "--set", "train.checkpoint_every=50"]
    steps = [
        ("features", "lyrics-text", "--manifest", manifest, "--out", root / "text"),
        ("features", "lyrics-audio", "--manifest", manifest, "--out", root / "audio",
         "--offset", "0", "--duration", "1"),
        ("train", "lyrics", "--text", root / "text", "--features", root / "audio",
         "--out", root / "gen", "--epochs", "6", "--set", "model.channels=[4,8,8,8]",
         "--set", "train.batch_size=4", "--set", "train.lr=0.003", *fast),
        ("evaluate", "lyrics", "--run", root / "gen", "--lines-per-song", "3"),
        ("train", "genre", "--csv", csv_path, "--lyrics-column", "lyrics", "--genre-column",
         "genre", "--out", root / "lstm", "--epochs", "6", "--set", "train.batch_size=4",
         "--set", "max_len=40", "--set", "train.lr=0.01", *fast),
        ("train", "genre", "--csv", csv_path, "--out", root / "tfidf", "--model", "tfidf"),
        ("evaluate", "genre", "--run", root / "lstm"),
        ("evaluate", "genre", "--run", root / "tfidf"),
        ("evaluate", "genre-generated", "--run", root / "lstm", "--generated", generated,
         "--out", root / "classified-lstm"),
        ("report", "atl", "--lyrics", root / "gen", "--genre", root / "lstm", "--genre",
         root / "tfidf", "--classified", root / "classified-lstm", "--out", root / "report"),
    ]  # fmt: skip
    try:
        for step in steps:
            assert main([str(a) for a in step]) == 0, step
    finally:
        torch.set_num_threads(threads)
    return root


def _json(path):
    return json.loads(path.read_text())


def test_generator_learns_and_is_scored_on_tokens(atl):
    summary = _json(atl / "gen" / "summary.json")
    assert summary["last_train_loss"] < summary["first_train_loss"]
    assert summary["songs"] == {"train": 6, "valid": 2}
    history = [json.loads(x) for x in (atl / "gen" / "metrics.jsonl").read_text().splitlines()]
    assert len(history) == 6 and all("val_loss" in h for h in history)
    results = _json(atl / "gen" / "evaluation-test" / "results.json")
    assert results["songs"] == 2 and results["lines"] == 10
    assert 0 <= results["bleu_corpus"] <= 100 and 0 <= results["bleu_sentence_mean"] <= 1
    records = (atl / "gen" / "evaluation-test" / "generations.jsonl").read_text().splitlines()
    first = json.loads(records[0])
    assert set(first) == {"id", "genre", "seed", "reference", "generated"}
    assert "endseq" not in first["generated"] and "startseq" not in first["generated"]


def test_genre_classifiers_write_accuracy_and_the_reports_csv(atl):
    lstm = _json(atl / "lstm" / "evaluation" / "results.json")
    tfidf = _json(atl / "tfidf" / "evaluation" / "results.json")
    assert lstm["items"] == tfidf["items"] == 2  # 20% of 10 songs, stratified
    assert lstm["accuracy"] >= tfidf["accuracy"] == 1.0
    assert lstm["parameters"] == {"torch": 3_039_202, "keras": 3_038_962}
    assert (atl / "lstm" / "evaluation" / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    with open(atl / "classified-lstm" / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == [
        "Lyric Generated", "Genre", "Predicted_Genre", "Country Probability",
        "Hip-Hop Probability",
    ]  # fmt: skip
    assert {r["Genre"] for r in rows} == {"Country", "Hip-Hop"}  # "rap" mapped to Hip-Hop
    for row in rows:
        total = float(row["Country Probability"]) + float(row["Hip-Hop Probability"])
        assert total == pytest.approx(1.0, abs=1e-5)
    verdict = _json(atl / "classified-lstm" / "results.json")
    assert len(rows) == verdict["items"] and len(verdict["confusion"]) == 2
    assert 4 <= len(rows) <= 6  # 3 sampled lines for each of the 2 test songs, empty ones out


def test_report_gathers_every_result(atl):
    report = (atl / "report" / "report.md").read_text()
    for needle in ("corpus BLEU", "| test | 2 | 10 |", "3,039,202 (Keras 3,038,962)",
                   "### rap", "### country", "figures/generator-loss.png"):  # fmt: skip
        assert needle in report, needle
    assert (atl / "report" / "figures" / "generator-loss.png").stat().st_size > 1000


def test_reruns_are_up_to_date(atl, cli):
    code, out, _ = cli("evaluate", "genre", "--run", atl / "tfidf")
    assert code == 0 and "up to date" in out
    code, out, _ = cli("train", "genre", "--csv", atl / "text" / "songs.csv", "--out",
                       atl / "tfidf", "--model", "tfidf")  # fmt: skip
    assert code == 0 and "up to date" in out


def test_genre_csv_errors_name_the_columns(atl, cli, tmp_path):
    code, _, err = cli("train", "genre", "--csv", atl / "text" / "songs.csv",
                       "--lyrics-column", "text", "--out", tmp_path / "x")  # fmt: skip
    assert code == 2 and "no column 'text'" in err and "lyrics" in err
    code, _, err = cli("train", "genre", "--csv", atl / "text" / "songs.csv", "--genre",
                       "Rock", "--genre", "Pop", "--out", tmp_path / "y")  # fmt: skip
    assert code == 2 and "too few rows" in err
