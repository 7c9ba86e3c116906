"""What the three ATL clients share: HTTP through avtool's client, item outcomes, names, titles.

`HttpClientSession` is a `requests.Session` whose every request goes through an
`avtool.core.http.HttpClient`, so spotipy and lyricsgenius (which accept or hold a session)
get its timeouts, retries with backoff honouring `Retry-After`, loopback without proxies and
redacted errors, in place of their own retry logic.

An item's fetch ends in an `Outcome`: ok, not found (the service has nothing usable: a rerun
would get the same answer) or retryable (rate limited, failing, timed out, malformed: a rerun
may succeed). Refused credentials end the stage instead (`CredentialsError`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avtool.core.errors import InputError, NetworkError

log = logging.getLogger(__name__)

OK = "ok"
NOT_FOUND = "not_found"
RETRYABLE = "retryable"
FINISHED = (OK, NOT_FOUND)

_SAFE_STEM = re.compile(r"[0-9A-Za-z_-]{1,64}")


class CredentialsError(InputError):
    """A service refused or lacks credentials: every item would fail, so the stage stops."""


@dataclass
class Outcome:
    status: str
    reason: str = ""
    data: dict[str, Any] = field(default_factory=dict)


def file_stem(item_id: str) -> str:
    """A file name stem for an item id: the id itself when it is plain ASCII word characters
    (Spotify ids are base62), else a digest, so no id can name a path outside its folder."""
    if _SAFE_STEM.fullmatch(item_id):
        return item_id
    return "h" + hashlib.sha256(item_id.encode("utf-8")).hexdigest()[:32]


_FEATURING = re.compile(
    r"\s*[\(\[]\s*(?:feat\.?|ft\.?|featuring|with)\s[^\)\]]*[\)\]]"
    r"|\s+(?:feat\.?|ft\.?|featuring)\s.*$",
    re.IGNORECASE,
)
_DASH_SUFFIX = re.compile(
    r"\s+-\s+(?:[^-]*\b(?:remaster(?:ed)?|remix|live|version|edit|mono|stereo|mix|acoustic|"
    r"from|bonus|single|deluxe|radio)\b.*)$",
    re.IGNORECASE,
)
_BRACKETS = re.compile(r"\s*[\(\[][^\)\]]*[\)\]]")


def clean_title(title: str) -> str:
    """A track title as Genius files it: featuring credits, bracketed parts and
    "- Remastered 2011"-style suffixes dropped ("Song (feat. X) - Remastered" -> "Song")."""
    cleaned = _FEATURING.sub("", title)
    cleaned = _DASH_SUFFIX.sub("", cleaned)
    cleaned = _BRACKETS.sub("", cleaned)
    cleaned = " ".join(cleaned.split())
    return cleaned or " ".join(title.split())


def comparable(text: str) -> str:
    """Lowercase, NFKC, punctuation and accents off: for matching names across services."""
    text = unicodedata.normalize("NFKD", text.casefold())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(re.sub(r"[^\w\s]|_", " ", text).split())


def similarity(a: str, b: str) -> float:
    from difflib import SequenceMatcher

    return round(SequenceMatcher(None, comparable(a), comparable(b)).ratio(), 3)


def require_env(names: Iterable[str], service: str, advice: str) -> dict[str, str]:
    """The credential variables' values; a `CredentialsError` naming the missing ones."""
    values = {name: os.environ.get(name, "") for name in names}
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise CredentialsError(f"{service}: {' and '.join(missing)} not set; {advice}")
    return values


def http_session(client: Any) -> Any:
    """A requests.Session that sends everything through `client` (an `HttpClient`)."""
    import requests

    class HttpClientSession(requests.Session):
        def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
            # Libraries pass None for "their default": let the HttpClient choose instead.
            for name in ("proxies", "timeout", "verify"):
                if kwargs.get(name) is None:
                    kwargs.pop(name, None)
            return client.request(method, url, **kwargs)

    return HttpClientSession()


