"""Fake Spotify, YouTube and Genius servers on 127.0.0.1, answering from a synthetic catalog.

Each service is its own `ThreadingHTTPServer` on a free port (they are distinct hosts in life):

- Spotify: `POST /api/token` (the accounts service's client-credentials flow: Basic auth of
  `client_id:client_secret`, `grant_type=client_credentials`; a wrong pair gets the real 400
  `invalid_client`), and the Web API under `/v1`: `GET /v1/search?type=artist`,
  `GET /v1/artists/{id}/top-tracks?market=`, `GET /v1/me`, `POST /v1/me/playlists`,
  `POST /v1/playlists/{id}/items`, in the real JSON shapes (paging objects, simplified
  artist/album objects, `external_ids.isrc`, `{"error": {"status", "message"}}`). A bearer
  token other than the one issued gets 401.
- YouTube: `GET /search?q=&n=` answers the shape yt-dlp gives for `ytsearchN:` with
  `extract_flat` (`{"_type": "playlist", "entries": [{"id", "title", "duration", "url",
  "channel"}]}`), each entry's `url` pointing at `GET /media/<id>.wav` on this server, which
  yt-dlp's generic extractor downloads like any direct media link. yt-dlp's own `ytsearchN:`
  always goes to youtube.com, hence this overridable search endpoint.
- Genius: the API `GET /search?q=` (bearer token; `{"meta": {"status": 200}, "response":
  {"hits": [{"index": "song", "type": "song", "result": {...}}]}}`) whose results carry
  `url: https://genius.com/<path>` like the real ones, and the web page `GET /<path>` with the
  lyrics in `<div data-lyrics-container="true">` blocks and a `LyricsHeader` div, the markup
  lyricsgenius scrapes.

Faults are injected per route and key (`Fault`): 429 with `Retry-After`, 5xx, a delay past
the client's timeout, malformed JSON, or a hold that blocks the request until released (how
tests kill a client mid-request). Every request is counted as received, and as served once
its response was written whole: tests check that no finished item is fetched twice.
"""

from __future__ import annotations

import base64
import html
import json
import secrets
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from avtool.synth.lyrics import load_catalog

DUMMY_CREDENTIALS = {
    "SPOTIPY_CLIENT_ID": "avtool-fake-spotify-client-id",
    "SPOTIPY_CLIENT_SECRET": "avtool-fake-spotify-client-secret",
    "GENIUS_ACCESS_TOKEN": "avtool-fake-genius-access-token",
}


@dataclass
class Fault:
    """What the next matching requests get instead of the normal answer, in order.

    `actions`: "pass" (the normal answer), "429" (with `Retry-After: retry_after`), "500", "502", "503", "timeout" (the
    answer comes after `delay` seconds), "malformed" (200 with broken JSON), "hold" (blocks
    until `released` is set, then hangs up without answering; `held` is set when it starts
    blocking: the client is expected to be killed meanwhile).
    `key` None matches any request of the route.
    """

    service: str
    route: str
    actions: list[str]
    key: str | None = None
    retry_after: str = "1"
    delay: float = 2.0
    held: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def _json(status: int, data: Any) -> _Reply:
    return _Reply(status, json.dumps(data).encode())


