"""Spotify through spotipy: an artist's top tracks (client credentials), genre playlists.

Credentials: `SPOTIPY_CLIENT_ID` and `SPOTIPY_CLIENT_SECRET` (spotipy's own variables), used
for the client-credentials flow only. The access token lives in memory (spotipy's
`MemoryCacheHandler`): spotipy's default cache would write it to a `.cache` file in the
working directory. Every request goes through avtool's `HttpClient` (service "spotify"):
base URLs from `AVTOOL_SPOTIFY_BASE_URL` (the Web API, default https://api.spotify.com) and
`AVTOOL_SPOTIFY_ACCOUNTS_BASE_URL` (the token endpoint, default https://accounts.spotify.com).

An artist name resolves to the Spotify artist whose name matches it (case, accents and
punctuation aside), else the first result if it is close enough (`min_artist_match`), and the
match is recorded. `GET /artists/{id}/top-tracks` gives up to 10 tracks for a market; Spotify
marks that endpoint deprecated (spotipy warns), so a user of a newer app may find it gone.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from avtool.corpora.lyrics.common import (
    NOT_FOUND,
    OK,
    CredentialsError,
    Outcome,
    comparable,
    http_session,
    outcome_of_error,
    require_env,
    similarity,
)

API_BASE = "https://api.spotify.com"
ACCOUNTS_BASE = "https://accounts.spotify.com"
CREDENTIAL_ENV = ("SPOTIPY_CLIENT_ID", "SPOTIPY_CLIENT_SECRET")
PLAYLIST_SCOPE = "playlist-modify-private"


@dataclass
class SpotifyConfig:
    top_n: int = 10  # tracks per artist, as the report
    market: str = "US"
    min_artist_match: float = 0.85  # name similarity to accept a search result that is not exact
    timeout: float = 10.0
    retries: int = 5


def _base(service: str, default: str) -> str:
    from avtool.core.http import base_url_env

    return (os.environ.get(base_url_env(service)) or default).rstrip("/")


def make_client(config: SpotifyConfig, auth_token: str | None = None) -> Any:
    """A spotipy client on avtool's HttpClient: client credentials, or a user token if given."""
    import spotipy
    from spotipy.cache_handler import MemoryCacheHandler

    from avtool.core.http import HttpClient

    http = HttpClient("spotify", API_BASE, timeout=config.timeout, retries=config.retries)
    session = http_session(http)
    if auth_token is not None:
        client = spotipy.Spotify(auth=auth_token, requests_session=session)
    else:
        values = require_env(
            CREDENTIAL_ENV,
            "spotify",
            "create an app at https://developer.spotify.com/dashboard and export its id and "
            "secret, or run with --fake-services DIR",
        )
        manager = spotipy.SpotifyClientCredentials(
            client_id=values["SPOTIPY_CLIENT_ID"],
            client_secret=values["SPOTIPY_CLIENT_SECRET"],
            requests_session=session,
            requests_timeout=config.timeout,
            cache_handler=MemoryCacheHandler(),
        )
        manager.OAUTH_TOKEN_URL = f"{_base('spotify-accounts', ACCOUNTS_BASE)}/api/token"
        client = spotipy.Spotify(client_credentials_manager=manager, requests_session=session)
        _authenticate(manager)
    client.prefix = f"{http.base_url}/v1/"
    client.requests_timeout = config.timeout
    return client


def _authenticate(manager: Any) -> None:
    """Ask for the token now, so refused credentials stop the stage before any item."""
    from avtool.core.http import HttpError

    try:
        manager.get_access_token(as_dict=False)
    except HttpError as exc:
        if exc.status in (400, 401, 403):
            raise CredentialsError(
                f"spotify: the client-credentials token request was refused (HTTP {exc.status}); "
                "check SPOTIPY_CLIENT_ID and SPOTIPY_CLIENT_SECRET"
            ) from None
        raise


