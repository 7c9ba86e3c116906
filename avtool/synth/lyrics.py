"""Synthetic ATL catalog: two genres, their artists, tracks, YouTube audio and Genius lyrics.

`synth_lyrics` writes what the fake services (`avtool.synth.lyrics_services`) answer from:

- `catalog.json`: per track the Spotify fields (22-character base62 id, title, artists,
  album, duration, ISRC), the YouTube search results for it (the right video, whose duration
  is within a second of Spotify's, and a decoy a minute off) and the Genius song (id, title,
  primary artist, `https://genius.com/...-lyrics` URL, raw lyrics with `[Verse 1: X]` tags);
- `media/<youtube id>.wav`: the audio, 16-bit 16 kHz mono, 35-40 s long so that the authors'
  10 s clip at 25 s exists;
- `artists/<genre>.txt`: one artist per line, the builder's `--artists` input.

The genres differ the way the report's data does, in miniature. Vocabulary: each genre draws
most words from its own list (street, money, flow / truck, river, whiskey) and some from a
shared one. Audio: rap is a fast beat (140-160 BPM, hi-hats in eighths, a kick and an
808-like sub-bass glide, 45-70 Hz: low timbre); country is slower (76-100 BPM) strummed chords
of plucked-string tones (ten harmonics at 1/k, decaying faster the higher they are) with a
brushed snare on 2 and 4.

Per genre `songs_per_genre` tracks reach the manifest, plus one track whose only YouTube
results are far off its Spotify duration (the builder must reject it: "not found"). Titles
exercise the builder: one per genre carries a featuring credit and "- Remastered 2019" that
the Genius search must drop; artist names and titles include non-ASCII letters, and one title
has "/" and ".." in it (files are named by ids, never titles).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from avtool.core.errors import InputError

STAGE_VERSION = 1
SAMPLE_RATE = 16000
GENRES = ("rap", "country")
TRACKS_PER_ARTIST = 4

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_YOUTUBE_CHARS = _BASE62 + "-_"


def _words(text: str) -> list[str]:
    return text.split()


VOCABULARY = {
    "rap": _words(
        "money block flow hustle rhyme street cash crew grind beat mic hood chain whip drip "
        "bars hater stack paper fame gang trap boss hustlin spittin cypher verse realest "
        "dollar diamond corner squad rollin flexin game bag hunnid grindin ice jewels"
    ),
    "country": _words(
        "truck road whiskey porch river dirt boots church heart town summer field guitar "
        "tractor mama beer honky tonk dusty gravel barn cowboy rodeo creek sunset county "
        "hometown fishin pickup hay prairie fiddle banjo harvest tailgate moonshine"
    ),
}
SHARED_WORDS = _words(
    "i you we the my your in on all night love baby know never gonna got way life time "
    "back down up feel like when"
)

_ARTIST_NAMES = {
    "rap": ["Lil Vexo", "MC Torrent", "Young Ñico", "Kid Bandana", "Big Sora", "DJ Krave"],
    "country": ["Dusty Crane", "Zoë Harlan", "The Holler Boys", "Wade Colter", "June Ashby"],
}
_TITLE_WORDS = {
    "rap": _words("Gold Night Racks Pressure Ice Pulse Corner Crown Motion Static Flex Echo"),
    "country": _words("Dirt Road River Porch Whiskey Sunday Prairie Harvest Creek Fireflies"),
}


def _random_id(rng: np.random.Generator, length: int, alphabet: str) -> str:
    return "".join(alphabet[i] for i in rng.integers(0, len(alphabet), size=length))


def _isrc(rng: np.random.Generator) -> str:
    registrant = _random_id(rng, 3, _BASE62[10:36])
    return f"US{registrant}19{int(rng.integers(0, 100000)):05d}"


def _lyric_line(rng: np.random.Generator, genre: str) -> str:
    words = [
        str(rng.choice(VOCABULARY[genre])) if rng.random() < 0.65 else str(rng.choice(SHARED_WORDS))
        for _ in range(int(rng.integers(5, 9)))
    ]
    return " ".join(words).capitalize()


def _lyrics(rng: np.random.Generator, genre: str, artist: str, featured: str | None) -> str:
    chorus = [_lyric_line(rng, genre) for _ in range(4)]
    sections = [
        (f"[Verse 1: {artist}]", [_lyric_line(rng, genre) for _ in range(8)]),
        (f"[Chorus: {artist}]", chorus),
        (f"[Verse 2: {featured or artist}]", [_lyric_line(rng, genre) for _ in range(8)]),
        ("[Chorus]", chorus),
    ]
    return "\n\n".join("\n".join([tag, *lines]) for tag, lines in sections)


def _genius_path(artist: str, title: str) -> str:
    slug = "-".join("".join(c if c.isalnum() else " " for c in f"{artist} {title}").split())
    return f"{slug}-lyrics"


def build_catalog(songs_per_genre: int, seed: int) -> dict[str, Any]:
    """The catalog as data: artists per genre, and per track every service's view of it."""
    if songs_per_genre < 1:
        raise InputError(f"--songs-per-genre {songs_per_genre}: must be at least 1")
    rng = np.random.default_rng(seed)
    genius_id = 1000
    catalog: dict[str, Any] = {"seed": seed, "sample_rate": SAMPLE_RATE, "genres": {}}
    for genre in GENRES:
        count = songs_per_genre + 1  # the last one has no YouTube match
        artists_needed = math.ceil(count / TRACKS_PER_ARTIST)
        names = list(_ARTIST_NAMES[genre])
        while len(names) < artists_needed:
            names.append(f"{names[len(names) % len(_ARTIST_NAMES[genre])]} {len(names)}")
        artists = [
            {"id": _random_id(rng, 22, _BASE62), "name": name} for name in names[:artists_needed]
        ]
        # Distinct titles: Genius pages are named by artist and title.
        vocabulary = _TITLE_WORDS[genre]
        pairs = [(a, b) for a in vocabulary for b in vocabulary if a != b]
        order = rng.permutation(len(pairs))
        tracks = []
        for number in range(count):
            artist = artists[number % artists_needed]
            words = pairs[order[number % len(pairs)]]
            title = f"{words[0]} {words[1]}"
            if number >= len(pairs):
                title = f"{title} {number // len(pairs) + 1}"
            genius_title = title
            featured = None
            if number == 1:
                others = [a for a in artists if a is not artist]
                featured = (
                    others[0]
                    if others
                    else {"id": _random_id(rng, 22, _BASE62), "name": "Guest Star"}
                )
                title = f"{title} (feat. {featured['name']}) - Remastered 2019"
            elif number == 2:
                title = genius_title = f"{title} ../Ü/.."
            duration_ms = int(rng.integers(35500, 40000))
            video_duration = round(duration_ms / 1000 + float(rng.uniform(-0.8, 0.8)))
            video_id = _random_id(rng, 11, _YOUTUBE_CHARS)
            decoy = {
                "id": _random_id(rng, 11, _YOUTUBE_CHARS),
                "title": f"{artist['name']} - {genius_title} (1 hour loop)",
                "duration": video_duration + 64,
            }
            unmatched = number == count - 1
            videos = (
                [decoy]
                if unmatched
                else [
                    decoy,
                    {
                        "id": video_id,
                        "title": f"{artist['name']} - {genius_title} (Official Audio)",
                        "duration": video_duration,
                        "media": True,
                    },
                ]
            )
            genius_id += 1
            tracks.append(
                {
                    "id": _random_id(rng, 22, _BASE62),
                    "name": title,
                    "artists": [artist] + ([featured] if featured else []),
                    "album": {"id": _random_id(rng, 22, _BASE62), "name": f"{words[1]} Tapes"},
                    "duration_ms": duration_ms,
                    "isrc": _isrc(rng),
                    "popularity": int(rng.integers(40, 100)),
                    "youtube": videos,
                    "audio_seconds": duration_ms / 1000,
                    "audio_seed": int(rng.integers(0, 2**31)),
                    "genius": {
                        "id": genius_id,
                        "title": genius_title,
                        "primary_artist": artist["name"],
                        "path": _genius_path(artist["name"], genius_title),
                        "lyrics": _lyrics(
                            rng, genre, artist["name"], featured["name"] if featured else None
                        ),
                    },
                }
            )
        catalog["genres"][genre] = {"artists": artists, "tracks": tracks}
    return catalog


