"""YouTube through yt-dlp's Python API: search by artist and title, pick by duration, get audio.

Search: yt-dlp's `ytsearchN:<artist> <title>` (flat, no download) lists N results with their
ids, titles and durations. The result whose duration is closest to Spotify's wins; one more
than `max_duration_diff` seconds away is a poor match and the track is "not found" (covers,
hour-long loops and full-album uploads have the right words and the wrong length).
yt-dlp cannot point `ytsearchN:` at another host, so when `AVTOOL_YOUTUBE_BASE_URL` is set the
search is `GET <base>/search?q=&n=` through avtool's HttpClient instead, answering the same
JSON yt-dlp's flat search gives (`entries` of `id`, `title`, `duration`, `url`); the fake
service in `avtool.synth.lyrics_services` serves it, with `url`s to direct media files.

Download: yt-dlp (`bestaudio/best`) fetches the chosen entry's `url` (a watch page in life, a
media file on the fake server, through yt-dlp's generic extractor) into a private temporary
folder; imageio-ffmpeg's ffmpeg then writes `<track id>.wav` (16 kHz mono by default)
atomically. yt-dlp uses its own HTTP stack, so its failures are retried here: the HTTP
status and `Retry-After` are read from the error yt-dlp raises.

The chosen result is journaled (`search.jsonl`) before the download, so a rerun after a kill
neither searches again nor re-downloads a finished track.
"""

from __future__ import annotations

import logging
import os
import random
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from avtool.corpora.lyrics.common import (
    FINISHED,
    NOT_FOUND,
    OK,
    RETRYABLE,
    Outcome,
    file_stem,
    outcome_of_error,
)

log = logging.getLogger(__name__)

WATCH_BASE = "https://www.youtube.com"


@dataclass
class YoutubeConfig:
    candidates: int = 5  # results considered per search
    max_duration_diff: float = 15.0  # seconds from Spotify's duration; more is a poor match
    sample_rate: int = 16000
    channels: int = 1
    timeout: float = 20.0
    retries: int = 4
    backoff: float = 1.0
    max_backoff: float = 60.0


class _YtdlpLog:
    """yt-dlp's messages into logging (redacted), instead of its own stderr printing."""

    def debug(self, message: str) -> None:
        log.debug(self._clean(message))

    def info(self, message: str) -> None:
        log.debug(self._clean(message))

    def warning(self, message: str) -> None:
        log.debug(self._clean(message))  # the outcome carries what matters

    def error(self, message: str) -> None:
        log.debug(self._clean(message))

    @staticmethod
    def _clean(message: str) -> str:
        from avtool.core.http import redact

        return redact(message)


def query_for(track: dict[str, Any]) -> str:
    from avtool.corpora.lyrics.common import clean_title

    return f"{track['artist']} {clean_title(track['title'])}"


def pick_result(
    entries: list[dict[str, Any]], duration: float, max_diff: float
) -> tuple[dict[str, Any] | None, str]:
    """The entry whose duration is closest to `duration`, or None and why."""
    timed = [e for e in entries if isinstance(e.get("duration"), int | float)]
    if not timed:
        return None, f"none of {len(entries)} results has a duration"
    best = min(timed, key=lambda e: abs(float(e["duration"]) - duration))
    diff = abs(float(best["duration"]) - duration)
    if diff > max_diff:
        return None, (
            f"closest of {len(timed)} results is {diff:.0f}s off Spotify's {duration:.0f}s "
            f"(more than {max_diff:g}s)"
        )
    return best, ""


