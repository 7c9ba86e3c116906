"""`avtool prepare lyrics`: the ATL dataset builder, stage by stage, resumable.

Input: a folder of artist files, `<genre>.txt`, one artist per line (`#` starts a comment);
the file's name is the genre. The report's lists (Billboard 2019 year-end, top 10 rap and top
10 country artists) ship in `avtool/resources/lyrics/artists/` (the default).

Stages, each a folder under `--out` with its own `stage.json` and per-item `journal.jsonl`
(`{"id", "status": ok | not_found | retryable, "reason", ...}`, one line per attempt, the
last one counts):

1. `spotify/`: per artist (id `<genre>/<artist>`), the Spotify artist and its top `top_n`
   tracks (id, title, artists, album, duration, ISRC); `tracks.jsonl` lists each track once
   (first genre and artist that brought it), with `genre` and the queried `artist`.
2. `playlists/` (only with `--playlists`): one private Spotify playlist per genre, made for the
   user who grants the `playlist-modify-private` scope; `journal.jsonl` keeps their ids.
3. `youtube/`: per track, a yt-dlp search, the result closest to Spotify's duration
   (`search.jsonl`), its audio as `wav/<track id>.wav` (16 kHz mono).
4. `genius/`: per track with audio, the Genius song (`search.jsonl`, the match recorded) and
   its raw lyrics as `txt/<track id>.txt`.
5. `split/` and the manifest: per genre, the tracks with audio and lyrics, shuffled with the
   seed; with `balance` every genre keeps as many as the smallest has; each genre is cut into
   train/valid/test by the same fractions, so every split is balanced too.

A finished item (ok or not found) is never fetched again; retryable ones (429, 5xx, timeouts,
malformed answers, after the HTTP client's own retries) get `retry_passes` more tries at the
end of the stage and are left for the next run after that. A stage with retryable items is
not stamped, and the build reports them. File names come from Spotify ids, never titles.
Credentials come only from the environment and are never written: the configs stamped in
each folder hold no credentials or base URLs (network settings are not hashed either, so a
resumed run may change timeouts or retries).

Manifest contract (`<out>/manifest.jsonl`, one line per track with audio and lyrics)::

    {"id": spotify track id, "genre": "rap" | "country" (the artist file's name),
     "split": "train" | "valid" | "test", "title", "artist", "duration": seconds,
     "path": wav file (16 kHz mono), "lyrics_path": UTF-8 text file of the raw Genius lyrics
     (section tags like [Chorus: X] kept raw)}

`path` and `lyrics_path` are relative to the manifest's folder. Lines also carry `artists`,
`album`, `isrc`, `spotify_duration`, `youtube_id`, `genius_id`, `genius_url`. Lines are sorted
by genre, split and id. `split/summary.json` counts tracks per genre and split.

Departures from the report: the authors searched YouTube with youtube-search-python and
downloaded with youtube_dl, taking the first result; here yt-dlp searches, and the result is
chosen by duration with poor matches rejected. Their split sizes are not stated; 80/10/10
per genre is the default (`--set split.valid=... split.test=...`).
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from avtool.core.errors import InputError
from avtool.corpora.lyrics.common import OK, ItemRunSummary, run_items
from avtool.corpora.lyrics.genius import GeniusConfig
from avtool.corpora.lyrics.spotify import SpotifyConfig
from avtool.corpora.lyrics.youtube import YoutubeConfig

log = logging.getLogger(__name__)

STAGE_VERSION = 1
DEFAULT_ARTISTS = Path(__file__).resolve().parents[2] / "resources" / "lyrics" / "artists"
SPLITS = ("train", "valid", "test")


@dataclass
class SplitConfig:
    seed: int = 0
    valid: float = 0.1
    test: float = 0.1
    balance: bool = True  # every genre keeps as many tracks as the smallest has


@dataclass
class LyricsBuildConfig:
    spotify: SpotifyConfig = field(default_factory=SpotifyConfig)
    youtube: YoutubeConfig = field(default_factory=YoutubeConfig)
    genius: GeniusConfig = field(default_factory=GeniusConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    retry_passes: int = 1  # extra tries for retryable items at the end of each stage


def _result_config(config: LyricsBuildConfig) -> dict[str, dict[str, Any]]:
    """What changes a stage's results (hashed into its stamp): no network knobs."""
    return {
        "spotify": {k: getattr(config.spotify, k) for k in ("top_n", "market", "min_artist_match")},
        "youtube": {
            k: getattr(config.youtube, k)
            for k in ("candidates", "max_duration_diff", "sample_rate", "channels")
        },
        "genius": {"min_match": config.genius.min_match},
        "split": asdict(config.split),
    }


