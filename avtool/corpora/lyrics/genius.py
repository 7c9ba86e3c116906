"""Genius through lyricsgenius: API search by cleaned title and artist, then the lyrics page.

Credentials: `GENIUS_ACCESS_TOKEN` (a client access token of a Genius API app). The search is
the documented API's `GET /search` (lyricsgenius `search_songs`, bearer token); the lyrics come
from the song's web page, scraped by lyricsgenius (`Genius.lyrics`). The title is cleaned
first (`clean_title`: featuring credits, bracketed parts, "- Remastered" suffixes), since
Genius files songs under the bare title. Among the hits, the song with the best title and
artist similarity wins; below `min_match` the track is "not found". The query, the Genius id,
title, artist, URL and both similarities are journaled: the match is on record.

lyricsgenius's requests go through avtool's HttpClient (service "genius"): its session is
replaced and its roots moved to `AVTOOL_GENIUS_BASE_URL` (API, default
https://api.genius.com) and `AVTOOL_GENIUS_WEB_BASE_URL` (pages, default https://genius.com).
lyricsgenius turns a song URL into a page path by stripping "https://genius.com/", so song
URLs keep that form and only the root they are fetched from moves. Lyrics are saved raw:
section tags such as `[Chorus: X]` stay, for the text preparation to decide.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avtool.corpora.lyrics.common import (
    FINISHED,
    NOT_FOUND,
    OK,
    CredentialsError,
    Outcome,
    clean_title,
    file_stem,
    outcome_of_error,
    require_env,
    similarity,
)

API_BASE = "https://api.genius.com"
WEB_BASE = "https://genius.com"
CREDENTIAL_ENV = ("GENIUS_ACCESS_TOKEN",)


@dataclass
class GeniusConfig:
    min_match: float = 0.75  # mean of title and artist similarity to accept a hit
    timeout: float = 10.0
    retries: int = 5
    sleep_time: float = 0.2  # lyricsgenius's pause after each request (rate limiting)


def make_client(config: GeniusConfig) -> Any:
    import lyricsgenius

    from avtool.core.http import HttpClient, base_url_env
    from avtool.corpora.lyrics.common import http_session

    token = require_env(
        CREDENTIAL_ENV,
        "genius",
        "create an API client at https://genius.com/api-clients and export its access token, "
        "or run with --fake-services DIR",
    )["GENIUS_ACCESS_TOKEN"]
    http = HttpClient("genius", API_BASE, timeout=config.timeout, retries=config.retries)
    web = (os.environ.get(base_url_env("genius-web")) or WEB_BASE).rstrip("/")
    client = lyricsgenius.Genius(
        token,
        timeout=config.timeout,
        sleep_time=config.sleep_time,
        retries=0,  # the HttpClient retries
        remove_section_headers=False,
        skip_non_songs=True,
    )
    client._session = http_session(http)
    client.API_ROOT = f"{http.base_url}/"
    client.PUBLIC_API_ROOT = f"{web}/api/"
    client.WEB_ROOT = f"{web}/"
    return client


def best_hit(
    hits: list[dict[str, Any]], title: str, artist: str
) -> tuple[dict[str, Any] | None, float, float]:
    """The song hit matching `title` and `artist` best, with both similarities."""
    best, best_title, best_artist = None, 0.0, 0.0
    for hit in hits:
        if hit.get("type") != "song":
            continue
        song = hit["result"]
        if song.get("instrumental") or song.get("lyrics_state") != "complete":
            continue
        title_match = similarity(song["title"], title)
        artist_match = similarity(song["primary_artist"]["name"], artist)
        if best is None or title_match + artist_match > best_title + best_artist:
            best, best_title, best_artist = song, title_match, artist_match
    return best, best_title, best_artist


class GeniusLyrics:
    """Search, match and page scraping for the lyrics stage."""

    def __init__(self, config: GeniusConfig, out_dir: Path) -> None:
        from avtool.core.journal import Journal

        self.config = config
        self.out_dir = Path(out_dir)
        from avtool.core.atomic import sweep_temporaries

        self.searches = Journal(self.out_dir / "search.jsonl")
        self.client = make_client(config)
        sweep_temporaries(self.out_dir / "txt")  # a killed run's half-written lyrics

    def choose(self, track: dict[str, Any]) -> Outcome:
        known = self.searches.entries.get(track["id"])
        if known and known["status"] in FINISHED:
            return Outcome(known["status"], known.get("reason", ""), known.get("song") or {})
        title = clean_title(track["title"])
        query = f"{title} {track['artist']}"
        try:
            hits = self.client.search_songs(query)["hits"]
            song, title_match, artist_match = best_hit(hits, title, track["artist"])
        except CredentialsError:
            raise
        except Exception as exc:  # classified: HTTP failures and malformed answers
            return outcome_of_error(exc, "genius")
        score = round((title_match + artist_match) / 2, 3)
        if song is None or score < self.config.min_match:
            found = f"best hit {song['full_title']!r} matches {score}" if song else "no song hits"
            outcome = Outcome(NOT_FOUND, f"{query!r}: {found} (< {self.config.min_match})")
            record = None
        else:
            record = {
                "genius_id": song["id"],
                "genius_title": song["title"],
                "genius_artist": song["primary_artist"]["name"],
                "genius_url": song["url"],
                "title_match": title_match,
                "artist_match": artist_match,
                "query": query,
            }
            outcome = Outcome(OK, data=record)
        self.searches.record(
            [
                {
                    "id": track["id"],
                    "status": outcome.status,
                    "reason": outcome.reason,
                    "query": query,
                    "song": record,
                }
            ]
        )
        return outcome

    def fetch(self, track: dict[str, Any]) -> Outcome:
        from avtool.core import atomic

        chosen = self.choose(track)
        if chosen.status != OK:
            return chosen
        try:
            lyrics = self.client.lyrics(song_url=chosen.data["genius_url"])
        except CredentialsError:
            raise
        except Exception as exc:  # classified: HTTP failures and malformed pages
            return outcome_of_error(exc, "genius")
        if not lyrics or not lyrics.strip():
            return Outcome(NOT_FOUND, f"no lyrics section on {chosen.data['genius_url']}")
        target = self.out_dir / "txt" / f"{file_stem(track['id'])}.txt"
        atomic.write_text(target, lyrics.strip("\n") + "\n")
        return Outcome(OK, data={**chosen.data, "lyrics_path": f"txt/{target.name}"})


def fetcher(config: GeniusConfig, out_dir: Path) -> Callable[[dict[str, Any]], Outcome]:
    """The per-track fetch of the lyrics stage (item: a track record with `artist`)."""
    return GeniusLyrics(config, out_dir).fetch
