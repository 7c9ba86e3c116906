"""ATL lyrics text preparation: cleaning, tokenizer and vocabulary, prefix -> next-word pairs.

Cleaning follows the ATL report (§2.1.1): lowercase, punctuation removed, words of one
character and words holding a digit removed; each lyric line becomes one sentence wrapped in
`startseq ... endseq` (the report's Table 2). Where we depart, and why:
- Genius section tags (`[Chorus: Drake]`) are dropped by default. The authors' code removed
  only the brackets, so the tags became words ("chorus drake"), which is why their model learned
  to answer "outro" to `startseq`; `section_tags="words"` keeps that behaviour.
- "Punctuation" is every Unicode punctuation character (category P*), not only ASCII's
  `string.punctuation`: Genius writes curly apostrophes (`I’m`), which ASCII removal keeps.
- lyricsgenius (3.x) artefacts are removed: the `<title> Lyrics` header glued to the first
  line, `You might also like` lines and the trailing `<n>Embed` counter.

The tokenizer is Keras' `Tokenizer` in behaviour: index 0 is padding, words are ranked by
count (ties by first appearance), unknown words are dropped unless an OOV token is set (the
genre classifier sets one: its vocabulary is 30,000 words + padding + OOV).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avtool.core.errors import ConfigError, InputError

START = "startseq"
END = "endseq"
SECTION_TAGS = ("drop", "words")
PAD = "<pad>"
OOV = "<oov>"
TOKENIZER_VERSION = 1

_TAG = re.compile(r"\[[^\]\n]*\]")
_EMBED = re.compile(r"\d*\s*Embed\s*$")
_GENIUS_HEADER = re.compile(r"^.*?\bLyrics(?=\[|$)")
_SPACE = re.compile(r"\s+")


def _strip_punctuation(text: str) -> str:
    return "".join(
        " " if unicodedata.category(ch).startswith("P") and ch not in "'’" else ch for ch in text
    ).translate({ord("'"): None, ord("’"): None})


def clean_line(line: str, section_tags: str = "drop") -> list[str]:
    """Tokens of one lyric line after the report's cleaning (no start/end markers).

    Apostrophes are removed inside words ("I'm" -> "im", as in the report's Table 2); other
    punctuation separates words ("rock-and-roll" -> "rock and roll")."""
    if section_tags not in SECTION_TAGS:
        raise ConfigError(f"section_tags={section_tags!r}: expected one of {SECTION_TAGS}")
    if section_tags == "drop":
        line = _TAG.sub(" ", line)
    text = _strip_punctuation(line.lower())
    return [
        token
        for token in _SPACE.split(text)
        if len(token) > 1 and not any(ch.isdigit() for ch in token)
    ]


def strip_genius_artifacts(text: str) -> str:
    """Text without lyricsgenius' `<title> Lyrics` header, `You might also like` and `Embed`."""
    lines = text.replace("\r\n", "\n").split("\n")
    if lines and _GENIUS_HEADER.match(lines[0]) and "Lyrics" in lines[0]:
        lines[0] = _GENIUS_HEADER.sub("", lines[0], count=1)
    lines = [line for line in lines if line.strip().lower() != "you might also like"]
    if lines:
        lines[-1] = _EMBED.sub("", lines[-1])
    return "\n".join(lines)


def clean_lyrics(text: str, section_tags: str = "drop") -> list[list[str]]:
    """The non-empty cleaned lines of a song's raw lyrics, each a list of tokens."""
    lines = (clean_line(line, section_tags) for line in strip_genius_artifacts(text).split("\n"))
    return [tokens for tokens in lines if tokens]


def wrap(tokens: list[str]) -> list[str]:
    """`startseq` + tokens + `endseq`."""
    return [START, *tokens, END]


def prefix_pairs(sequence: list[Any]) -> list[tuple[list[Any], Any]]:
    """Every (prefix, next word) pair of a wrapped sentence, as the report's Table 2:
    [startseq] -> w1, [startseq, w1] -> w2, ..., [startseq ... wn] -> endseq."""
    return [(sequence[:i], sequence[i]) for i in range(1, len(sequence))]


@dataclass
class Tokenizer:
    """Word <-> index mapping; index 0 is padding, 1 the OOV token when `oov` is on."""

    words: list[str]  # index i + offset holds words[i]
    oov: bool = False

    @property
    def offset(self) -> int:
        return 2 if self.oov else 1

    @property
    def size(self) -> int:
        """Embedding rows: the words plus padding (and OOV)."""
        return len(self.words) + self.offset

    @classmethod
    def fit(
        cls, sentences: Iterable[list[str]], max_words: int | None = None, oov: bool = False
    ) -> Tokenizer:
        """Words ranked by count, ties by first appearance; the `max_words` most frequent."""
        counts: Counter[str] = Counter()
        for sentence in sentences:
            counts.update(sentence)
        ranked = [word for word, _ in counts.most_common(max_words)]
        return cls(ranked, oov)

    def __post_init__(self) -> None:
        self.index = {word: i + self.offset for i, word in enumerate(self.words)}

    def encode(self, tokens: list[str]) -> list[int]:
        """Indices of `tokens`; unknown words become OOV (1), or are dropped without it."""
        if self.oov:
            return [self.index.get(token, 1) for token in tokens]
        return [self.index[token] for token in tokens if token in self.index]

    def decode(self, ids: Iterable[int]) -> list[str]:
        words = []
        for i in ids:
            i = int(i)
            if i >= self.offset and i - self.offset < len(self.words):
                words.append(self.words[i - self.offset])
            elif self.oov and i == 1:
                words.append(OOV)
        return words

    def to_json(self) -> dict[str, Any]:
        return {"version": TOKENIZER_VERSION, "oov": self.oov, "words": self.words}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Tokenizer:
        return cls(list(data["words"]), bool(data.get("oov", False)))

    def save(self, path: str | Path) -> None:
        from avtool.core import atomic

        atomic.write_text(path, json.dumps(self.to_json(), ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(
                f"{path}: not a readable tokenizer file ({exc}); rerun its stage"
            ) from None
        if data.get("version") != TOKENIZER_VERSION or "words" not in data:
            raise InputError(f"{path}: not an avtool tokenizer (version {TOKENIZER_VERSION})")
        return cls.from_json(data)


# --- the stage ------------------------------------------------------------------------------

STAGE_VERSION = 1


@dataclass
class LyricsTextConfig:
    section_tags: str = "drop"  # drop | words (the authors' code)
    min_lines: int = 1  # songs with fewer cleaned lines are rejected

    def __post_init__(self) -> None:
        if self.section_tags not in SECTION_TAGS:
            raise ConfigError(f"section_tags={self.section_tags!r}: expected one of {SECTION_TAGS}")
        if self.min_lines < 1:
            raise ConfigError(f"min_lines={self.min_lines}: must be at least 1")


def _lyrics_file(manifest: Path, item: dict[str, Any]) -> Path:
    if "lyrics_path" not in item:
        raise InputError(
            f"{manifest}: item {item['id']!r} has no lyrics_path; use the manifest of "
            "`avtool prepare lyrics`"
        )
    return (manifest.parent / item["lyrics_path"]).resolve()


def prepare_lyrics_text(
    manifest: Path,
    out: Path,
    config: LyricsTextConfig,
    force: bool = False,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Clean every song's lyrics; fit the vocabulary on the training songs.

    Writes `songs.jsonl` (id, genre, split, title, artist, lines of tokens), `tokenizer.json`
    (startseq/endseq included), `songs.csv` (MetroLyrics-like columns `index, song, year,
    artist, genre, lyrics`, for `avtool train genre`) and `rejects.jsonl` (songs without usable
    lyrics)."""
    import csv
    import io

    from avtool.core import atomic
    from avtool.core.manifest import read_manifest
    from avtool.core.stage import Stage, describe_status

    manifest, out = Path(manifest), Path(out)
    stage = Stage("features.lyrics-text", STAGE_VERSION, out, config, [manifest])
    if dry_run:
        return {"state": "dry-run", "message": describe_status(stage, force)}
    if not stage.begin(force=force):
        return {"state": "up-to-date", **json.loads((out / "stage.json").read_text())["counts"]}
    items = read_manifest(manifest, require=("id", "lyrics_path", "genre", "split"))
    songs, rejects = [], []
    for item in items:
        path = _lyrics_file(manifest, item)
        try:
            raw = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            rejects.append({"id": item["id"], "reason": f"{path}: unreadable ({exc})"})
            continue
        lines = clean_lyrics(raw, config.section_tags)
        if len(lines) < config.min_lines:
            rejects.append(
                {"id": item["id"], "reason": f"{path}: {len(lines)} lines after cleaning"}
            )
            continue
        songs.append({
            "id": item["id"],
            "genre": item["genre"],
            "split": item["split"],
            "title": item.get("title", ""),
            "artist": item.get("artist", ""),
            "lines": lines,
        })  # fmt: skip
    train = [wrap(line) for song in songs if song["split"] == "train" for line in song["lines"]]
    if not train:
        raise InputError(f"{manifest}: no training song with usable lyrics; check the manifest")
    tokenizer = Tokenizer.fit(train)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["index", "song", "year", "artist", "genre", "lyrics"])
    for number, song in enumerate(songs):
        text = "\n".join(" ".join(line) for line in song["lines"])
        writer.writerow([number, song["title"], "", song["artist"], song["genre"], text])
    atomic.write_text(
        out / "songs.jsonl", "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in songs)
    )
    atomic.write_text(out / "songs.csv", buffer.getvalue())
    atomic.write_text(out / "rejects.jsonl", "".join(json.dumps(r) + "\n" for r in rejects))
    tokenizer.save(out / "tokenizer.json")
    counts = {
        "songs": len(songs),
        "rejected": len(rejects),
        "vocabulary": len(tokenizer.words),
        "train_lines": len(train),
        "longest_line": max(len(s) for s in train),
    }
    stage.finish(
        counts=counts, outputs=["songs.jsonl", "songs.csv", "tokenizer.json", "rejects.jsonl"]
    )
    return {"state": "done", **counts}


def read_songs(text_dir: Path) -> list[dict[str, Any]]:
    """The songs of a finished `features lyrics-text` stage."""
    path = Path(text_dir) / "songs.jsonl"
    if not (Path(text_dir) / "stage.json").is_file() or not path.is_file():
        raise InputError(
            f"{text_dir}: no finished lyrics-text stage; run `avtool features lyrics-text`"
        )
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