def read_artist_files(folder: Path) -> dict[str, list[str]]:
    """{genre: [artist, ...]} from `<genre>.txt` files; blank lines and `#` comments skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(
            f"{folder}: artist folder not found; give --artists DIR of <genre>.txt files"
        )
    genres: dict[str, list[str]] = {}
    for path in sorted(folder.glob("*.txt")):
        names = []
        for line in path.read_text(encoding="utf-8").splitlines():
            name = line.split("#", 1)[0].strip()
            if name and name not in names:
                names.append(name)
        if names:
            genres[path.stem] = names
    if not genres:
        raise InputError(f"{folder}: no <genre>.txt file with artists; write one artist per line")
    return genres


def _tracks_from(
    entries: dict[str, dict[str, Any]], artists: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    seen: set[str] = set()
    tracks = []
    for item in artists:
        entry = entries.get(item["id"])
        if not entry or entry.get("status") != OK:
            continue
        for track in entry["tracks"]:
            if track["id"] in seen:
                continue
            seen.add(track["id"])
            tracks.append({**track, "genre": item["genre"], "artist": item["artist"]})
    return tracks


def split_tracks(
    complete: dict[str, list[dict[str, Any]]], config: SplitConfig
) -> tuple[dict[str, dict[str, list[dict[str, Any]]]], dict[str, int]]:
    """{genre: {split: tracks}} and the tracks left out to balance the genres, per genre."""
    if not (0 <= config.valid < 1 and 0 <= config.test < 1 and config.valid + config.test < 1):
        raise InputError(
            f"split.valid {config.valid} and split.test {config.test}: each in [0, 1), sum < 1"
        )
    keep = min((len(v) for v in complete.values()), default=0) if config.balance else None
    result: dict[str, dict[str, list[dict[str, Any]]]] = {}
    dropped = {}
    for genre in sorted(complete):
        tracks = sorted(complete[genre], key=lambda t: t["id"])
        random.Random(f"{config.seed}:{genre}").shuffle(tracks)
        count = len(tracks) if keep is None else keep
        dropped[genre] = len(tracks) - count
        tracks = tracks[:count]
        n_test = round(count * config.test)
        n_valid = round(count * config.valid)
        result[genre] = {
            "test": tracks[:n_test],
            "valid": tracks[n_test : n_test + n_valid],
            "train": tracks[n_test + n_valid :],
        }
    return result, dropped


def build_lyrics_dataset(
    artists_dir: Path,
    out: Path,
    config: LyricsBuildConfig,
    *,
    force: bool = False,
    dry_run: bool = False,
    playlists: bool = False,
) -> dict[str, Any]:
    """Run every stage (skipping finished items) and write `<out>/manifest.jsonl`."""
    from avtool.core.journal import write_jsonl
    from avtool.corpora.lyrics import genius, spotify, youtube

    started = time.monotonic()
    out = Path(out)
    genres = read_artist_files(artists_dir)
    results = _result_config(config)
    artist_items = [
        {"id": f"{genre}/{name}", "genre": genre, "artist": name}
        for genre, names in genres.items()
        for name in names
    ]
    if dry_run:
        return {"state": "dry-run", "message": _describe(out, genres)}

    summaries: dict[str, ItemRunSummary] = {}
    tracks: list[dict[str, Any]] = []

    def write_tracks(entries: dict[str, dict[str, Any]]) -> None:
        tracks[:] = _tracks_from(entries, artist_items)
        write_jsonl(out / "spotify" / "tracks.jsonl", tracks)

    summaries["spotify"] = run_items(
        "lyrics.spotify",
        STAGE_VERSION,
        out / "spotify",
        results["spotify"],
        artist_items,
        lambda: spotify.fetcher(config.spotify),
        force=force,
        retry_passes=config.retry_passes,
        outputs=["tracks.jsonl"],
        on_finished=write_tracks,
    )
    if playlists:
        summaries["playlists"] = _make_playlists(out / "playlists", tracks, config, force)

    audio: dict[str, dict[str, Any]] = {}
    summaries["youtube"] = run_items(
        "lyrics.youtube",
        STAGE_VERSION,
        out / "youtube",
        results["youtube"],
        tracks,
        lambda: youtube.fetcher(config.youtube, out / "youtube"),
        force=force,
        retry_passes=config.retry_passes,
        outputs=["search.jsonl", "wav"],
        on_finished=audio.update,
    )
    with_audio = [t for t in tracks if audio.get(t["id"], {}).get("status") == OK]
    texts: dict[str, dict[str, Any]] = {}
    summaries["genius"] = run_items(
        "lyrics.genius",
        STAGE_VERSION,
        out / "genius",
        results["genius"],
        with_audio,
        lambda: genius.fetcher(config.genius, out / "genius"),
        force=force,
        retry_passes=config.retry_passes,
        outputs=["search.jsonl", "txt"],
        on_finished=texts.update,
    )
    summary = _write_manifest(out, tracks, audio, texts, config.split)
    retryable = {
        name: s.counts["retryable"] for name, s in summaries.items() if s.counts.get("retryable")
    }
    return {
        "state": "partial" if retryable else "done",
        "artists": len(artist_items),
        "tracks": len(tracks),
        "audio": sum(1 for t in tracks if audio.get(t["id"], {}).get("status") == OK),
        "lyrics": sum(1 for t in with_audio if texts.get(t["id"], {}).get("status") == OK),
        "manifest": summary["tracks"],
        "fetched": sum(s.fetched for s in summaries.values()),
        "retryable": sum(retryable.values()),
        "seconds": round(time.monotonic() - started, 2),
        "stages": {name: s.counts for name, s in summaries.items()},
    }


def _write_manifest(
    out: Path,
    tracks: list[dict[str, Any]],
    audio: dict[str, dict[str, Any]],
    texts: dict[str, dict[str, Any]],
    config: SplitConfig,
) -> dict[str, Any]:
    from avtool.core import atomic
    from avtool.core.audio import audio_info
    from avtool.core.stage import Stage

    complete: dict[str, list[dict[str, Any]]] = {}
    for track in tracks:
        sound, text = audio.get(track["id"], {}), texts.get(track["id"], {})
        if sound.get("status") == OK and text.get("status") == OK:
            complete.setdefault(track["genre"], []).append(track)
    splits, dropped = split_tracks(complete, config)
    rows = []
    for genre, parts in splits.items():
        for split in SPLITS:
            for track in sorted(parts[split], key=lambda t: t["id"]):
                sound, text = audio[track["id"]], texts[track["id"]]
                wav = out / "youtube" / sound["path"]
                rows.append(
                    {
                        "id": track["id"],
                        "genre": genre,
                        "split": split,
                        "title": track["title"],
                        "artist": track["artist"],
                        "artists": track["artists"],
                        "album": track["album"],
                        "isrc": track["isrc"],
                        "duration": round(audio_info(wav).duration, 3),
                        "spotify_duration": track["duration"],
                        "path": f"youtube/{sound['path']}",
                        "lyrics_path": f"genius/{text['lyrics_path']}",
                        "youtube_id": sound["video_id"],
                        "genius_id": text["genius_id"],
                        "genius_url": text["genius_url"],
                    }
                )
    counts = {
        genre: {split: len(parts[split]) for split in SPLITS} for genre, parts in splits.items()
    }
    summary = {"tracks": len(rows), "per_genre": counts, "dropped_to_balance": dropped}
    stage = Stage("lyrics.split", STAGE_VERSION, out / "split", asdict(config))
    stage.begin(force=True)  # cheap and derived: always rebuilt from the journals
    atomic.write_json(out / "split" / "summary.json", summary)
    text = "".join(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in rows)
    atomic.write_text(out / "split" / "manifest.jsonl", text)
    atomic.write_text(out / "manifest.jsonl", text)
    stage.finish(counts={"tracks": len(rows)}, outputs=["manifest.jsonl", "summary.json"])
    return summary


def _make_playlists(
    out_dir: Path, tracks: list[dict[str, Any]], config: LyricsBuildConfig, force: bool
) -> ItemRunSummary:
    from avtool.corpora.lyrics import spotify
    from avtool.corpora.lyrics.common import Outcome, outcome_of_error

    by_genre: dict[str, list[str]] = {}
    for track in tracks:
        by_genre.setdefault(track["genre"], []).append(
            track["uri"] or f"spotify:track:{track['id']}"
        )
    items = [{"id": genre, "uris": uris} for genre, uris in sorted(by_genre.items())]

    def fetcher():
        client = spotify.user_client(config.spotify)

        def make(item: dict[str, Any]) -> Outcome:
            try:
                playlist = spotify.create_playlist(
                    client, f"avtool atl {item['id']}", item["uris"], "ATL dataset (avtool)"
                )
            except spotify.CredentialsError:
                raise
            except Exception as exc:  # classified: HTTP failures and malformed answers
                return outcome_of_error(exc, "spotify")
            return Outcome(OK, data={"playlist_id": playlist, "tracks": len(item["uris"])})

        return make

    return run_items(
        "lyrics.playlists", STAGE_VERSION, out_dir, {}, items, fetcher, force=force, retry_passes=0
    )


def _describe(out: Path, genres: dict[str, list[str]]) -> str:
    from avtool.core.journal import Journal

    lines = [f"artists: {', '.join(f'{g} {len(n)}' for g, n in genres.items())}"]
    for stage in ("spotify", "youtube", "genius"):
        journal = Journal(out / stage / "journal.jsonl") if (out / stage).is_dir() else None
        if journal is None:
            lines.append(f"{stage}: would run")
            continue
        statuses: dict[str, int] = {}
        for entry in journal.entries.values():
            statuses[entry["status"]] = statuses.get(entry["status"], 0) + 1
        done = ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())) or "nothing yet"
        lines.append(f"{stage}: journaled {done}; a run fetches only the unfinished items")
    return "\n".join(lines)


def prepare_lyrics(
    artists_dir: Path | None,
    out: Path,
    config: LyricsBuildConfig,
    *,
    fake_services: Path | None = None,
    force: bool = False,
    dry_run: bool = False,
    playlists: bool = False,
) -> dict[str, Any]:
    """`build_lyrics_dataset`, optionally against the fake services started in this process.

    `fake_services` is a folder written by `avtool synth lyrics`: its Spotify, YouTube and
    Genius fakes start on 127.0.0.1 (threads), the clients' base URLs and dummy credentials
    are set for the run and restored after, and the artist lists default to its own.
    Genius's politeness pause is 0 there (it is a network setting: no stage reruns for it).
    """
    from dataclasses import replace

    if fake_services is None:
        return build_lyrics_dataset(
            artists_dir or DEFAULT_ARTISTS,
            out,
            config,
            force=force,
            dry_run=dry_run,
            playlists=playlists,
        )
    if playlists:
        raise InputError(
            "--playlists needs a user's consent on the real Spotify; drop it with --fake-services"
        )
    from avtool.synth.lyrics_services import running_fake_services

    config = replace(config, genius=replace(config.genius, sleep_time=0.0))
    with running_fake_services(Path(fake_services)):
        return build_lyrics_dataset(
            artists_dir or Path(fake_services) / "artists",
            out,
            config,
            force=force,
            dry_run=dry_run,
        )
