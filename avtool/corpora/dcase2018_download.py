"""DCASE 2018 task 4 clips from their videos: yt-dlp, cut to [start, end], wav + mp4, a journal.

`download_dcase2018(manifest, out, config)` reads the manifest of `prepare dcase2018` and, for
each clip, downloads its video through the yt-dlp Python API (one `YoutubeDL` for the run,
`ffmpeg_location` from imageio-ffmpeg), then cuts [start, end] with that ffmpeg in one pass:
`audio/<id>.wav` (PCM 16-bit, the source's rate and channels) and `video/<id>.mp4` (H.264,
the source's picture, no sound). Both are written under temporary names and renamed, then the
clip's line is appended to `journal.jsonl`:

    {"id", "status": "ok" | "unavailable" | "retryable", "reason", "attempts", "url",
     "seconds" (audio length cut), "path", "video"}

- `unavailable`: the video is gone for good (HTTP 401/404/410/451, yt-dlp's "Video
  unavailable", "Private video" and alike, no audio or video stream, a video that ends before
  the segment). Never tried again.
- `retryable`: the network or the host failed (connection cut, timeout, HTTP 403/408/429/5xx,
  YouTube's bot checks): retried within the run (`attempts`, exponential `backoff`, a
  `Retry-After` honoured up to `max_wait`), and again on the next run if still failing.
- `ok`: both files are on disk; a clip is never downloaded again.

Polite by default: at least `min_interval` seconds between two clips' first requests. The
URL comes from `url_template` (fields `{youtube_id}`, `{id}`, `{start}`, `{end}`,
`{serve_url}`), the YouTube watch URL by default; tests point it at 127.0.0.1. `serve_dir`
serves a folder of `<youtube_id>.mp4` files on 127.0.0.1 for the run (what `synth dcase2018`
writes under `media/`), so the demo exercises this whole path without a network.

At the end: `manifest.jsonl` (the prepare manifest's fields for each `ok` clip, plus `path`
and `video`, both relative to this folder as the house's manifests are, so feature extractors
run on it directly; `read_manifest` resolves `path`, a reader of `video` joins it to the
manifest's folder),
`rejects.jsonl` (the unavailable clips and why: the stage's rejects, judged against
`--max-reject-rate` like every stage's), and `coverage.json` (ok / unavailable /
retryable counts and shares, per split too). The stage is done (stamp written) when no clip
is left retryable and the unavailable share is at most `--max-reject-rate`; otherwise it
raises after writing all of that, and a rerun resumes. The paper lost about 10% of the clips.
The chosen `splits` are part of the stage's config: another choice needs another `--out` (or
`--force`, which starts over). One process downloads, on purpose: hosts throttle parallel
clients, and the journal makes a killed run lose at most the clip in flight.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from avtool.core.errors import InputError, StageFailed

log = logging.getLogger(__name__)

YOUTUBE_URL = "https://www.youtube.com/watch?v={youtube_id}"
STAGE_VERSION = 1
FINAL = ("ok", "unavailable")
# HTTP answers that mean the video will not come back; 408, 429 and 5xx are worth retrying,
# and so is 403, which YouTube's media servers answer to expired or throttled clients.
_GONE_STATUS = frozenset({401, 404, 410, 451})
_RETRY_STATUS = frozenset({403, 408, 425, 429})
_NETWORK_MARKERS = (
    "timed out",
    "timeout",
    "connection",
    "reset by peer",
    "bytes read",
    "giving up after",
    "temporary failure",
    "network is unreachable",
    "name resolution",
    "incompleteread",
    "remote end closed",
    "ssl",
    # YouTube's answers about the client rather than the video: wait, then try again.
    "not a bot",
    "try again later",
    "rate-limit",
    "rate limit",
)


@dataclass
class DownloadConfig:
    """What the files on disk depend on (hashed into the stamp)."""

    format: str = "18/b[height<=480]/bv*[height<=480]+ba/b"  # 360p with sound on YouTube
    splits: list[str] = field(default_factory=list)  # empty: every split of the manifest
    video_codec: str = "libx264"
    video_preset: str = "veryfast"  # x264's speed/size trade-off; the picture quality is the crf's
    video_crf: int = 23


@dataclass
class FetchOptions:
    """How to fetch (not hashed: a rerun may change them and resume)."""

    url_template: str = YOUTUBE_URL
    min_interval: float = 2.0
    attempts: int = 4
    backoff: float = 5.0
    max_wait: float = 120.0
    socket_timeout: float = 30.0
    resume_retries: int = 3  # yt-dlp's own retries of a cut transfer (resumed where it stopped)
    extractor: str = ""  # yt-dlp extractor key; "" lets yt-dlp choose, "Generic" for file hosts
    cookies: str = ""  # a Netscape cookies file for yt-dlp (age-gated or bot-checked videos)


class _Quiet:
    """yt-dlp's logger: its chatter goes to debug, its errors come back as exceptions."""

    def debug(self, message: str) -> None:
        log.debug("yt-dlp: %s", message)

    info = debug

    def warning(self, message: str) -> None:
        log.debug("yt-dlp warning: %s", message)

    def error(self, message: str) -> None:
        log.debug("yt-dlp error: %s", message)