# --- audio --------------------------------------------------------------------------------


def _add(signal: np.ndarray, start: int, note: np.ndarray) -> None:
    end = min(len(signal), start + len(note))
    if start < end:
        signal[start:end] += note[: end - start]


def _rap_audio(rng: np.random.Generator, seconds: float, sr: int) -> np.ndarray:
    n = int(seconds * sr)
    y = np.zeros(n)
    bpm = float(rng.uniform(140, 160))
    beat = 60.0 / bpm
    t = np.arange(int(0.45 * sr)) / sr
    kick = np.sin(2 * np.pi * (50 * t + 60 * (1 - np.exp(-t * 30)) / 30)) * np.exp(-t * 9)
    hat_len = int(0.04 * sr)
    root = float(rng.uniform(45, 70))
    for index in range(int(seconds / beat) + 1):
        start = int(index * beat * sr)
        _add(y, start, 0.9 * kick)
        for half in (0, 1):
            hat = rng.standard_normal(hat_len) * np.exp(-np.arange(hat_len) / (0.008 * sr))
            hat = np.diff(hat, prepend=0.0)  # a crude high-pass: hats are bright noise
            _add(y, start + int(half * beat / 2 * sr), 0.25 * hat)
        if index % 4 == 0:
            length = int(min(4 * beat, 1.6) * sr)
            tb = np.arange(length) / sr
            freq = root * (1 + 0.5 * np.exp(-tb * 12))  # the 808's downward glide
            phase = 2 * np.pi * np.cumsum(freq) / sr
            _add(y, start, 0.7 * np.sin(phase) * np.exp(-tb * 1.2))
    return y


