"""Train the ATL lyric generator and evaluate it with BLEU on token lists.

`train_lyrics` fits `avtool.models.lyrics.LyricsGenerator` on the training songs of a
`features lyrics-text` stage and their clips in a `features lyrics-audio` store, validating on
the `valid` songs each epoch. A batch is a few songs with all their lines: each song's clip
goes through the audio encoder once and its lines are teacher-forced, which optimises the
report's loss over every prefix -> next-word pair (see the model's docstring). The report
trained 60 epochs with Adam (lr unstated: Adam's 1e-3 here); its batch size is unstated.

`evaluate_lyrics` on a split (test by default):
- BLEU: for each line, the model is given its song's clip, `startseq` and the line's first
  word, and continues greedily (dropout off) up to the longest training line; the continuation
  is scored against the rest of the line, as token lists (sacrebleu corpus BLEU with
  tokenize="none", and the mean of NLTK's smoothed sentence BLEU). The authors scored raw
  strings character by character, which measures spelling, not words.
- Generated lyrics: `lines_per_song` lines per song sampled from `startseq` alone (seeded,
  temperature and top-k), so only the audio says which song it is; one row per line (the
  report classified generated sentences) in `generated.csv`, for `evaluate genre-generated`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avtool.core.errors import ConfigError, InputError
from avtool.models.lyrics import GeneratorConfig
from avtool.train.loop import TrainConfig

TRAIN_VERSION = 1
EVALUATE_VERSION = 1


def _report_train_config() -> TrainConfig:
    return TrainConfig(
        epochs=60, batch_size=8, lr=1e-3, optimizer="adam", device="auto", log_every=1000
    )


@dataclass
class LyricsTrainConfig:
    model: GeneratorConfig = field(default_factory=GeneratorConfig)
    train: TrainConfig = field(default_factory=_report_train_config)


@dataclass
class LyricsEvalConfig:
    split: str = "test"
    lines_per_song: int = 8
    temperature: float = 1.0
    top_k: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        if self.split not in ("train", "valid", "test"):
            raise ConfigError(f"split={self.split!r}: expected train, valid or test")
        if self.lines_per_song < 1 or self.top_k < 0 or self.temperature <= 0:
            raise ConfigError("lines_per_song >= 1, top_k >= 0 and temperature > 0 are needed")


# --- data -----------------------------------------------------------------------------------


def _songs_with_audio(text_dir: Path, features: Path) -> tuple[list[dict], Any]:
    """(songs of the text stage that have a clip in the store, their clips by id)."""
    import numpy as np

    from avtool.core.store import FeatureStore
    from avtool.features.lyrics_text import read_songs

    songs = read_songs(text_dir)
    with FeatureStore(features) as store:
        if store.attrs.get("extractor") != "lyrics-audio":
            raise InputError(
                f"{features}: made by {store.attrs.get('extractor')!r}, not lyrics-audio; "
                "run `avtool features lyrics-audio`"
            )
        kept = [song for song in songs if song["id"] in store]
        clips = {song["id"]: np.asarray(store[song["id"]], dtype=np.float32) for song in kept}
    return kept, clips


class SongLines:
    """Songs as (clip [n_mels, frames], encoded wrapped lines): one item per song."""

    def __init__(self, songs: list[dict], clips: dict, tokenizer) -> None:
        import torch

        from avtool.features.lyrics_text import wrap

        self.items = []
        for song in songs:
            lines = [tokenizer.encode(wrap(line)) for line in song["lines"]]
            lines = [line for line in lines if len(line) >= 2]
            if lines:
                self.items.append((torch.from_numpy(clips[song["id"]]), lines))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        return self.items[index]


def collate_songs(batch: list) -> tuple:
    """(clips [S, n_mels, frames], tokens [L, T] post-padded with 0, song of each line [L])."""
    import torch

    clips = torch.stack([clip for clip, _ in batch])
    lines = [(song, line) for song, (_, song_lines) in enumerate(batch) for line in song_lines]
    width = max(len(line) for _, line in lines)
    tokens = torch.zeros(len(lines), width, dtype=torch.long)
    for row, (_, line) in enumerate(lines):
        tokens[row, : len(line)] = torch.tensor(line)
    return clips, tokens, torch.tensor([song for song, _ in lines])


def _token_loss(model, batch, reduction: str = "mean"):
    import torch

    clips, tokens, song = batch
    logits = model(clips, tokens[:, :-1], song)
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1),
        ignore_index=0, reduction=reduction,
    ), logits  # fmt: skip


def _step(model, teacher, batch):
    loss, _ = _token_loss(model, batch)
    return loss


def _evaluate(model, teacher, batches) -> dict[str, float]:
    loss_sum, correct, tokens = 0.0, 0, 0
    for batch in batches:
        loss, logits = _token_loss(model, batch, reduction="sum")
        target = batch[1][:, 1:]
        mask = target != 0
        loss_sum += float(loss)
        correct += int(((logits.argmax(dim=-1) == target) & mask).sum())
        tokens += int(mask.sum())
    return {"loss": loss_sum / max(tokens, 1), "accuracy": correct / max(tokens, 1)}


# --- training -------------------------------------------------------------------------------


def train_lyrics(
    text_dir: Path,
    features: Path,
    out: Path,
    config: LyricsTrainConfig,
    force: bool = False,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Fit the generator; writes final.pt, metrics.jsonl, tokenizer.json and summary.json."""
    import shutil

    import torch

    from avtool.core import atomic
    from avtool.core.stage import Stage, describe_status
    from avtool.features.lyrics_text import Tokenizer
    from avtool.models.lyrics import LyricsGenerator, parameter_count
    from avtool.train.loop import fit

    text_dir, features, out = Path(text_dir), Path(features), Path(out)
    stage = Stage("train.lyrics", TRAIN_VERSION, out, config, [text_dir, features])
    if dry_run:
        return {"state": "dry-run", "message": describe_status(stage, force)}
    if stage.status().state == "done" and not force:
        return {"state": "up-to-date", **_scalars(json.loads((out / "summary.json").read_text()))}
    main_process = int(os.environ.get("RANK", "0")) == 0
    if main_process:
        stage.begin(force=force)
    tokenizer = Tokenizer.load(text_dir / "tokenizer.json")
    songs, clips = _songs_with_audio(text_dir, features)
    parts = {
        split: SongLines([s for s in songs if s["split"] == split], clips, tokenizer)
        for split in ("train", "valid")
    }
    if not len(parts["train"]):
        raise InputError(f"{text_dir}: no training song has a clip in {features}")
    torch.manual_seed(config.train.seed)
    model = LyricsGenerator(tokenizer.size, config.model)
    result = fit(
        model,
        parts["train"],
        config.train,
        out,
        step_fn=_step,
        val_set=parts["valid"] if len(parts["valid"]) else None,
        evaluate_fn=_evaluate if len(parts["valid"]) else None,
        collate_fn=collate_songs,
    )
    history = result.history
    summary = {
        "text": str(text_dir.resolve()),
        "features": str(features.resolve()),
        "vocabulary": tokenizer.size,
        "songs": {split: len(part) for split, part in parts.items()},
        "parameters": parameter_count(model),
        "epochs_run": result.epochs_run,
        "first_train_loss": history[0]["train_loss"],
        "last_train_loss": history[-1]["train_loss"],
        "first_val_loss": history[0].get("val_loss"),
        "last_val_loss": history[-1].get("val_loss"),
        "longest_line": max(len(line) for _, lines in parts["train"].items for line in lines),
    }
    if main_process:
        shutil.copyfile(text_dir / "tokenizer.json", out / "tokenizer.json")
        atomic.write_json(out / "summary.json", summary)
        stage.finish(
            counts={"train_songs": len(parts["train"]), "epochs": result.epochs_run},
            outputs=["final.pt", "metrics.jsonl", "tokenizer.json", "summary.json"],
        )
    return {"state": "done", **_scalars(summary)}