def _spotify_error(status: int, message: str) -> _Reply:
    return _json(status, {"error": {"status": status, "message": message}})


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # yt-dlp's generic extractor reads a media file's first bytes and hangs up: expected.
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeLyricsServices:
    """The three fake services over one catalog; a context manager that starts and stops them."""

    def __init__(
        self,
        synth_dir: Path,
        *,
        credentials: dict[str, str] | None = None,
        faults: list[Fault] | None = None,
    ) -> None:
        self.synth_dir = Path(synth_dir)
        self.catalog = load_catalog(self.synth_dir)
        self.credentials = dict(credentials or DUMMY_CREDENTIALS)
        self.faults = list(faults or [])
        self.access_token = secrets.token_urlsafe(24)  # what the token endpoint issues
        self.user_token = secrets.token_urlsafe(24)  # a user token with playlist scope
        self.received: Counter[tuple[str, str, str]] = Counter()
        self.served: Counter[tuple[str, str, str]] = Counter()
        self.playlists: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._index()
        self._servers: dict[str, ThreadingHTTPServer] = {}
        self._threads: list[threading.Thread] = []

    # --- lifecycle -------------------------------------------------------------------
    def start(self) -> FakeLyricsServices:
        for service in ("spotify", "youtube", "genius"):
            server = _QuietServer(("127.0.0.1", 0), self._handler(service))
            self._servers[service] = server
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stopping.set()
        for fault in self.faults:
            fault.released.set()
        for server in self._servers.values():
            server.shutdown()
            server.server_close()

    def __enter__(self) -> FakeLyricsServices:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def url(self, service: str) -> str:
        host, port = self._servers[service].server_address[:2]
        return f"http://{host}:{port}"

    def env(self) -> dict[str, str]:
        """Environment that points avtool's clients here, with the accepted credentials."""
        from avtool.core.http import base_url_env

        return {
            base_url_env("spotify"): self.url("spotify"),
            base_url_env("spotify-accounts"): self.url("spotify"),
            base_url_env("youtube"): self.url("youtube"),
            base_url_env("genius"): self.url("genius"),
            base_url_env("genius-web"): self.url("genius"),
            **self.credentials,
        }

    def secrets(self) -> list[str]:
        """Every credential this fake knows: the configured ones and the tokens it issued."""
        basic = (
            f"{self.credentials['SPOTIPY_CLIENT_ID']}:{self.credentials['SPOTIPY_CLIENT_SECRET']}"
        )
        return [
            *self.credentials.values(),
            base64.b64encode(basic.encode()).decode(),
            self.access_token,
            self.user_token,
        ]

    # --- the catalog, indexed ----------------------------------------------------------
    def _index(self) -> None:
        self.artists: dict[str, dict[str, Any]] = {}
        self.top_tracks: dict[str, list[dict[str, Any]]] = {}
        self.videos: dict[str, dict[str, Any]] = {}
        self.video_search: dict[str, list[dict[str, Any]]] = {}
        self.songs: dict[str, dict[str, Any]] = {}
        for data in self.catalog["genres"].values():
            for artist in data["artists"]:
                self.artists[artist["id"]] = artist
                self.top_tracks.setdefault(artist["id"], [])
            for track in data["tracks"]:
                self.top_tracks[track["artists"][0]["id"]].append(track)
                for video in track["youtube"]:
                    self.videos[video["id"]] = video
                self.video_search[track["id"]] = track["youtube"]
                self.songs[track["genius"]["path"]] = track["genius"]

    def _spotify_track(self, track: dict[str, Any]) -> dict[str, Any]:
        base = "https://api.spotify.com/v1"
        artists = [
            {
                "external_urls": {"spotify": f"https://open.spotify.com/artist/{a['id']}"},
                "href": f"{base}/artists/{a['id']}",
                "id": a["id"],
                "name": a["name"],
                "type": "artist",
                "uri": f"spotify:artist:{a['id']}",
            }
            for a in track["artists"]
        ]
        album = track["album"]
        return {
            "album": {
                "album_type": "album",
                "artists": artists[:1],
                "external_urls": {"spotify": f"https://open.spotify.com/album/{album['id']}"},
                "href": f"{base}/albums/{album['id']}",
                "id": album["id"],
                "images": [],
                "name": album["name"],
                "release_date": "2019-05-17",
                "release_date_precision": "day",
                "total_tracks": 12,
                "type": "album",
                "uri": f"spotify:album:{album['id']}",
            },
            "artists": artists,
            "disc_number": 1,
            "duration_ms": track["duration_ms"],
            "explicit": False,
            "external_ids": {"isrc": track["isrc"]},
            "external_urls": {"spotify": f"https://open.spotify.com/track/{track['id']}"},
            "href": f"{base}/tracks/{track['id']}",
            "id": track["id"],
            "is_local": False,
            "is_playable": True,
            "name": track["name"],
            "popularity": track["popularity"],
            "track_number": 1,
            "type": "track",
            "uri": f"spotify:track:{track['id']}",
        }

    # --- answering ---------------------------------------------------------------------
    def _route(
        self, service: str, method: str, path: str, query: dict[str, str], headers: Any, body: bytes
    ) -> tuple[str, str, _Reply]:
        """(route name, item key, reply) for one request."""
        if service == "spotify":
            return self._spotify(method, path, query, headers, body)
        if service == "youtube":
            return self._youtube(path, query)
        return self._genius(path, query, headers)

    def _spotify(
        self, method: str, path: str, query: dict[str, str], headers: Any, body: bytes
    ) -> tuple[str, str, _Reply]:
        if path == "/api/token" and method == "POST":
            expected = base64.b64encode(
                f"{self.credentials['SPOTIPY_CLIENT_ID']}:"
                f"{self.credentials['SPOTIPY_CLIENT_SECRET']}".encode()
            ).decode()
            form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            if headers.get("Authorization") != f"Basic {expected}":
                reply = _json(
                    400, {"error": "invalid_client", "error_description": "Invalid client"}
                )
            elif form.get("grant_type") != "client_credentials":
                reply = _json(400, {"error": "unsupported_grant_type"})
            else:
                reply = _json(
                    200,
                    {"access_token": self.access_token, "token_type": "Bearer", "expires_in": 3600},
                )
            return "token", "", reply
        bearer = headers.get("Authorization", "")
        user = bearer == f"Bearer {self.user_token}"
        if not user and bearer != f"Bearer {self.access_token}":
            return "auth", path, _spotify_error(401, "Invalid access token")
        parts = [p for p in path.split("/") if p]
        if parts[:2] == ["v1", "search"] and query.get("type") == "artist":
            name = query.get("q", "")
            wanted = name.removeprefix("artist:").strip('"').casefold()
            items = [
                {
                    "external_urls": {"spotify": f"https://open.spotify.com/artist/{a['id']}"},
                    "followers": {"href": None, "total": 1000},
                    "genres": [],
                    "href": f"https://api.spotify.com/v1/artists/{a['id']}",
                    "id": a["id"],
                    "images": [],
                    "name": a["name"],
                    "popularity": 70,
                    "type": "artist",
                    "uri": f"spotify:artist:{a['id']}",
                }
                for a in self.artists.values()
                if wanted and wanted in a["name"].casefold()
            ]
            limit = int(query.get("limit", 10))
            page = {
                "href": f"https://api.spotify.com/v1/search?query={name}&type=artist",
                "items": items[:limit],
                "limit": limit,
                "next": None,
                "offset": 0,
                "previous": None,
                "total": len(items),
            }
            return "artist-search", name, _json(200, {"artists": page})
        if len(parts) == 4 and parts[:2] == ["v1", "artists"] and parts[3] == "top-tracks":
            if "market" not in query and "country" not in query:  # spotipy sends `country`
                return "top-tracks", parts[2], _spotify_error(400, "Missing market parameter")
            if parts[2] not in self.artists:
                return "top-tracks", parts[2], _spotify_error(404, "Resource not found")
            tracks = [self._spotify_track(t) for t in self.top_tracks[parts[2]][:10]]
            return "top-tracks", parts[2], _json(200, {"tracks": tracks})
        if parts == ["v1", "me"] and user:
            return "me", "", _json(200, {"id": "avtool-user", "type": "user"})
        if parts == ["v1", "me", "playlists"] and method == "POST" and user:
            data = json.loads(body or b"{}")
            playlist_id = secrets.token_hex(11)
            self.playlists[playlist_id] = {"name": data.get("name"), "items": []}
            return (
                "playlist-create",
                data.get("name", ""),
                _json(
                    201, {"id": playlist_id, "name": data.get("name"), "public": data.get("public")}
                ),
            )
        if len(parts) == 4 and parts[1] == "playlists" and parts[3] == "items" and user:
            if parts[2] not in self.playlists:
                return "playlist-items", parts[2], _spotify_error(404, "Resource not found")
            self.playlists[parts[2]]["items"].extend(json.loads(body or b"[]"))
            return "playlist-items", parts[2], _json(201, {"snapshot_id": secrets.token_hex(8)})
        if not user and parts[:2] == ["v1", "me"]:
            return "me", "", _spotify_error(403, "Insufficient client scope")
        return "unknown", path, _spotify_error(404, "Service not found")

    def _youtube(self, path: str, query: dict[str, str]) -> tuple[str, str, _Reply]:
        if path == "/search":
            words = query.get("q", "").casefold()
            count = int(query.get("n", 5))
            entries = []
            for data in self.catalog["genres"].values():
                for track in data["tracks"]:
                    title = track["genius"]["title"].casefold()
                    artist = track["artists"][0]["name"].casefold()
                    if title in words and artist in words:
                        entries.extend(track["youtube"])
            found = [
                {
                    "_type": "url",
                    "ie_key": "Youtube",
                    "id": v["id"],
                    "title": v["title"],
                    "duration": v["duration"],
                    "url": f"{self.url('youtube')}/watch?v={v['id']}",
                    "channel": "Synthetic Records - Topic",
                }
                for v in entries[:count]
            ]
            return (
                "search",
                query.get("q", ""),
                _json(200, {"_type": "playlist", "id": query.get("q", ""), "entries": found}),
            )
        if path == "/watch":
            video = self.videos.get(query.get("v", ""))
            if video is None or not video.get("media"):
                page = b"<html><body>This video isn't available anymore</body></html>"
                return "watch", query.get("v", ""), _Reply(404, page, "text/html")
            page = (
                f"<!DOCTYPE html><html><head><title>{html.escape(video['title'])}</title></head>"
                f'<body><video controls src="/media/{video["id"]}.wav"></video></body></html>'
            )
            return "watch", video["id"], _Reply(200, page.encode(), "text/html; charset=utf-8")
        if path.startswith("/media/") and path.endswith(".wav"):
            video_id = path[len("/media/") : -len(".wav")]
            media = self.synth_dir / "media" / f"{video_id}.wav"
            if video_id not in self.videos or not media.is_file():
                return "media", video_id, _Reply(404, b"Video unavailable", "text/plain")
            return "media", video_id, _Reply(200, media.read_bytes(), "audio/wav")
        return "unknown", path, _Reply(404, b"not found", "text/plain")

    def _genius(self, path: str, query: dict[str, str], headers: Any) -> tuple[str, str, _Reply]:
        if path == "/search":
            if headers.get("Authorization") != f"Bearer {self.credentials['GENIUS_ACCESS_TOKEN']}":
                return (
                    "search",
                    "",
                    _json(
                        401,
                        {"meta": {"status": 401, "message": "This call requires an access_token."}},
                    ),
                )
            words = set(query.get("q", "").casefold().split())
            hits = []
            for song in self.songs.values():
                title_words = set(song["title"].casefold().split())
                if title_words and title_words <= words:
                    hits.append(
                        {
                            "highlights": [],
                            "index": "song",
                            "type": "song",
                            "result": {
                                "annotation_count": 0,
                                "full_title": f"{song['title']} by {song['primary_artist']}",
                                "id": song["id"],
                                "instrumental": False,
                                "lyrics_state": "complete",
                                "path": f"/{song['path']}",
                                "primary_artist": {
                                    "id": abs(hash(song["primary_artist"])) % 100000,
                                    "name": song["primary_artist"],
                                    "url": "https://genius.com/artists/x",
                                },
                                "title": song["title"],
                                "title_with_featured": song["title"],
                                "url": f"https://genius.com/{song['path']}",
                            },
                        }
                    )
            return (
                "search",
                query.get("q", ""),
                _json(200, {"meta": {"status": 200}, "response": {"hits": hits[:5]}}),
            )
        song = self.songs.get(unquote(path.lstrip("/")))
        if song is None:
            return (
                "page",
                path,
                _Reply(404, b"<html><body>Page not found</body></html>", "text/html"),
            )
        return (
            "page",
            song["path"],
            _Reply(200, _lyrics_page(song).encode(), "text/html; charset=utf-8"),
        )

    def _fault_for(self, service: str, route: str, key: str) -> tuple[Fault, str] | None:
        with self._lock:
            for fault in self.faults:
                wanted = fault.key is None or fault.key == key
                if fault.service == service and fault.route == route and fault.actions and wanted:
                    return fault, fault.actions.pop(0)
        return None

    def _handler(self, service: str) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handle(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                route, key, reply = fake._route(
                    service, self.command, parts.path, query, self.headers, body
                )
                with fake._lock:
                    fake.received[(service, route, key)] += 1
                injected = fake._fault_for(service, route, key)
                if injected:
                    fault, action = injected
                    if action == "pass":
                        pass
                    elif action == "hold":
                        fault.held.set()
                        fault.released.wait()
                        self.close_connection = True
                        return
                    elif action == "timeout":
                        if fake._stopping.wait(fault.delay):
                            return
                    elif action == "malformed":
                        reply = _Reply(200, reply.body[: max(1, len(reply.body) // 2)])
                    elif action == "429":
                        reply = _json(
                            429, {"error": {"status": 429, "message": "API rate limit exceeded"}}
                        )
                        reply.headers["Retry-After"] = fault.retry_after
                    else:
                        reply = _Reply(int(action), b"upstream failure", "text/plain")
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.content_type)
                    self.send_header("Content-Length", str(len(reply.body)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(reply.body)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    return  # the client hung up: nothing was served
                if reply.status < 400:
                    with fake._lock:
                        fake.served[(service, route, key)] += 1

            do_GET = do_POST = do_HEAD = _serve

            def log_message(self, *args: object) -> None:
                pass

        return Handle


def _lyrics_page(song: dict[str, Any]) -> str:
    """A song page in the markup lyricsgenius scrapes (two lyrics containers, a header)."""
    blocks = song["lyrics"].split("\n\n")
    half = max(1, len(blocks) // 2)
    containers = [
        "\n\n".join(blocks[:half]),
        "\n\n".join(blocks[half:]),
    ]
    containers = [block for block in containers if block]
    # lyricsgenius joins containers as they are: all but the last end in a blank line.
    rendered = "".join(
        '<div data-lyrics-container="true" class="Lyrics__Container-sc-1ynbvzw-1">'
        + "<br/>".join(html.escape(line) for line in block.split("\n"))
        + ("<br/><br/>" if number < len(containers) - 1 else "")
        + "</div>"
        for number, block in enumerate(containers)
    )
    title = html.escape(f"{song['primary_artist']} – {song['title']} Lyrics | Genius Lyrics")
    return (
        f"<!DOCTYPE html><html><head><title>{title}</title></head><body>"
        '<div class="LyricsHeader__Container-sc-1"><h2>'
        f"{html.escape(song['title'])} Lyrics</h2></div>"
        f'<div id="lyrics-root">{rendered}</div></body></html>'
    )


@contextmanager
def running_fake_services(synth_dir: Path) -> Iterator[FakeLyricsServices]:
    """Start the fake services and point this process's environment at them, then restore it.

    The environment gets the base URLs and the dummy credentials the fakes accept.
    """
    import os

    with FakeLyricsServices(synth_dir) as fake:
        saved = {name: os.environ.get(name) for name in fake.env()}
        os.environ.update(fake.env())
        try:
            yield fake
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
