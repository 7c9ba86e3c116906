"""The one HTTP client of avtool: timeouts, retries with backoff, per-service base URLs, redaction.

Every service (Spotify, Genius, YouTube metadata, model weights) gets an `HttpClient`. Its base
URL can be replaced from the environment (`AVTOOL_<SERVICE>_BASE_URL`), which is how tests point
a service at a fake server on 127.0.0.1. Credentials never reach a message, a log line or an
exception: everything this module says goes through `redact`.
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
import math
import os
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus, urlsplit

from avtool import __version__
from avtool.core.atomic import atomic_path
from avtool.core.errors import NetworkError

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)

MASK = "***"

# Secrets shorter than this are left alone: masking "1" or "yes" everywhere would garble text.
_MIN_ENV_SECRET = 4
_SECRET_ENV_NAMES = frozenset({"SPOTIPY_CLIENT_ID", "SPOTIPY_CLIENT_SECRET", "GENIUS_ACCESS_TOKEN"})
_SECRET_ENV_SUFFIXES = ("_TOKEN", "_SECRET", "_KEY", "_PASSWORD")
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "x-api-key", "cookie"})
_CREDENTIAL_ENV = {
    "spotify": "SPOTIPY_CLIENT_ID and SPOTIPY_CLIENT_SECRET",
    "genius": "GENIUS_ACCESS_TOKEN",
}
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})

_SECRET_NAME = r"[\w-]*?(?:token|key|secret|password|passwd|signature|credential)"
_PATTERNS = (
    # Authorization headers as they show up in reprs and dumps: keep the scheme, drop the rest.
    (
        re.compile(
            r"""(?i)((?:proxy-)?authorization["']?\s*[:=]\s*["']?(?:(?:bearer|basic|token)\s+)?)[^\s"',}]+"""
        ),
        rf"\1{MASK}",
    ),
    (re.compile(r"(?i)\b(bearer\s+)[\w\-.~+/]+=*"), rf"\1{MASK}"),
    # Query parameters, form fields and JSON keys named like a credential.
    (
        re.compile(
            rf"""(?i)(?<![\w.-])(["']?{_SECRET_NAME}["']?\s*[:=]\s*["']?)[^\s&#"',;<>)}}]+"""
        ),
        rf"\1{MASK}",
    ),
    # Passwords in URLs: scheme://user:password@host.
    (re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^/\s@]+@"), rf"\1{MASK}@"),
)


def secret_env_values() -> list[str]:
    """Values of the environment variables that hold credentials, read now (never cached)."""
    return [
        value
        for name, value in os.environ.items()
        if len(value) >= _MIN_ENV_SECRET
        and (name.upper() in _SECRET_ENV_NAMES or name.upper().endswith(_SECRET_ENV_SUFFIXES))
    ]