def _scalars(summary: dict[str, Any]) -> dict[str, Any]:
    keys = ("vocabulary", "epochs_run", "first_train_loss", "last_train_loss", "last_val_loss")
    return {k: summary[k] for k in keys if summary.get(k) is not None}


def load_generator(run: Path):
    """(model in eval mode, tokenizer, run config, summary) of a finished `train lyrics` run."""
    import yaml

    from avtool.core.config import from_dict
    from avtool.features.lyrics_text import Tokenizer
    from avtool.models.lyrics import LyricsGenerator
    from avtool.train import checkpoint

    run = Path(run)
    stamp = run / "stage.json"
    if not stamp.is_file() or json.loads(stamp.read_text()).get("name") != "train.lyrics":
        raise InputError(f"{run}: no finished `avtool train lyrics` run here; train first")
    config = from_dict(LyricsTrainConfig, yaml.safe_load((run / "config.yaml").read_text()))
    tokenizer = Tokenizer.load(run / "tokenizer.json")
    model = LyricsGenerator(tokenizer.size, config.model)
    model.load_state_dict(checkpoint.load(run / "final.pt")["model"])
    model.eval()
    return model, tokenizer, config, json.loads((run / "summary.json").read_text())


# --- evaluation -----------------------------------------------------------------------------