class YoutubeAudio:
    """Search, pick and download for the audio stage; one yt-dlp instance for all items."""

    def __init__(self, config: YoutubeConfig, out_dir: Path) -> None:
        from avtool.core.http import HttpClient, base_url_env
        from avtool.core.journal import Journal

        self.config = config
        self.out_dir = Path(out_dir)
        self.wav_dir = self.out_dir / "wav"
        self.searches = Journal(self.out_dir / "search.jsonl")
        self.search_base = os.environ.get(base_url_env("youtube"))
        self.http = (
            HttpClient("youtube", WATCH_BASE, timeout=config.timeout, retries=config.retries)
            if self.search_base
            else None
        )
        self._random = random.Random()
        self._ydl: Any = None
        # What a killed run left half-done: its download folders and temporary wavs.
        from avtool.core.atomic import sweep_temporaries

        for leftover in self.out_dir.glob(".download-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        sweep_temporaries(self.wav_dir)

    def _youtube_dl(self) -> Any:
        if self._ydl is None:
            import imageio_ffmpeg
            import yt_dlp

            self._ydl = yt_dlp.YoutubeDL(
                {
                    "quiet": True,
                    "no_warnings": True,
                    "noprogress": True,
                    "logger": _YtdlpLog(),
                    "format": "bestaudio/best",
                    "noplaylist": True,
                    "retries": 0,
                    "extractor_retries": 0,
                    "fragment_retries": 0,
                    "socket_timeout": self.config.timeout,
                    "ffmpeg_location": imageio_ffmpeg.get_ffmpeg_exe(),
                    "cachedir": False,
                    "overwrites": True,
                }
            )
        return self._ydl

    # --- search ------------------------------------------------------------------------
    def search(self, query: str) -> list[dict[str, Any]]:
        count = self.config.candidates
        if self.http is not None:
            answer = self.http.get_json("/search", params={"q": query, "n": count})
        else:
            answer = self._with_retries(
                lambda: self._youtube_dl().extract_info(
                    f"ytsearch{count}:{query}", download=False, process=False
                )
            )
        return [dict(e) for e in list(answer.get("entries") or [])[:count]]

    def choose(self, track: dict[str, Any]) -> Outcome:
        """The chosen search result for `track`, journaled; a journaled choice is reused."""
        known = self.searches.entries.get(track["id"])
        if known and known["status"] in FINISHED:
            return Outcome(known["status"], known.get("reason", ""), known.get("video") or {})
        query = query_for(track)
        try:
            entries = self.search(query)
        except Exception as exc:  # classified: HTTP failures and malformed answers
            return _of_ytdlp_error(exc) or outcome_of_error(exc, "youtube")
        best, why = pick_result(entries, track["duration"], self.config.max_duration_diff)
        if best is None:
            outcome = Outcome(NOT_FOUND, f"{query!r}: {why}")
            video = None
        else:
            video = {
                "video_id": str(best["id"]),
                "video_title": str(best.get("title", "")),
                "video_duration": float(best["duration"]),
                "duration_diff": round(abs(float(best["duration"]) - track["duration"]), 2),
                "url": str(best.get("url") or f"{WATCH_BASE}/watch?v={best['id']}"),
            }
            outcome = Outcome(OK, data=video)
        self.searches.record(
            [
                {
                    "id": track["id"],
                    "status": outcome.status,
                    "reason": outcome.reason,
                    "query": query,
                    "video": video,
                }
            ]
        )
        return outcome

    # --- download ----------------------------------------------------------------------
    def fetch(self, track: dict[str, Any]) -> Outcome:
        chosen = self.choose(track)
        if chosen.status != OK:
            return chosen
        stem = file_stem(track["id"])
        target = self.wav_dir / f"{stem}.wav"
        scratch = self.out_dir / f".download-{stem}"
        shutil.rmtree(scratch, ignore_errors=True)
        try:
            try:
                info = self._with_retries(lambda: self._download(chosen.data["url"], scratch))
            except Exception as exc:  # classified: yt-dlp's errors carry the HTTP status
                return _of_ytdlp_error(exc) or outcome_of_error(exc, "youtube")
            files = [p for p in scratch.iterdir() if p.is_file() and not p.name.endswith(".part")]
            if not files:
                return Outcome(RETRYABLE, f"yt-dlp wrote no file for {chosen.data['video_id']}")
            try:
                self._to_wav(files[0], target)
            except _DecodeFailed as exc:
                return Outcome(NOT_FOUND, f"no usable audio in {chosen.data['video_id']}: {exc}")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return Outcome(
            OK,
            data={
                **chosen.data,
                "path": f"wav/{target.name}",
                "extractor": info.get("extractor_key") or info.get("extractor"),
            },
        )

    def _download(self, url: str, scratch: Path) -> dict[str, Any]:
        scratch.mkdir(parents=True, exist_ok=True)
        ydl = self._youtube_dl()
        # Names from a fixed template in a private folder: never from the video's title.
        ydl.params["outtmpl"] = {"default": str(scratch / "media.%(ext)s")}
        # Naming the extractor spares yt-dlp a pass over its ~1800 URL patterns.
        host = (urlsplit(url).hostname or "").lower()
        youtube = host == "youtu.be" or host.endswith("youtube.com")
        return ydl.extract_info(url, download=True, ie_key="Youtube" if youtube else "Generic")

    def _to_wav(self, source: Path, target: Path) -> None:
        """Decode `source` to the configured wav, atomically; `_DecodeFailed` says why not."""
        import imageio_ffmpeg
        import soundfile

        from avtool.core.atomic import atomic_path, fsync_dir

        try:
            found = soundfile.info(str(source))
        except (soundfile.LibsndfileError, RuntimeError):
            found = None
        if (
            found is not None
            and (found.format, found.subtype) == ("WAV", "PCM_16")
            and (found.samplerate, found.channels)
            == (self.config.sample_rate, self.config.channels)
        ):
            # Already what ffmpeg would write: keep the bytes, skip a process start.
            with source.open("rb") as handle:
                os.fsync(handle.fileno())
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
            fsync_dir(target.parent)
            return
        with atomic_path(target) as tmp:
            result = subprocess.run(
                [
                    imageio_ffmpeg.get_ffmpeg_exe(),
                    "-nostdin",
                    "-v",
                    "error",
                    "-y",
                    "-i",
                    str(source),
                    "-vn",
                    "-ac",
                    str(self.config.channels),
                    "-ar",
                    str(self.config.sample_rate),
                    "-c:a",
                    "pcm_s16le",
                    "-f",
                    "wav",
                    str(tmp),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0 or tmp.stat().st_size <= 44:
                problem = (result.stderr.strip().splitlines() or ["empty audio"])[-1]
                raise _DecodeFailed(problem)

    def _with_retries(self, call: Callable[[], Any]) -> Any:
        """`call()` retried on yt-dlp's transient failures, honouring `Retry-After`."""
        from avtool.core.http import redact

        attempt = 0
        while True:
            try:
                return call()
            except Exception as exc:
                outcome = _of_ytdlp_error(exc)
                if outcome is None or outcome.status != RETRYABLE or attempt >= self.config.retries:
                    raise
                wait = _retry_after(exc)
                if wait is None:
                    step = min(self.config.max_backoff, self.config.backoff * 2**attempt)
                    wait = step / 2 + self._random.uniform(0, step / 2)
                wait = min(wait, self.config.max_backoff)
                log.warning(
                    "youtube: %s; retry %d/%d in %.1fs",
                    redact(outcome.reason),
                    attempt + 1,
                    self.config.retries,
                    wait,
                )
                time.sleep(wait)
                attempt += 1


class _DecodeFailed(Exception):
    pass


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and its causes: yt-dlp wraps the HTTP error in `exc_info` and `cause`."""
    seen: list[BaseException] = []
    todo: list[Any] = [exc]
    while todo:
        current = todo.pop()
        if not isinstance(current, BaseException) or any(current is s for s in seen):
            continue
        seen.append(current)
        exc_info = getattr(current, "exc_info", None)
        if isinstance(exc_info, tuple) and len(exc_info) > 1:
            todo.append(exc_info[1])
        todo.extend([getattr(current, "cause", None), current.__cause__, current.__context__])
    return seen


def _status(exc: BaseException) -> int | None:
    """The HTTP status behind a yt-dlp error: from the wrapped error, else from the message
    (its downloader reports "HTTP Error 500: ..." without the response)."""
    for link in _chain(exc):
        status = getattr(link, "status", None)
        if isinstance(status, int):
            return status
        response = getattr(link, "response", None)
        if isinstance(getattr(response, "status", None), int):
            return response.status
    match = re.search(r"HTTP Error (\d{3})", str(exc))
    return int(match.group(1)) if match else None


def _retry_after(exc: BaseException) -> float | None:
    from avtool.core.http import retry_after_seconds

    for link in _chain(exc):
        response = getattr(link, "response", None)
        headers = getattr(response, "headers", None)
        if headers is not None and headers.get("Retry-After"):
            return retry_after_seconds(headers.get("Retry-After"))
    return None


def _of_ytdlp_error(exc: BaseException) -> Outcome | None:
    """How a yt-dlp failure classifies; None for errors that are not yt-dlp's."""
    from avtool.core.http import redact

    module = type(exc).__module__ or ""
    if not module.startswith("yt_dlp"):
        return None
    message = redact(" ".join(str(exc).split()))[:300]
    status = _status(exc)
    if status in (401, 403, 404, 410):
        return Outcome(NOT_FOUND, message)
    if status is not None and (status == 429 or status >= 500):
        return Outcome(RETRYABLE, message)
    transient = ("timed out", "timeout", "connection", "temporarily", "reset by peer", "incomplete")
    if status is None and any(word in message.lower() for word in transient):
        return Outcome(RETRYABLE, message)
    return Outcome(NOT_FOUND, message)


def fetcher(config: YoutubeConfig, out_dir: Path) -> Callable[[dict[str, Any]], Outcome]:
    """The per-track fetch of the audio stage (item: a track record with `artist`)."""
    audio = YoutubeAudio(config, out_dir)
    return audio.fetch