def _track_record(track: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(track["id"]),
        "title": str(track["name"]),
        "artists": [str(a["name"]) for a in track["artists"]],
        "album": str(track["album"]["name"]),
        "duration": track["duration_ms"] / 1000.0,
        "isrc": (track.get("external_ids") or {}).get("isrc"),
        "popularity": track.get("popularity"),
        "uri": track.get("uri"),
    }


def artist_top_tracks(client: Any, name: str, config: SpotifyConfig) -> Outcome:
    """Resolve `name` to an artist and fetch its top tracks; never raises for one artist's
    failure (credentials aside)."""
    try:
        found = client.search(q=f"artist:{name}", type="artist", limit=10)
        candidates = found["artists"]["items"]
        exact = [a for a in candidates if comparable(a["name"]) == comparable(name)]
        chosen = exact[0] if exact else (candidates[0] if candidates else None)
        if chosen is None:
            return Outcome(NOT_FOUND, f"no Spotify artist found for {name!r}")
        match = similarity(chosen["name"], name)
        if not exact and match < config.min_artist_match:
            return Outcome(
                NOT_FOUND,
                f"best Spotify artist {chosen['name']!r} is too far from {name!r} "
                f"(similarity {match} < {config.min_artist_match})",
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            answer = client.artist_top_tracks(chosen["id"], country=config.market)
        tracks = [_track_record(t) for t in answer["tracks"][: config.top_n]]
    except CredentialsError:
        raise
    except Exception as exc:  # classified: HTTP failures and malformed answers
        return outcome_of_error(exc, "spotify")
    return Outcome(
        OK,
        data={
            "artist_id": chosen["id"],
            "artist_name": chosen["name"],
            "artist_match": match,
            "tracks": tracks,
        },
    )


def fetcher(config: SpotifyConfig) -> Callable[[dict[str, Any]], Outcome]:
    """The per-artist fetch of the tracks stage (item: {"id", "genre", "artist"})."""
    client = make_client(config)
    return lambda item: artist_top_tracks(client, item["artist"], config)


def user_client(config: SpotifyConfig) -> Any:
    """A client acting for the user, with the playlist scope (Authorization Code flow).

    spotipy prints the authorization URL and reads the redirect URL back from the terminal
    (`SPOTIPY_REDIRECT_URI` must be registered for the app); the token stays in memory.
    """
    import spotipy
    from spotipy.cache_handler import MemoryCacheHandler

    from avtool.core.http import HttpClient

    values = require_env(
        (*CREDENTIAL_ENV, "SPOTIPY_REDIRECT_URI"),
        "spotify",
        "playlists need a user's consent: export the app's credentials and its registered "
        "redirect URI",
    )
    http = HttpClient("spotify", API_BASE, timeout=config.timeout, retries=config.retries)
    session = http_session(http)
    accounts = _base("spotify-accounts", ACCOUNTS_BASE)
    manager = spotipy.SpotifyOAuth(
        client_id=values["SPOTIPY_CLIENT_ID"],
        client_secret=values["SPOTIPY_CLIENT_SECRET"],
        redirect_uri=values["SPOTIPY_REDIRECT_URI"],
        scope=PLAYLIST_SCOPE,
        open_browser=False,
        cache_handler=MemoryCacheHandler(),
        requests_session=session,
        requests_timeout=config.timeout,
    )
    manager.OAUTH_AUTHORIZE_URL = f"{accounts}/authorize"
    manager.OAUTH_TOKEN_URL = f"{accounts}/api/token"
    client = spotipy.Spotify(auth_manager=manager, requests_session=session)
    client.prefix = f"{http.base_url}/v1/"
    return client


def create_playlist(client: Any, name: str, track_uris: list[str], description: str) -> str:
    """A private playlist of `track_uris` for the current user; returns its id."""
    playlist = client.current_user_playlist_create(name, public=False, description=description)
    for start in range(0, len(track_uris), 100):  # the API takes 100 items per request
        client.playlist_add_items(playlist["id"], track_uris[start : start + 100])
    return str(playlist["id"])
