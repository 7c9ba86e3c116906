"""HttpClient against a fake server on 127.0.0.1: retries, Retry-After, redaction, downloads."""

from __future__ import annotations

import hashlib
import logging
import pickle
import socket
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from avtool.core.errors import AvtoolError, NetworkError
from avtool.core.http import (
    HttpClient,
    HttpError,
    RedactingFilter,
    redact,
    retry_after_seconds,
)

TOKEN = "s3cr3t-T0ken/with+chars"


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    # Bytes actually sent, when fewer than `body` (a connection cut mid-body).
    send: int | None = None


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


Handler = Callable[[Seen], Reply]


class FakeServer:
    """An HTTP server whose routes answer from scripts: each request takes the next reply."""

    def __init__(self) -> None:
        self.routes: dict[str, list[Reply] | Handler] = {}
        self.seen: list[Seen] = []
        self.stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        # A short poll interval keeps shutdown, hence each test's teardown, quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def route(self, path: str, *replies: Reply | Handler) -> None:
        """Replies in order, the last one repeated; or one handler called per request."""
        only = replies[0] if len(replies) == 1 else None
        self.routes[path] = only if callable(only) else list(replies)  # type: ignore[assignment]

    def hits(self, path: str) -> int:
        return sum(1 for seen in self.seen if seen.path.split("?")[0] == path)

    def close(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def _reply(self, seen: Seen) -> Reply:
        script = self.routes.get(seen.path.split("?")[0])
        if script is None:
            return Reply(404, b"no such route")
        if callable(script):
            return script(seen)
        return script.pop(0) if len(script) > 1 else script[0]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handle(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                seen = Seen(self.command, self.path, dict(self.headers.items()))
                fake.seen.append(seen)
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                reply = fake._reply(seen)
                if reply.delay and fake.stopping.wait(reply.delay):
                    return
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                if reply.send is not None:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                self.wfile.write(reply.body[: reply.send])

            do_GET = do_POST = _serve

            def log_message(self, *args: object) -> None:
                pass

        return Handle


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeServer()
    yield fake
    fake.close()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_client(
    sleeps: list[float], server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., HttpClient]]:
    """A client for service "fake" on the fake server, sleeping into `sleeps`, closed after."""
    monkeypatch.delenv("AVTOOL_FAKE_BASE_URL", raising=False)
    made: list[HttpClient] = []

    def make(**kwargs: object) -> HttpClient:
        kwargs.setdefault("sleep", sleeps.append)
        kwargs.setdefault("base_url", server.url)
        client = HttpClient("fake", **kwargs)  # type: ignore[arg-type]
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_5xx_is_retried_with_growing_backoff(server, make_client, sleeps, caplog):
    server.route("/flaky", Reply(503), Reply(503), Reply(200, b'{"ok": true}'))
    client = make_client(backoff=0.5)
    with caplog.at_level(logging.WARNING, logger="avtool.core.http"):
        assert client.get_json("/flaky") == {"ok": True}
    assert server.hits("/flaky") == 3
    assert len(sleeps) == 2
    assert 0.25 <= sleeps[0] <= 0.5 and 0.5 <= sleeps[1] <= 1.0
    ours = [r for r in caplog.records if r.name == "avtool.core.http"]
    assert [r.levelno for r in ours] == [logging.WARNING, logging.WARNING]
    assert "HTTP 503" in ours[0].getMessage()


def test_retry_after_seconds_is_honoured(server, make_client, sleeps):
    server.route("/limited", Reply(429, headers={"Retry-After": "2"}), Reply(200, b"done"))
    assert make_client().get("/limited").text == "done"
    assert sleeps == [pytest.approx(2.0)]


def test_retry_after_date_is_honoured_and_capped(server, make_client, sleeps):
    soon = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    later = format_datetime(datetime.now(timezone.utc) + timedelta(hours=2), usegmt=True)
    server.route(
        "/busy",
        Reply(503, headers={"Retry-After": soon}),
        Reply(503, headers={"Retry-After": later}),
        Reply(200),
    )
    make_client(max_backoff=60).get("/busy")
    assert 28 <= sleeps[0] <= 30
    assert sleeps[1] == 60


def test_retry_after_parsing():
    assert retry_after_seconds("3") == 3
    assert retry_after_seconds("-1") == 0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("nan") is None
    assert retry_after_seconds(None) is None


def test_404_is_not_retried(server, make_client, sleeps):
    client = make_client()
    with pytest.raises(NetworkError) as caught:
        client.get("/missing", params={"q": "x"})
    error = caught.value
    assert server.hits("/missing") == 1
    assert sleeps == []
    assert isinstance(error, AvtoolError) and error.exit_code == 1
    assert isinstance(error, HttpError) and error.status == 404
    message = str(error)
    assert f"{server.url}/missing?q=x" in message
    assert "404" in message and "AVTOOL_FAKE_BASE_URL" in message
    assert "\n" not in message
    # Worker pools pickle exceptions; the attributes must survive the trip.
    assert pickle.loads(pickle.dumps(error)).status == 404


def test_5xx_gives_up_after_the_last_retry(server, make_client, sleeps):
    server.route("/down", Reply(500))
    with pytest.raises(HttpError, match=r"HTTP 500 .*after 4 attempts") as caught:
        make_client(retries=3).post("/down", json={"a": 1})
    assert server.hits("/down") == 4 and len(sleeps) == 3
    assert caught.value.status == 500 and caught.value.method == "POST"


def test_secrets_never_reach_messages_or_logs(server, make_client, monkeypatch, caplog):
    monkeypatch.setenv("GENIUS_ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("SOME_SERVICE_PASSWORD", "hunter22")
    server.route("/search/path-secret/hunter22", Reply(502))
    client = make_client(
        retries=2, headers={"Authorization": "Bearer header-token-123"}, secrets=["path-secret"]
    )
    with caplog.at_level(logging.WARNING), pytest.raises(NetworkError) as caught:
        client.get(
            "/search/path-secret/hunter22",
            params={"q": "song", "access_token": TOKEN, "api_key": "k-9876"},
        )
    assert server.hits("/search/path-secret/hunter22") == 3
    assert server.seen[0].headers["Authorization"] == "Bearer header-token-123"
    assert len([r for r in caplog.records if r.name == "avtool.core.http"]) == 2
    texts = [
        str(caught.value),
        caught.value.url,
        caplog.text,
        "".join(traceback.format_exception(caught.value)),
        repr(pickle.loads(pickle.dumps(caught.value)).__dict__),
    ]
    for text in texts:
        for leak in [TOKEN, "header-token-123", "path-secret", "hunter22", "k-9876", "s3cr3t"]:
            assert leak not in text
    assert "q=song" in str(caught.value) and "***" in str(caught.value)


def test_redacting_filter_masks_third_party_debug_logs(server, make_client, monkeypatch, caplog):
    monkeypatch.setenv("GENIUS_ACCESS_TOKEN", TOKEN)
    server.route("/lyrics", Reply(200))
    caplog.handler.addFilter(RedactingFilter())
    # yt-dlp raises the urllib3 logger to ERROR once any YoutubeDL exists in the process.
    caplog.set_level(logging.DEBUG, logger="urllib3")
    with caplog.at_level(logging.DEBUG):
        make_client().get("/lyrics", params={"access_token": TOKEN, "key": "k-9876"})
        try:
            raise ValueError(f"failed with {TOKEN}")
        except ValueError:
            logging.getLogger("elsewhere").exception("oops %s", TOKEN)
    assert any(r.name.startswith("urllib3") for r in caplog.records)
    assert "/lyrics?access_token=***&key=***" in caplog.text
    assert "failed with ***" in caplog.text
    assert TOKEN not in caplog.text and "k-9876" not in caplog.text


def test_redact_helper(monkeypatch):
    monkeypatch.setenv("SPOTIPY_CLIENT_ID", "client-id-abc")
    monkeypatch.setenv("MY_API_KEY", "key-value-xyz")
    monkeypatch.setenv("SHORT_TOKEN", "abc")
    text = (
        "id=client-id-abc key=key-value-xyz abc "
        "https://x/?token=t1&page=2&client_secret=t2 "
        "{'Authorization': 'Bearer t3'} Authorization: Basic dXNlcjpwdw== "
        '{"access_token": "t4"} https://user:t5@host/p extra-t6'
    )
    out = redact(text, extra=["extra-t6"])
    for leak in [
        "client-id-abc",
        "key-value-xyz",
        "t1",
        "t2",
        "t3",
        "dXNlcjpwdw",
        "t4",
        "t5",
        "t6",
    ]:
        assert leak not in out
    assert "abc" in out and "page=2" in out and "'Bearer ***'" in out
    assert redact("keyword=kept monkey business") == "keyword=kept monkey business"


def test_base_url_comes_from_the_environment(server, make_client, monkeypatch):
    server.route("/ping", Reply(200, b"pong"))
    monkeypatch.setenv("AVTOOL_FAKE_BASE_URL", server.url + "/")
    client = make_client(base_url="https://fake.invalid/api")
    assert client.base_url == server.url
    assert client.get("ping").text == "pong"


def test_unreachable_server_names_the_base_url_variable(make_client, sleeps):
    client = make_client(base_url=f"http://127.0.0.1:{closed_port()}", retries=1)
    with pytest.raises(HttpError, match=r"could not connect.*AVTOOL_FAKE_BASE_URL") as caught:
        client.get("/x")
    assert caught.value.status is None and len(sleeps) == 1


def test_loopback_ignores_proxy_settings(server, make_client, monkeypatch):
    dead = f"http://127.0.0.1:{closed_port()}"
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, dead)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    server.route("/ping", Reply(200, b"pong"))
    assert make_client(retries=0).get("/ping").text == "pong"


def test_default_headers_stay_with_their_origin(server, make_client):
    other = FakeServer()
    try:
        other.route("/elsewhere", Reply(200))
        server.route("/home", Reply(200))
        client = make_client(headers={"Authorization": "Bearer abcd1234"})
        client.get("/home")
        client.get(f"{other.url}/elsewhere")
    finally:
        other.close()
    assert server.seen[0].headers["Authorization"] == "Bearer abcd1234"
    assert "Authorization" not in other.seen[0].headers


def test_timeout_is_retried_then_fails(server, make_client, sleeps):
    server.route("/slow", Reply(200, delay=5))
    client = make_client(timeout=(1, 0.05), retries=2)
    with pytest.raises(HttpError, match="timed out after 3 attempts"):
        client.get("/slow")
    assert server.hits("/slow") == 3 and len(sleeps) == 2


def test_non_json_body_is_a_network_error(server, make_client):
    server.route("/page", Reply(200, b"<html>", {"Content-Type": "text/html"}))
    with pytest.raises(HttpError, match="text/html, not JSON"):
        make_client().get_json("/page")


PAYLOAD = bytes(range(256)) * 400
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


def test_download_checks_sha256(server, make_client, tmp_path):
    server.route("/w.bin", Reply(200, PAYLOAD))
    dest = tmp_path / "weights" / "w.bin"
    client = make_client()
    assert client.download("/w.bin", dest, sha256=PAYLOAD_SHA.upper(), chunk=4096) == dest
    assert dest.read_bytes() == PAYLOAD
    assert [p.name for p in dest.parent.iterdir()] == ["w.bin"]
    # An existing file with the right digest is not fetched again.
    client.download("/w.bin", dest, sha256=PAYLOAD_SHA)
    assert server.hits("/w.bin") == 1


def test_download_with_a_bad_sha256_leaves_nothing(server, make_client, tmp_path):
    server.route("/w.bin", Reply(200, PAYLOAD))
    dest = tmp_path / "w.bin"
    with pytest.raises(NetworkError, match=f"expected {'0' * 64}.*was not written"):
        make_client().download("/w.bin", dest, sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []


def _ranged(cut_first: int, honour_range: bool) -> Handler:
    """Serves PAYLOAD, cutting the first response after `cut_first` bytes."""
    calls: list[Seen] = []

    def handle(seen: Seen) -> Reply:
        calls.append(seen)
        headers = {"Accept-Ranges": "bytes", "ETag": '"v1"'}
        if len(calls) == 1:
            return Reply(200, PAYLOAD, headers, send=cut_first)
        start = int(seen.headers["Range"].removeprefix("bytes=").rstrip("-"))
        if not honour_range:
            return Reply(200, PAYLOAD, headers)
        headers["Content-Range"] = f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}"
        return Reply(206, PAYLOAD[start:], headers)

    return handle


@pytest.mark.parametrize("honour_range", [True, False])
def test_download_resumes_a_cut_body(server, make_client, sleeps, tmp_path, honour_range):
    server.route("/big.bin", _ranged(cut_first=30000, honour_range=honour_range))
    dest = tmp_path / "big.bin"
    make_client().download("/big.bin", dest, sha256=PAYLOAD_SHA, chunk=1024)
    assert dest.read_bytes() == PAYLOAD
    second = server.seen[1].headers
    # The range starts where the file on disk ends: at most the bytes sent before the cut.
    assert 0 < int(second["Range"].removeprefix("bytes=").rstrip("-")) <= 30000
    assert second["If-Range"] == '"v1"'
    assert second["Accept-Encoding"] == "identity"
    assert len(sleeps) == 1