def outcome_of_error(exc: BaseException, service: str) -> Outcome:
    """Classify a failed fetch; refused credentials raise `CredentialsError`."""
    from avtool.core.http import HttpError, redact

    if isinstance(exc, HttpError):
        status = exc.status
        if status in (401, 403):
            raise CredentialsError(str(exc)) from None
        if status in (404, 410):
            return Outcome(NOT_FOUND, f"HTTP {status}")
        if status is None or status == 429 or status >= 500 or status < 400:
            return Outcome(RETRYABLE, str(exc))
        return Outcome(NOT_FOUND, str(exc))
    if isinstance(exc, NetworkError):
        return Outcome(RETRYABLE, str(exc))
    if isinstance(exc, ValueError | KeyError | TypeError | IndexError):
        # A body that is not JSON, or JSON of another shape: a glitch or a changed API.
        return Outcome(RETRYABLE, redact(f"{service}: malformed answer ({type(exc).__name__})"))
    raise exc


@dataclass
class ItemRunSummary:
    counts: dict[str, int]
    fetched: int
    seconds: float
    state: str


def run_items(
    name: str,
    version: int,
    out_dir: Path,
    config: dict[str, Any],
    items: list[dict[str, Any]],
    fetch_factory: Callable[[], Callable[[dict[str, Any]], Outcome]],
    *,
    force: bool = False,
    retry_passes: int = 1,
    outputs: list[str] | None = None,
    on_finished: Callable[[dict[str, dict[str, Any]]], None] | None = None,
) -> ItemRunSummary:
    """Fetch every item not yet ok or not found, journaling each outcome as it lands.

    `fetch_factory` builds the fetch function (clients, credentials) only when there is work.
    Retryable items get `retry_passes` more tries at the end of the run; any still retryable
    leave the stage unstamped, so the next run retries them. `on_finished(entries)` gets the
    journal's last entry per id, on every call (to write or collect what the stage derives).
    """
    from avtool.core.journal import Journal
    from avtool.core.progress import track
    from avtool.core.stage import STAMP, Stage

    started = time.monotonic()
    stage = Stage(name, version, out_dir, config)
    journal_file = Path(out_dir) / "journal.jsonl"
    if not stage.begin(force=force):
        journal = Journal(journal_file)
        if all(_finished(journal, item["id"]) for item in items):
            if on_finished:
                on_finished(journal.entries)
            return ItemRunSummary(_counts(journal, items), 0, 0.0, "up-to-date")
        # New items (a longer artist list): reopen the finished stage, keep its journal.
        (Path(out_dir) / STAMP).unlink()
        stage.begin(force=False)
    journal = Journal(journal_file)
    pending = [item for item in items if not _finished(journal, item["id"])]
    fetched = 0
    if pending:
        fetch = fetch_factory()
        for attempt in range(1 + retry_passes):
            label = name if attempt == 0 else f"{name} (retry {attempt})"
            for item in track(pending, len(pending), label):
                outcome = fetch(item)
                fetched += 1
                journal.record(
                    [
                        {
                            "id": item["id"],
                            "status": outcome.status,
                            "reason": outcome.reason,
                            **outcome.data,
                        }
                    ]
                )
                if outcome.status != OK:
                    log.info("%s: %s %s (%s)", name, item["id"], outcome.status, outcome.reason)
            pending = [item for item in pending if not _finished(journal, item["id"])]
            if not pending:
                break
    if on_finished:
        on_finished(journal.entries)
    counts = _counts(journal, items)
    if counts[RETRYABLE]:
        log.warning(
            "%s: %d item(s) still retryable (see %s); rerun to fetch them",
            name,
            counts[RETRYABLE],
            journal_file,
        )
        state = "partial"
    else:
        stage.finish(counts=counts, outputs=[journal_file.name, *(outputs or [])])
        state = "done"
    return ItemRunSummary(counts, fetched, round(time.monotonic() - started, 3), state)


def _finished(journal: Any, item_id: str) -> bool:
    entry = journal.entries.get(item_id)
    return entry is not None and entry.get("status") in FINISHED


def _counts(journal: Any, items: list[dict[str, Any]]) -> dict[str, int]:
    counts = {OK: 0, NOT_FOUND: 0, RETRYABLE: 0}
    for item in items:
        entry = journal.entries.get(item["id"])
        counts[entry["status"] if entry else RETRYABLE] += 1
    # `avtool status` reads items, done and rejected.
    return {**counts, "items": len(items), "done": counts[OK], "rejected": counts[NOT_FOUND]}