def _pluck(freq: float, seconds: float, sr: int) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    tone = np.zeros_like(t)
    for k in range(1, 11):
        if k * freq < sr / 2:
            tone += np.sin(2 * np.pi * k * freq * t) / k * np.exp(-t * (2.0 + 1.5 * k))
    return tone


def _country_audio(rng: np.random.Generator, seconds: float, sr: int) -> np.ndarray:
    n = int(seconds * sr)
    y = np.zeros(n)
    bpm = float(rng.uniform(76, 100))
    beat = 60.0 / bpm
    key = float(rng.uniform(98, 147))
    progression = [(1, 1.25, 1.5), (4 / 3, 5 / 3, 2), (1.5, 15 / 8, 9 / 4), (1, 1.25, 1.5)]
    snare_len = int(0.12 * sr)
    plucks: dict[float, np.ndarray] = {}  # a song repeats a dozen notes: render each once
    for index in range(int(seconds / beat) + 1):
        start = int(index * beat * sr)
        chord = progression[(index // 4) % len(progression)]
        for string, ratio in enumerate((*chord, 2 * chord[0])):
            # A strum: strings a few milliseconds apart.
            if ratio not in plucks:
                plucks[ratio] = 0.25 * _pluck(key * ratio, beat * 1.5, sr)
            _add(y, start + int(string * 0.012 * sr), plucks[ratio])
        if index % 2 == 1:
            noise = rng.standard_normal(snare_len) * np.exp(-np.arange(snare_len) / (0.03 * sr))
            _add(y, start, 0.1 * noise)
    return y


def render_audio(genre: str, seconds: float, seed: int, sr: int = SAMPLE_RATE) -> np.ndarray:
    """One track's audio in [-1, 1]: the genre's beat and timbre, with light noise."""
    rng = np.random.default_rng(seed)
    y = _rap_audio(rng, seconds, sr) if genre == "rap" else _country_audio(rng, seconds, sr)
    y += 0.003 * rng.standard_normal(len(y))
    return 0.8 * y / max(1e-9, float(np.max(np.abs(y))))


def synth_lyrics(
    out: Path,
    songs_per_genre: int = 12,
    seed: int = 0,
    force: bool = False,
    dry_run: bool = False,
) -> dict[str, Any] | str | None:
    """Write the catalog, its audio and the artist files under `out`; None if up to date.

    Resumable: each file is written atomically and deterministically from the seed, so a
    rerun after a kill writes only what is missing.
    """
    import soundfile

    from avtool.core import atomic
    from avtool.core.stage import Stage, describe_status

    out = Path(out)
    config = {"songs_per_genre": songs_per_genre, "seed": seed, "sample_rate": SAMPLE_RATE}
    stage = Stage("synth.lyrics", STAGE_VERSION, out, config)
    if dry_run:
        return describe_status(stage, force)
    catalog = build_catalog(songs_per_genre, seed)
    if not stage.begin(force):
        return None
    media = out / "media"
    media.mkdir(parents=True, exist_ok=True)
    atomic.sweep_temporaries(media)
    seconds = 0.0
    for genre, data in catalog["genres"].items():
        lines = "".join(f"{artist['name']}\n" for artist in data["artists"])
        atomic.write_text(out / "artists" / f"{genre}.txt", f"# synthetic {genre} artists\n{lines}")
        for track in data["tracks"]:
            for video in track["youtube"]:
                path = media / f"{video['id']}.wav"
                if not video.get("media") or path.exists():
                    continue
                audio = render_audio(genre, track["audio_seconds"], track["audio_seed"])
                seconds += len(audio) / SAMPLE_RATE
                pcm = np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16)
                with atomic.atomic_path(path) as tmp:
                    soundfile.write(tmp, pcm, SAMPLE_RATE, format="WAV", subtype="PCM_16")
    atomic.write_text(out / "catalog.json", json.dumps(catalog, indent=1, ensure_ascii=False))
    tracks = sum(len(d["tracks"]) for d in catalog["genres"].values())
    return stage.finish(
        counts={"tracks": tracks, "manifest_tracks": tracks - len(GENRES)},
        outputs=["catalog.json", "media", "artists"],
        audio_seconds_written=round(seconds, 1),
    )


def load_catalog(root: Path) -> dict[str, Any]:
    """The catalog `synth_lyrics` wrote under `root`."""
    path = Path(root) / "catalog.json"
    if not path.is_file():
        raise InputError(
            f"{path}: no synthetic lyrics catalog; run `avtool synth lyrics --out {root}`"
        )
    return json.loads(path.read_text(encoding="utf-8"))