def evaluate_lyrics(
    run: Path, config: LyricsEvalConfig, force: bool = False, dry_run: bool = False
) -> dict[str, Any]:
    """BLEU of greedy line continuations and sampled lyrics per song, in RUN/evaluation-<split>."""
    import csv
    import io

    import torch

    from avtool.core import atomic
    from avtool.core.stage import Stage, describe_status
    from avtool.features.lyrics_text import END, START
    from avtool.metrics.bleu import corpus_bleu, mean_sentence_bleu
    from avtool.models.lyrics import encode_clip, generate_batch

    run = Path(run)
    out = evaluation_dir(run, config.split)
    stage = Stage("evaluate.lyrics", EVALUATE_VERSION, out, config, [run / "stage.json"])
    if dry_run:
        return {"state": "dry-run", "message": describe_status(stage, force)}
    if not (run / "stage.json").is_file():
        raise InputError(f"{run}: no finished `avtool train lyrics` run here; train first")
    if not stage.begin(force=force):
        return {"state": "up-to-date", **_headline(json.loads((out / "results.json").read_text()))}
    model, tokenizer, _, summary = load_generator(run)
    songs, clips = _songs_with_audio(Path(summary["text"]), Path(summary["features"]))
    songs = [s for s in songs if s["split"] == config.split]
    if not songs:
        raise InputError(f"{run}: no {config.split} song with lyrics and a clip to evaluate on")
    start, end = tokenizer.index[START], tokenizer.index[END]
    longest = summary["longest_line"]
    generator = torch.Generator().manual_seed(config.seed)
    hypotheses, references, records, rows = [], [], [], []
    with torch.no_grad():
        for song in songs:
            clip = encode_clip(model, torch.from_numpy(clips[song["id"]]))
            lines = [line for line in song["lines"] if len(line) > 1 and line[0] in tokenizer.index]
            seeds = [[start, tokenizer.index[line[0]]] for line in lines]
            continued = generate_batch(model, clip, seeds, end, longest) if seeds else []
            for line, ids in zip(lines, continued, strict=True):
                hypothesis = tokenizer.decode(ids)
                hypotheses.append(hypothesis)
                references.append([line[1:]])
                records.append({
                    "id": song["id"], "genre": song["genre"], "seed": line[0],
                    "reference": " ".join(line[1:]), "generated": " ".join(hypothesis),
                })  # fmt: skip
            sampled = generate_batch(
                model, clip, [[start]] * config.lines_per_song, end, longest, strategy="sample",
                temperature=config.temperature, top_k=config.top_k or None, generator=generator,
            )  # fmt: skip
            sampled = [" ".join(tokenizer.decode(ids)) for ids in sampled]
            rows += [[song["id"], song["genre"], line] for line in sampled if line]
    if not hypotheses:
        raise InputError(f"{run}: the {config.split} songs have no line of two known words")
    results = {
        "split": config.split,
        "songs": len(songs),
        "lines": len(hypotheses),
        "bleu_corpus": corpus_bleu(hypotheses, references),
        "bleu_sentence_mean": mean_sentence_bleu(hypotheses, references),
        "exact_lines": sum(h == r[0] for h, r in zip(hypotheses, references, strict=True)),
        "parameters": summary["parameters"],
    }
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["id", "Genre", "Lyric Generated"])
    writer.writerows(rows)
    atomic.write_text(out / "generated.csv", buffer.getvalue())
    atomic.write_text(
        out / "generations.jsonl",
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records),
    )
    atomic.write_json(out / "results.json", results)
    stage.finish(
        counts={"songs": len(songs), "lines": len(hypotheses)},
        outputs=["results.json", "generations.jsonl", "generated.csv"],
    )
    return {"state": "done", **_headline(results)}


def evaluation_dir(run: Path, split: str) -> Path:
    """Where `evaluate_lyrics` writes for `split`: RUN/evaluation-<split>."""
    return Path(run) / f"evaluation-{split}"


def _headline(results: dict[str, Any]) -> dict[str, Any]:
    keys = ("split", "songs", "lines", "bleu_corpus", "bleu_sentence_mean")
    return {k: results[k] for k in keys}