def redact(text: str, extra: Iterable[str] = ()) -> str:
    """`text` with credentials masked: `extra`, the credential env vars, auth headers, key=value."""
    literals = set()
    for secret in [*extra, *secret_env_values()]:
        if secret:
            # Secrets travel percent-encoded in URLs, so mask those spellings too.
            literals.update({secret, quote(secret, safe=""), quote_plus(secret, safe="")})
    # Longest first, so a secret containing another is masked whole.
    for secret in sorted(literals, key=len, reverse=True):
        text = text.replace(secret, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Masks credentials in every record it passes, third-party ones included.

    The CLI installs it on its log handlers: urllib3 logs full URLs, query tokens and all, at
    DEBUG, and only a handler-level filter sees those records.
    """

    def __init__(self, extra: Iterable[str] = ()) -> None:
        super().__init__()
        self.extra = tuple(extra)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message, self.extra)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info or record.exc_text:
            text = record.exc_text or logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(text, self.extra)
        return True


def base_url_env(service: str) -> str:
    """The environment variable that overrides `service`'s base URL."""
    return f"AVTOOL_{re.sub(r'[^A-Z0-9]+', '_', service.upper()).strip('_')}_BASE_URL"


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds a `Retry-After` header asks for (delta or HTTP date); None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _header_secrets(headers: Mapping[str, str] | None) -> list[str]:
    """Credential header values, whole and without their scheme word ("Bearer x" -> "x")."""
    found = []
    for name, value in (headers or {}).items():
        if name.lower() in _SECRET_HEADERS and value:
            found.append(value)
            found.append(value.split(None, 1)[-1])
    return found


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


def _sha256_of(path: Path, chunk: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class HttpError(NetworkError):
    """A request that failed for good; `status` is the last HTTP status, None if none came."""

    # Defaults let the exception unpickle from its message alone (worker pools pickle it);
    # pickling carries the attributes across in `__dict__`.
    def __init__(
        self,
        message: str,
        *,
        service: str = "",
        method: str = "",
        url: str = "",
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.service = service
        self.method = method
        self.url = url  # already redacted
        self.status = status


class HttpClient:
    """Requests to one service, retried on connection errors, timeouts, 429 and 5xx.

    `retries` counts the extra attempts after the first. Default `headers` (credentials
    included) go only to the base URL's origin, never to absolute URLs elsewhere.
    """

    def __init__(
        self,
        service: str,
        base_url: str,
        *,
        timeout: float | tuple[float, float] = (5, 30),
        retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 60,
        headers: Mapping[str, str] | None = None,
        secrets: Iterable[str] = (),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import requests

        self.service = service
        self.base_url_env = base_url_env(service)
        self.base_url = (os.environ.get(self.base_url_env) or base_url).rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.headers = dict(headers or {})
        self.secrets = [s for s in (*secrets, *_header_secrets(self.headers)) if s]
        self._sleep = sleep
        # A private generator: jitter must not consume the global random state that --seed fixes.
        self._random = random.Random()
        self._session = requests.Session()
        self._session.headers["User-Agent"] = f"avtool/{__version__}"

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def url(self, path_or_url: str) -> str:
        """An absolute URL as given, else `path_or_url` under the base URL."""
        if urlsplit(path_or_url).scheme in ("http", "https"):
            return path_or_url
        return f"{self.base_url}/{path_or_url.lstrip('/')}"

    def redact(self, text: str, extra: Iterable[str] = ()) -> str:
        return redact(text, [*self.secrets, *extra])

    def get(self, path_or_url: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path_or_url, **kwargs)

    def post(self, path_or_url: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path_or_url, **kwargs)

    def get_json(self, path_or_url: str, **kwargs: Any) -> Any:
        """GET and decode JSON; a body that is not JSON raises `HttpError`."""
        response = self.get(path_or_url, **kwargs)
        try:
            return response.json()
        except ValueError:
            secrets = _header_secrets(kwargs.get("headers"))
            raise self._error(
                "GET",
                response.url,
                response.status_code,
                f"answered {response.headers.get('Content-Type', 'no content type')}, not JSON",
                f"check that {self.base_url_env} points at the {self.service} API",
                secrets,
            ) from None

    def request(self, method: str, path_or_url: str, **kwargs: Any) -> requests.Response:
        """Send with retries; returns a response under 400, else raises `HttpError`.

        `kwargs` go to `requests.Session.request`; `timeout` defaults to the client's.
        """
        import requests

        method = method.upper()
        url = self.url(path_or_url)
        kwargs["headers"] = self._headers_for(url, kwargs.get("headers"))
        kwargs.setdefault("timeout", self.timeout)
        if (urlsplit(url).hostname or "").lower() in _LOOPBACK:
            # A fake or local server is never behind the proxy the environment may name.
            kwargs.setdefault("proxies", {"http": None, "https": None, "all": None})
        secrets = _header_secrets(kwargs["headers"])
        shown = self._full_url(url, kwargs.get("params"))
        attempt = 0
        while True:
            retry_after = None
            try:
                response = self._session.request(method, url, **kwargs)
            except requests.Timeout:
                status, problem = None, "timed out"
                advice = (
                    f"check the network, or whether {self.base_url_env} points at a live server"
                )
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
                status, problem = None, f"could not connect ({_reason(exc)})"
                advice = (
                    f"check the network, or whether {self.base_url_env} points at a live server"
                )
            except requests.RequestException as exc:
                # A malformed URL or a redirect loop: retrying cannot help.
                raise self._error(
                    method,
                    shown,
                    None,
                    f"failed: {type(exc).__name__}",
                    f"check the URL and {self.base_url_env}",
                    secrets,
                ) from None
            else:
                status = response.status_code
                if status < 400:
                    return response
                problem = f"answered HTTP {status} {response.reason or ''}".rstrip()
                advice = self._advice(status)
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))
                response.close()
                if status != 429 and status < 500:
                    raise self._error(method, shown, status, problem, advice, secrets)
            if attempt == self.retries:
                tries = f"after {attempt + 1} attempts"
                raise self._error(method, shown, status, f"{problem} {tries}", advice, secrets)
            self._pause(method, shown, problem, attempt, retry_after, secrets)
            attempt += 1

    def download(
        self, url: str, dest: Path, sha256: str | None = None, chunk: int = 1 << 20
    ) -> Path:
        """Stream `url` to `dest` atomically, checking `sha256` when given; returns `dest`.

        A `dest` that already has the expected sha256 is kept without a request. A body cut
        off mid-way resumes with a Range request when the server accepts ranges, else restarts.
        """
        import requests

        dest = Path(dest)
        expected = sha256.lower() if sha256 else None
        if expected and dest.is_file() and _sha256_of(dest, chunk) == expected:
            return dest
        shown = self._full_url(self.url(url), None)
        with atomic_path(dest) as tmp, tmp.open("wb") as out:
            digest = hashlib.sha256()
            written = 0
            validator = None
            resumable = False
            attempt = 0
            while True:
                # Identity encoding keeps Range offsets and the sha256 about the bytes on disk.
                headers = {"Accept-Encoding": "identity"}
                if written and resumable:
                    headers["Range"] = f"bytes={written}-"
                    if validator:
                        # The server sends the whole file again if it changed since.
                        headers["If-Range"] = validator
                with self.get(url, headers=headers, stream=True) as response:
                    if response.status_code == 206 and not _range_starts_at(response, written):
                        problem = f"answered a range that does not start at byte {written}"
                        resumable = False
                    else:
                        if response.status_code != 206:
                            out.seek(0)
                            out.truncate()
                            digest = hashlib.sha256()
                            written = 0
                            resumable = response.headers.get("Accept-Ranges") == "bytes"
                            validator = response.headers.get("ETag") or response.headers.get(
                                "Last-Modified"
                            )
                        try:
                            for block in response.iter_content(chunk):
                                out.write(block)
                                digest.update(block)
                                written += len(block)
                        except (
                            requests.ConnectionError,
                            requests.Timeout,
                            requests.exceptions.ChunkedEncodingError,
                        ) as exc:
                            problem = f"was cut off after {written} bytes ({_reason(exc)})"
                        else:
                            break
                if attempt == self.retries:
                    raise self._error(
                        "GET",
                        shown,
                        None,
                        f"{problem} after {attempt + 1} attempts",
                        "check the network and rerun",
                        (),
                    )
                self._pause("GET", shown, problem, attempt, None, ())
                attempt += 1
            if expected and digest.hexdigest() != expected:
                raise self._error(
                    "GET",
                    shown,
                    None,
                    f"gave sha256 {digest.hexdigest()}, expected {expected}; {dest} was not written",
                    "the file changed upstream or was corrupted in transit; rerun, or check the URL",
                    (),
                )
        return dest

    def _headers_for(self, url: str, extra: Mapping[str, str] | None) -> dict[str, str]:
        headers = dict(self.headers) if _origin(url) == _origin(self.base_url) else {}
        headers.update(extra or {})
        return headers

    def _full_url(self, url: str, params: Any) -> str:
        import requests

        prepared = requests.PreparedRequest()
        try:
            prepared.prepare_url(url, params)
        except requests.RequestException:
            return url
        return prepared.url or url

    def _pause(
        self,
        method: str,
        url: str,
        problem: str,
        attempt: int,
        retry_after: float | None,
        secrets: Iterable[str],
    ) -> None:
        """Log the failed attempt and sleep before the next one."""
        if retry_after is not None:
            delay = min(retry_after, self.max_backoff)
        else:
            # Equal jitter: at least half the exponential step, so clients that failed together
            # spread out, yet none retries at once.
            step = min(self.max_backoff, self.backoff * 2**attempt)
            delay = step / 2 + self._random.uniform(0, step / 2)
        message = (
            f"{self.service}: {method} {url} {problem}; "
            f"retry {attempt + 1}/{self.retries} in {delay:.1f}s"
        )
        log.warning(self.redact(message, secrets))
        self._sleep(delay)

    def _advice(self, status: int) -> str:
        if status in (401, 403):
            names = _CREDENTIAL_ENV.get(
                self.service.lower(), "the credential environment variables"
            )
            return f"check {names} for {self.service}"
        if status == 429:
            return "the service is rate limiting; wait a while and rerun"
        if status >= 500:
            return f"the {self.service} service is failing; rerun later"
        return f"check the URL and its parameters, and {self.base_url_env} if set"

    def _error(
        self,
        method: str,
        url: str,
        status: int | None,
        problem: str,
        advice: str,
        secrets: Iterable[str],
    ) -> HttpError:
        shown = self.redact(url, secrets)
        message = self.redact(f"{self.service}: {method} {shown} {problem}; {advice}", secrets)
        return HttpError(
            " ".join(message.split()), service=self.service, method=method, url=shown, status=status
        )


def _reason(exc: BaseException) -> str:
    """The OS-level cause buried in a requests exception ("[Errno 111] Connection refused")."""
    match = re.search(r"\[Errno -?\d+\][^'\")\]]*", str(exc))
    return match.group(0).strip() if match else type(exc).__name__


def _range_starts_at(response: requests.Response, offset: int) -> bool:
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return bool(match) and int(match.group(1)) == offset
