"""The ATL genre classifier on any lyrics CSV, its evaluation, and its verdict on generated lyrics.

`train_genre` reads a CSV (the report's MetroLyrics `english_cleaned_lyrics.csv` has `index,
song, year, artist, genre, lyrics`), keeps the rows of the configured genres (Country and
Hip-Hop, as the report; names are matched ignoring case and punctuation, and `aliases` maps
others, e.g. the ATL scraper's "rap" to Hip-Hop), cleans the lyrics as the generator's text
(lowercase, no punctuation, no one-letter or digit-bearing words) and splits the rows seeded and
stratified (test 20%: the report's 30,000 / 7,000). Models:
- `lstm`: the report's network (`avtool.models.genre.GenreLSTM`), vocabulary of the 30,000 most
  frequent training words + padding + OOV, sequences of `max_len` words (pre-padded and
  pre-truncated, Keras' defaults; the report gives no length: 500 here), Adam, batch 64,
  3 epochs, no validation-driven stopping (the report had none).
- `tfidf`: TF-IDF + logistic regression (scikit-learn), the linear baseline.

`evaluate_genre` writes `evaluation/results.json` (`accuracy` as a fraction on the held-out
rows, per-class report, confusion matrix) and `confusion.png`. `classify_generated` runs a
trained classifier on `evaluate lyrics`' generated.csv and writes the report's CSV (`Lyric
Generated, Genre, Predicted_Genre, Country Probability, Hip-Hop Probability`) and its confusion
matrix.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avtool.core.errors import ConfigError, InputError
from avtool.train.loop import TrainConfig

MODELS = ("lstm", "tfidf")
TRAIN_VERSION = 1
EVALUATE_VERSION = 1
LYRIC = "Lyric Generated"
DISPLAY = {"lstm": "LSTM (report)", "tfidf": "TF-IDF + logistic regression"}


def _report_train_config() -> TrainConfig:
    return TrainConfig(
        epochs=3, batch_size=64, lr=1e-3, optimizer="adam", device="auto", deterministic=True,
        log_every=1000,
    )  # fmt: skip


@dataclass
class GenreConfig:
    model: str = "lstm"
    genres: list[str] = field(default_factory=lambda: ["Country", "Hip-Hop"])
    aliases: dict[str, str] = field(default_factory=lambda: {"rap": "Hip-Hop"})
    test_size: float = 0.2
    seed: int = 0
    max_words: int = 30_000
    max_len: int = 500
    embedding: int = 100
    units: int = 60
    train: TrainConfig = field(default_factory=_report_train_config)

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ConfigError(f"model={self.model!r}: expected one of {MODELS}")
        if len(self.genres) < 2 or len({_key(g) for g in self.genres}) != len(self.genres):
            raise ConfigError(f"genres={self.genres}: need at least two distinct genres")
        if not 0 < self.test_size < 1:
            raise ConfigError(f"test_size={self.test_size}: must lie strictly between 0 and 1")


def _key(name: str) -> str:
    return "".join(ch for ch in str(name).lower() if ch.isalnum())


def genre_lookup(config: GenreConfig) -> dict[str, str]:
    """Normalised genre name -> class name, for the classes and their aliases."""
    lookup = {_key(g): g for g in config.genres}
    # Aliases to genres outside the chosen classes (e.g. rap -> Hip-Hop for Rock vs Pop) idle.
    lookup.update(
        {_key(a): target for a, target in config.aliases.items() if target in config.genres}
    )
    return lookup


def lyrics_tokens(text: str) -> list[str]:
    """Every word of a song after the report's cleaning, lines joined."""
    from avtool.features.lyrics_text import clean_lyrics

    return [token for line in clean_lyrics(str(text)) for token in line]


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """(header, rows as dicts) of a CSV with fields of any length (whole songs)."""
    import csv
    import sys

    csv.field_size_limit(sys.maxsize)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            return list(reader.fieldnames or []), rows
    except (csv.Error, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable UTF-8 CSV ({exc})") from None


def load_csv(
    path: Path, lyrics_column: str, genre_column: str, config: GenreConfig
) -> tuple[list[list[str]], np.ndarray]:
    """(token lists, class indices) of the CSV's rows in the configured genres, in file order."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: lyrics CSV not found; check --csv")
    header, rows = read_csv(path)
    missing = [c for c in (lyrics_column, genre_column) if c not in header]
    if missing:
        raise InputError(
            f"{path}: no column {', '.join(map(repr, missing))}; columns are {header} "
            "(set --lyrics-column / --genre-column)"
        )
    lookup = genre_lookup(config)
    kept = [
        (row[lyrics_column], lookup[_key(row[genre_column])])
        for row in rows
        if row.get(lyrics_column) and _key(row.get(genre_column) or "") in lookup
    ]
    tokens = [lyrics_tokens(text) for text, _ in kept]
    labels = np.array([config.genres.index(name) for _, name in kept], dtype=np.int64)
    found = np.bincount(labels, minlength=len(config.genres)) if len(labels) else []
    if len(labels) == 0 or min(found) < 2:
        counts = dict(zip(config.genres, map(int, found), strict=False))
        raise InputError(
            f"{path}: too few rows of {config.genres} in column {genre_column!r} ({counts}); "
            "check --genre-column and --genres"
        )
    return tokens, labels


def split_rows(labels: np.ndarray, config: GenreConfig) -> dict[str, np.ndarray]:
    """Seeded, stratified train/test row indices (into the filtered rows)."""
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(labels))
    try:
        train, test = train_test_split(
            rows, test_size=config.test_size, stratify=labels, random_state=config.seed
        )
    except ValueError as exc:
        raise InputError(f"cannot split {len(rows)} rows into train and test: {exc}") from None
    return {"train": np.sort(train), "test": np.sort(test)}


def _sequences(tokenizer, tokens: list[list[str]], max_len: int):
    from avtool.models.genre import pad_sequences

    return pad_sequences([tokenizer.encode(t) for t in tokens], max_len)


def train_genre(
    csv: Path,
    lyrics_column: str,
    genre_column: str,
    out: Path,
    config: GenreConfig,
    force: bool = False,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Fit the classifier; writes split.json, summary.json and final.pt (lstm) / model.pkl."""
    from avtool.core import atomic
    from avtool.core.stage import Stage, describe_status

    out = Path(out)
    stage_config = {
        "columns": {"lyrics": lyrics_column, "genre": genre_column},
        **_as_dict(config),
    }
    stage = Stage("train.genre", TRAIN_VERSION, out, stage_config, [Path(csv)])
    if dry_run:
        return {"state": "dry-run", "message": describe_status(stage, force)}
    if stage.status().state == "done" and not force:
        return {"state": "up-to-date", **_scalars(json.loads((out / "summary.json").read_text()))}
    main_process = int(os.environ.get("RANK", "0")) == 0
    if main_process:
        stage.begin(force=force)
    tokens, labels = load_csv(Path(csv), lyrics_column, genre_column, config)
    split = split_rows(labels, config)
    train = split["train"]
    summary: dict[str, Any] = {
        "model": config.model,
        "csv": str(Path(csv).resolve()),
        "columns": {"lyrics": lyrics_column, "genre": genre_column},
        "classes": list(config.genres),
        "counts": {
            "rows": len(labels),
            **{part: len(index) for part, index in split.items()},
            **{g: int((labels == i).sum()) for i, g in enumerate(config.genres)},
        },
    }
    if config.model == "tfidf":
        import pickle

        from avtool.models.genre import tfidf_baseline

        pipeline = tfidf_baseline(config.seed)
        pipeline.fit([" ".join(tokens[i]) for i in train], labels[train])
        predicted = pipeline.predict([" ".join(tokens[i]) for i in train])
        if main_process:
            atomic.write_bytes(out / "model.pkl", pickle.dumps(pipeline))
        outputs = ["model.pkl"]
    else:
        predicted = _train_lstm(tokens, labels, train, config, out, summary, main_process)
        outputs = ["final.pt", "metrics.jsonl", "tokenizer.json"]
    summary["train_accuracy"] = float((predicted == labels[train]).mean())
    if main_process:
        atomic.write_json(out / "split.json", {k: v.tolist() for k, v in split.items()})
        atomic.write_json(out / "summary.json", summary)
        stage.finish(
            counts={"train_rows": len(train), "test_rows": len(split["test"])},
            outputs=[*outputs, "split.json", "summary.json"],
        )
    return {"state": "done", **_scalars(summary)}


def _as_dict(config: GenreConfig) -> dict[str, Any]:
    from avtool.core.config import to_dict

    return to_dict(config)


def _train_lstm(tokens, labels, train, config, out, summary, main_process) -> np.ndarray:
    import torch
    from torch.utils.data import TensorDataset

    from avtool.features.lyrics_text import Tokenizer
    from avtool.models.genre import GenreLSTM, keras_parameter_count, parameter_count
    from avtool.train.loop import fit

    tokenizer = Tokenizer.fit((tokens[i] for i in train), max_words=config.max_words, oov=True)
    x = _sequences(tokenizer, [tokens[i] for i in train], config.max_len)
    y = torch.from_numpy(labels[train])
    torch.manual_seed(config.seed)
    # The embedding always has max_words + 2 rows, as the report's, however many words exist.
    model = GenreLSTM(config.max_words + 2, config.embedding, config.units, len(config.genres))
    result = fit(
        model, TensorDataset(x, y), config.train, out,
        loss_fn=torch.nn.functional.cross_entropy,
    )  # fmt: skip
    if main_process:
        tokenizer.save(out / "tokenizer.json")
    summary.update(
        parameters={"torch": parameter_count(model), "keras": keras_parameter_count(model)},
        vocabulary_words=len(tokenizer.words),
        epochs_run=result.epochs_run,
        first_train_loss=result.history[0]["train_loss"],
        last_train_loss=result.history[-1]["train_loss"],
    )
    with torch.no_grad():
        return model(x).argmax(dim=1).numpy()


def _scalars(summary: dict[str, Any]) -> dict[str, Any]:
    keys = ("model", "train_accuracy", "epochs_run", "last_train_loss")
    return {k: summary[k] for k in keys if summary.get(k) is not None}


def _run(run: Path) -> tuple[GenreConfig, dict[str, Any]]:
    import yaml

    from avtool.core.config import from_dict

    run = Path(run)
    stamp = run / "stage.json"
    if not stamp.is_file() or not (run / "summary.json").is_file():
        raise InputError(f"{run}: no finished genre run here; run `avtool train genre` first")
    if json.loads(stamp.read_text()).get("name") != "train.genre":
        raise InputError(f"{run}: not an `avtool train genre` run")
    data = yaml.safe_load((run / "config.yaml").read_text())
    data.pop("columns", None)
    return from_dict(GenreConfig, data), json.loads((run / "summary.json").read_text())


def classifier(run: Path):
    """(config, summary, function token lists -> class probabilities [N, classes])."""
    config, summary = _run(run)
    if config.model == "tfidf":
        import pickle

        with open(Path(run) / "model.pkl", "rb") as handle:
            pipeline = pickle.load(handle)  # our own file, written by train_genre

        def predict(tokens: list[list[str]]) -> np.ndarray:
            return pipeline.predict_proba([" ".join(t) for t in tokens])

        return config, summary, predict

    from avtool.features.lyrics_text import Tokenizer
    from avtool.models.genre import GenreLSTM
    from avtool.train import checkpoint

    tokenizer = Tokenizer.load(Path(run) / "tokenizer.json")
    model = GenreLSTM(config.max_words + 2, config.embedding, config.units, len(config.genres))
    model.load_state_dict(checkpoint.load(Path(run) / "final.pt")["model"])
    model.eval()

    def predict(tokens: list[list[str]]) -> np.ndarray:
        x = _sequences(tokenizer, tokens, config.max_len)
        return np.concatenate(
            [model.probabilities(x[i : i + 256]).numpy() for i in range(0, len(x), 256)]
        )

    return config, summary, predict


def _verdict(truth: np.ndarray, probabilities: np.ndarray, classes: list[str]) -> dict[str, Any]:
    from sklearn.metrics import classification_report, confusion_matrix

    predicted = probabilities.argmax(axis=1)
    labels = list(range(len(classes)))
    return {
        "items": len(truth),
        "accuracy": float((predicted == truth).mean()) if len(truth) else None,
        "classification_report": classification_report(
            truth, predicted, labels=labels, target_names=classes, output_dict=True,
            zero_division=0,
        ),
        "confusion": confusion_matrix(truth, predicted, labels=labels).tolist(),
    }  # fmt: skip


def evaluate_genre(run: Path, force: bool = False, dry_run: bool = False) -> dict[str, Any]:
    """Accuracy (fraction) and confusion matrix on the run's held-out rows."""
    from avtool.core import atomic
    from avtool.core.stage import Stage, describe_status
    from avtool.recipes.atl.figures import confusion_figure

    run = Path(run)
    out = run / "evaluation"
    stage = Stage("evaluate.genre", EVALUATE_VERSION, out, {"run": str(run)}, [run / "stage.json"])
    if dry_run:
        return {"state": "dry-run", "message": describe_status(stage, force)}
    config, summary, predict = classifier(run)
    if not stage.begin(force=force):
        return {"state": "up-to-date", **_headline(json.loads((out / "results.json").read_text()))}
    columns = summary["columns"]
    tokens, labels = load_csv(Path(summary["csv"]), columns["lyrics"], columns["genre"], config)
    test = np.array(json.loads((run / "split.json").read_text())["test"], dtype=np.int64)
    if len(test) and test.max() >= len(labels):
        raise InputError(f"{summary['csv']}: changed since {run} was trained; retrain")
    probabilities = predict([tokens[i] for i in test])
    results = {
        "model": config.model,
        "classes": config.genres,
        "train_accuracy": summary.get("train_accuracy"),
        "parameters": summary.get("parameters"),
        **_verdict(labels[test], probabilities, config.genres),
    }
    confusion_figure(
        out / "confusion.png", np.array(results["confusion"]), config.genres,
        f"{DISPLAY[config.model]}: held-out lyrics",
    )  # fmt: skip
    atomic.write_json(out / "results.json", results)
    stage.finish(counts={"items": len(test)}, outputs=["results.json", "confusion.png"])
    return {"state": "done", **_headline(results)}


def _headline(results: dict[str, Any]) -> dict[str, Any]:
    return {k: results[k] for k in ("model", "accuracy", "items") if results.get(k) is not None}


def probability_column(genre: str) -> str:
    return f"{genre} Probability"


def classify_generated(
    run: Path, generated: Path, out: Path, force: bool = False, dry_run: bool = False
) -> dict[str, Any]:
    """The classifier's verdict on generated lyrics (`Lyric Generated`, `Genre` columns)."""
    import csv
    import io

    from avtool.core import atomic
    from avtool.core.stage import Stage, describe_status
    from avtool.recipes.atl.figures import confusion_figure

    run, generated, out = Path(run), Path(generated), Path(out)
    stage = Stage(
        "evaluate.genre-generated", EVALUATE_VERSION, out, {"run": str(run)},
        [run / "stage.json", generated],
    )  # fmt: skip
    if dry_run:
        return {"state": "dry-run", "message": describe_status(stage, force)}
    config, _, predict = classifier(run)
    if not stage.begin(force=force):
        return {"state": "up-to-date", **_headline(json.loads((out / "results.json").read_text()))}
    header, rows = read_csv(generated)
    missing = [c for c in (LYRIC, "Genre") if c not in header]
    if missing:
        raise InputError(
            f"{generated}: no column {missing}; use the generated.csv of `avtool evaluate lyrics`"
        )
    lookup = genre_lookup(config)
    truth_names = [lookup.get(_key(row["Genre"])) for row in rows]
    probabilities = predict([lyrics_tokens(row[LYRIC]) for row in rows])
    table = [
        [row[LYRIC], name or row["Genre"], config.genres[int(p.argmax())], *map(float, p)]
        for row, name, p in zip(rows, truth_names, probabilities, strict=True)
    ]
    known = np.array([name is not None for name in truth_names], dtype=bool)
    truth = np.array([config.genres.index(n) for n in truth_names if n is not None], dtype=np.int64)
    results = {
        "model": config.model,
        "classes": config.genres,
        "classifier_run": str(run),
        "generated": str(generated),
        "unknown_genre_rows": int((~known).sum()),
        **_verdict(truth, probabilities[known], config.genres),
    }
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([LYRIC, "Genre", "Predicted_Genre", *map(probability_column, config.genres)])
    writer.writerows(table)
    atomic.write_text(out / "predictions.csv", buffer.getvalue())
    confusion_figure(
        out / "confusion.png", np.array(results["confusion"]), config.genres,
        f"{DISPLAY[config.model]}: generated lyrics",
    )  # fmt: skip
    atomic.write_json(out / "results.json", results)
    stage.finish(
        counts={"items": len(table)}, outputs=["predictions.csv", "results.json", "confusion.png"]
    )
    return {"state": "done", **_headline(results)}