class ClipFailure(Exception):
    """One attempt at a clip failed; `status` says whether it may succeed later."""

    def __init__(self, status: str, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.retry_after = retry_after


def classify(error: BaseException) -> ClipFailure:
    """unavailable or retryable, with the reason and any Retry-After, from a yt-dlp error."""
    from avtool.core.http import retry_after_seconds

    message = " ".join(str(error).replace("ERROR: ", "").replace("\u2019", "'").split())
    cause = getattr(error, "exc_info", None)
    cause = cause[1] if cause and cause[1] is not None else error
    seen = set()
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        status = getattr(cause, "status", None)
        if isinstance(status, int):
            response = getattr(cause, "response", None)
            headers = getattr(response, "headers", None) or {}
            retry_after = retry_after_seconds(headers.get("Retry-After"))
            if status in _GONE_STATUS:
                return ClipFailure("unavailable", f"HTTP {status}: {message}")
            if status in _RETRY_STATUS or status >= 500:
                return ClipFailure("retryable", f"HTTP {status}: {message}", retry_after)
            return ClipFailure("unavailable", f"HTTP {status}: {message}")
        cause = getattr(cause, "cause", None) or cause.__cause__
    if any(marker in message.lower() for marker in _NETWORK_MARKERS):
        return ClipFailure("retryable", message)
    return ClipFailure("unavailable", message)


def clip_url(template: str, clip: dict[str, Any], serve_url: str = "") -> str:
    try:
        return template.format(
            youtube_id=clip["youtube_id"],
            id=clip["id"],
            start=clip["start"],
            end=clip["end"],
            serve_url=serve_url,
        )
    except (KeyError, IndexError, ValueError) as exc:
        raise InputError(
            f"--url-template {template!r}: {exc}; use the fields {{youtube_id}}, {{id}}, "
            "{start}, {end}, {serve_url}"
        ) from None


def cut_clip(
    source: Path,
    start: float,
    end: float,
    wav: Path,
    mp4: Path,
    config: DownloadConfig,
) -> float:
    """Cut [start, end] of `source` into `wav` and `mp4` (atomically); the audio seconds."""
    import av
    import imageio_ffmpeg
    import soundfile

    from avtool.core.atomic import atomic_path

    try:
        with av.open(str(source)) as container:
            has_audio = bool(container.streams.audio)
            has_video = bool(container.streams.video)
            length = float(container.duration or 0) / 1e6
    except av.error.FFmpegError as exc:
        raise ClipFailure("unavailable", f"downloaded file is not a video ({exc})") from None
    if not has_audio or not has_video:
        missing = "an audio" if not has_audio else "a video"
        raise ClipFailure("unavailable", f"the download has no {missing} stream")
    if length and length < start + 0.5 * (end - start):
        raise ClipFailure(
            "unavailable",
            f"the video lasts {length:.2f} s and misses most of the segment {start:g}-{end:g} s",
        )
    with atomic_path(wav) as wav_tmp, atomic_path(mp4) as mp4_tmp:
        command = [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-ss",
            f"{start:.3f}",
            "-i",
            str(source),
            "-t",
            f"{end - start:.3f}",
            "-map",
            "0:a:0",
            "-vn",
            "-c:a",
            "pcm_s16le",
            "-f",
            "wav",
            str(wav_tmp),
            # Output options apply to the next output only: the length again for the video.
            "-t",
            f"{end - start:.3f}",
            "-map",
            "0:v:0",
            "-an",
            "-c:v",
            config.video_codec,
            "-preset",
            config.video_preset,
            "-crf",
            str(config.video_crf),
            "-pix_fmt",
            "yuv420p",
            "-f",
            "mp4",
            str(mp4_tmp),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = " ".join(done.stderr.split())[-300:]
            raise ClipFailure("unavailable", f"ffmpeg could not cut the download: {tail}")
        seconds = soundfile.info(str(wav_tmp)).duration
    return round(seconds, 3)


@contextlib.contextmanager
def serve_directory(directory: Path) -> Iterator[str]:
    """Serve `directory` on 127.0.0.1 (an ephemeral port) for the block; yields its base URL."""
    import functools
    import http.server

    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"{directory}: --serve-dir is not a folder; give the synth's media/")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            log.debug("serve-dir: " + format, *args)

    class Server(http.server.ThreadingHTTPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            # yt-dlp closes its first request once it has seen the headers: not an error.
            log.debug("serve-dir: a client of %s went away", client_address)

    handler = functools.partial(Handler, directory=str(directory))
    server = Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class Fetcher:
    """Downloads and cuts clips, one `YoutubeDL` for all of them, politely spaced."""

    def __init__(
        self,
        out: Path,
        config: DownloadConfig,
        options: FetchOptions,
        serve_url: str = "",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import imageio_ffmpeg
        import yt_dlp

        self.out = out
        self.config = config
        self.options = options
        self.serve_url = serve_url
        self.sleep = sleep
        self.partial = out / ".partial"
        self._last_start: float | None = None
        self._ydl = yt_dlp.YoutubeDL(
            {
                "format": config.format,
                "outtmpl": str(self.partial / "%(id)s.%(ext)s"),
                "ffmpeg_location": imageio_ffmpeg.get_ffmpeg_exe(),
                "logger": _Quiet(),
                "quiet": True,
                "no_warnings": True,
                "noprogress": True,
                "noplaylist": True,
                "socket_timeout": options.socket_timeout,
                "retries": options.resume_retries,
                "fragment_retries": options.resume_retries,
                "retry_sleep_functions": {
                    "http": lambda n: min(options.backoff * 2**n, options.max_wait)
                },
                "overwrites": True,
                "continuedl": True,
                **({"cookiefile": options.cookies} if options.cookies else {}),
            }
        )

    def close(self) -> None:
        self._ydl.close()

    def _pace(self) -> None:
        if self._last_start is not None:
            wait = self.options.min_interval - (time.monotonic() - self._last_start)
            if wait > 0:
                self.sleep(wait)
        self._last_start = time.monotonic()

    def fetch(self, clip: dict[str, Any]) -> dict[str, Any]:
        """The journal entry of one clip, after up to `attempts` tries."""
        import yt_dlp

        url = clip_url(self.options.url_template, clip, self.serve_url)
        wav = self.out / "audio" / f"{clip['id']}.wav"
        mp4 = self.out / "video" / f"{clip['id']}.mp4"
        entry: dict[str, Any] = {"id": clip["id"], "url": url}
        failure = ClipFailure("retryable", "not tried")
        for attempt in range(1, self.options.attempts + 1):
            self._pace()
            shutil.rmtree(self.partial, ignore_errors=True)
            try:
                info = self._ydl.extract_info(
                    url, download=True, ie_key=self.options.extractor or None
                )
                source = _downloaded_file(info)
                seconds = cut_clip(source, clip["start"], clip["end"], wav, mp4, self.config)
            except yt_dlp.utils.DownloadError as exc:
                failure = classify(exc)
            except ClipFailure as exc:
                failure = exc
            else:
                return {
                    **entry,
                    "status": "ok",
                    "reason": "",
                    "attempts": attempt,
                    "seconds": seconds,
                    "path": f"audio/{clip['id']}.wav",
                    "video": f"video/{clip['id']}.mp4",
                }
            finally:
                shutil.rmtree(self.partial, ignore_errors=True)
            if failure.status == "unavailable" or attempt == self.options.attempts:
                break
            wait = failure.retry_after
            if wait is None:
                wait = self.options.backoff * 2 ** (attempt - 1)
            wait = min(wait, self.options.max_wait)
            log.warning(
                "%s: %s; try %d of %d in %.1fs",
                clip["id"],
                failure.reason,
                attempt + 1,
                self.options.attempts,
                wait,
            )
            self.sleep(wait)
        return {**entry, "status": failure.status, "reason": failure.reason, "attempts": attempt}


def _downloaded_file(info: dict[str, Any] | None) -> Path:
    downloads = (info or {}).get("requested_downloads") or []
    paths = [Path(d["filepath"]) for d in downloads if d.get("filepath")]
    if not paths or not paths[0].is_file():
        raise ClipFailure("unavailable", "yt-dlp reported no downloaded file")
    return paths[0]


def coverage(clips: list[dict[str, Any]], entries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """ok / unavailable / retryable counts and shares, overall and per split."""

    def summary(group: list[dict[str, Any]]) -> dict[str, Any]:
        counts = Counter(entries.get(c["id"], {}).get("status", "pending") for c in group)
        total = len(group)
        result: dict[str, Any] = {"clips": total}
        for status in ("ok", "unavailable", "retryable", "pending"):
            result[status] = counts.get(status, 0)
            result[f"{status}_share"] = round(counts.get(status, 0) / total, 4) if total else 0.0
        return result

    splits = sorted({c["split"] for c in clips})
    return {
        **summary(clips),
        "splits": {s: summary([c for c in clips if c["split"] == s]) for s in splits},
        "reasons": Counter(
            _reason_kind(entries[c["id"]], c)
            for c in clips
            if entries.get(c["id"], {}).get("status") == "unavailable"
        ).most_common(10),
    }


def _reason_kind(entry: dict[str, Any], clip: dict[str, Any]) -> str:
    """The reason without what names the clip, so that alike failures count together."""
    reason = entry["reason"]
    if reason.startswith("HTTP "):
        return reason.split(":", 1)[0]
    for name in (entry.get("url", ""), clip["youtube_id"]):
        if name:
            reason = reason.replace(name, "<clip>")
    return reason[:120]


def describe_coverage(report: dict[str, Any]) -> str:
    """One line: ok / unavailable / retryable counts and percentages."""
    parts = [
        f"{report[s]} {s} ({100 * report[f'{s}_share']:.1f}%)"
        for s in ("ok", "unavailable", "retryable")
    ]
    return f"{report['clips']} clips: " + ", ".join(parts)


def download_dcase2018(
    manifest: Path,
    out: Path,
    config: DownloadConfig,
    options: FetchOptions | None = None,
    *,
    serve_dir: Path | None = None,
    force: bool = False,
    dry_run: bool = False,
    max_reject_rate: float = 0.2,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Download every clip of the manifest not yet final (module docstring); the coverage."""
    from avtool.core import atomic
    from avtool.core.journal import Journal, read_jsonl, write_jsonl
    from avtool.core.manifest import read_manifest
    from avtool.core.rejects import RejectSummary, enforce
    from avtool.core.stage import Stage, describe_status

    options = options or FetchOptions()
    manifest, out = Path(manifest), Path(out)
    clips = read_manifest(manifest, require=("id", "youtube_id", "start", "end", "split"))
    if config.splits:
        unknown = sorted(set(config.splits) - {c["split"] for c in clips})
        if unknown:
            raise InputError(f"{manifest}: no clip of split(s) {', '.join(unknown)}")
        clips = [c for c in clips if c["split"] in config.splits]
    stage = Stage("download.dcase2018", STAGE_VERSION, out, config, inputs=[manifest])
    if dry_run:
        return {"state": "dry-run", "message": describe_status(stage, force)}
    if not stage.begin(force=force, keep_items=True):
        report = json.loads((out / "coverage.json").read_text())
        return {"state": "up-to-date", "coverage": report}
    for folder in ("audio", "video"):
        # Cuts a killed run left under temporary names; finished files are never touched.
        atomic.sweep_temporaries(out / folder)
    journal = Journal(out / "journal.jsonl")
    todo = [c for c in clips if journal.entries.get(c["id"], {}).get("status") not in FINAL]
    if len(todo) < len(clips):
        log.info("download: resuming, %d of %d clips final", len(clips) - len(todo), len(clips))
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        serve_url = ""
        if serve_dir is not None:
            serve_url = stack.enter_context(serve_directory(serve_dir))
            template = options.url_template
            if template == YOUTUBE_URL:
                template = "{serve_url}/{youtube_id}.mp4"
            options = replace(
                options, url_template=template, extractor=options.extractor or "Generic"
            )
        fetcher = Fetcher(out, config, options, serve_url=serve_url, sleep=sleep) if todo else None
        if fetcher is not None:
            stack.callback(fetcher.close)
        from avtool.core.progress import track

        for clip in track(todo, len(todo), "download dcase2018"):
            entry = fetcher.fetch(clip)  # type: ignore[union-attr]
            if entry["status"] != "ok":
                log.warning("%s: %s (%s)", clip["id"], entry["status"], entry["reason"])
            journal.record([entry])
    entries = journal.entries
    ok_rows = []
    for clip in clips:
        entry = entries.get(clip["id"], {})
        if entry.get("status") == "ok":
            row = {k: v for k, v in clip.items() if k != "path"}
            ok_rows.append({**row, "path": entry["path"], "video": entry["video"]})
    write_jsonl(out / "manifest.jsonl", ok_rows)
    write_jsonl(
        out / "rejects.jsonl",
        [
            {"id": c["id"], "path": None, "reason": entries[c["id"]]["reason"]}
            for c in clips
            if entries.get(c["id"], {}).get("status") == "unavailable"
        ],
    )
    report = coverage(clips, entries)
    report["seconds"] = round(time.monotonic() - started, 3)
    atomic.write_json(out / "coverage.json", report)
    summary = describe_coverage(report)
    log.info("download: %s", summary)
    if report["retryable"]:
        raise StageFailed(
            f"{out}: {summary}; rerun the same command to retry the {report['retryable']} "
            f"retryable clip(s) (reasons in {out / 'journal.jsonl'})"
        )
    unavailable = list(read_jsonl(out / "rejects.jsonl"))
    enforce(
        RejectSummary(len(clips), unavailable, [out / "rejects.jsonl"]),
        "download.dcase2018",
        max_reject_rate,
    )
    counts = {k: report[k] for k in ("clips", "ok", "unavailable", "retryable")}
    counts.update(done=report["ok"] + report["unavailable"], rejected=report["unavailable"])
    stage.finish(
        counts=counts, outputs=["manifest.jsonl", "journal.jsonl", "rejects.jsonl", "coverage.json"]
    )
    return {"state": "done", "coverage": report}
