"""`download dcase2018` against a fake video host on 127.0.0.1 with injected failures (404, 429
with Retry-After, cut connections, a page without video, a short video), resumption without a
second download, and the synthetic corpus end to end through `--serve-dir`."""

from __future__ import annotations

import http.server
import json
import re
import socket
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile

from avtool.core.errors import StageFailed
from avtool.corpora.dcase2018_download import (
    DownloadConfig,
    FetchOptions,
    classify,
    download_dcase2018,
)

SR = 16000
FPS = 15

# What the fake host does per YouTube id (11 characters, like the real ones).
BEHAVIOUR = {
    "okokokokok1": "ok",
    "cutcutcut_2": "ok",  # a segment from 2 s: the download is cut locally
    "gonegonegon": "404",
    "busybusybus": "429x2",  # twice 429 with Retry-After: 2, then the video
    "flakyflakyf": "cut-once",  # the body is cut off once; yt-dlp resumes it
    "brokenbroke": "cut-always",  # cut every time (until healed)
    "pagepagepag": "html",  # a page without any video
    "shortshorts": "ok",  # its clip asks for 20-30 s of a 12.5 s video
}


class FakeHost(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        host = self.server
        match = re.match(r"^/v/([\w-]{11})\.mp4$", self.path)
        video = match.group(1) if match else ""
        with host.lock:
            host.hits[video] += 1
            count = host.hits[video]
        behaviour = host.behaviour.get(video, "404")
        if behaviour == "404":
            return self._empty(404)
        if behaviour == "429x2" and count <= 2:
            return self._empty(429, {"Retry-After": "2"})
        if behaviour == "html":
            body = b"<html><body><p>nothing to see</p></body></html>"
            return self._send(200, body, {"Content-Type": "text/html"})
        data = host.media
        start = 0
        requested = self.headers.get("Range")
        if requested:
            start = int(re.match(r"bytes=(\d+)-", requested).group(1))
        headers = {"Content-Type": "video/mp4", "Accept-Ranges": "bytes"}
        if requested:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        cut = behaviour == "cut-always" or (behaviour == "cut-once" and count <= 2)
        self._send(206 if requested else 200, body, headers, cut=cut)

    def _empty(self, status, headers=None):
        self._send(status, b"", headers or {})

    def _send(self, status, body, headers, cut=False):
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if cut and len(body) > 1000:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)


class QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # the connections it cuts on purpose


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> bytes:
    from avtool.core.video import write_video

    seconds = 12.5
    frames = np.zeros((int(seconds * FPS), 32, 32, 3), np.uint8)
    frames[:, :, :, 1] = (np.arange(len(frames)) * 255 // len(frames))[:, None, None]
    t = np.arange(int(seconds * SR)) / SR
    audio = (0.3 * np.sin(2 * np.pi * 440 * t) * (t >= 3.0)).astype(np.float32)
    path = tmp_path_factory.mktemp("media") / "video.mp4"
    write_video(path, frames, FPS, audio=audio, sr=SR, codec="libx264", audio_codec="aac")
    return path.read_bytes()


@pytest.fixture
def host(media):
    server = QuietServer(("127.0.0.1", 0), FakeHost)
    server.media = media
    server.behaviour = dict(BEHAVIOUR)
    server.hits = Counter()
    server.lock = threading.Lock()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _manifest(path: Path) -> Path:
    rows = []
    for youtube_id in BEHAVIOUR:
        start = {"cutcutcut_2": 2.0, "shortshorts": 20.0}.get(youtube_id, 0.0)
        end = start + 10.0
        name = f"Y{youtube_id}_{start:.3f}_{end:.3f}"
        rows.append(
            {
                "id": name,
                "filename": name + ".wav",
                "youtube_id": youtube_id,
                "start": start,
                "end": end,
                "duration": 10.0,
                "split": "test" if youtube_id.startswith("ok") else "weak",
                "labels": ["Speech"],
                "events": [],
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _options(host, **changes) -> FetchOptions:
    template = f"http://127.0.0.1:{host.server_address[1]}/v/{{youtube_id}}.mp4"
    values = {
        "url_template": template,
        "min_interval": 30.0,
        "attempts": 3,
        "backoff": 0.25,
        "max_wait": 60.0,
        "socket_timeout": 5.0,
        "extractor": "Generic",
        "resume_retries": 1,
    }
    values.update(changes)
    return FetchOptions(**values)


def test_fault_injection_statuses_then_resume_without_downloading_twice(host, tmp_path):
    manifest = _manifest(tmp_path / "manifest.jsonl")
    out = tmp_path / "clips"
    sleeps: list[float] = []
    with pytest.raises(StageFailed, match=r"rerun the same command to retry the 1 retryable"):
        download_dcase2018(
            manifest,
            out,
            DownloadConfig(),
            _options(host),
            max_reject_rate=0.5,
            sleep=sleeps.append,
        )
    journal = {}
    for line in (out / "journal.jsonl").read_text().splitlines():
        entry = json.loads(line)
        journal[entry["id"]] = entry
    status = {key.split("_")[0][1:]: e["status"] for key, e in journal.items()}
    by_id = {e["url"].rsplit("/", 1)[1][:11]: e for e in journal.values()}
    assert {k: e["status"] for k, e in by_id.items()} == {
        "okokokokok1": "ok",
        "cutcutcut_2": "ok",
        "gonegonegon": "unavailable",
        "busybusybus": "ok",
        "flakyflakyf": "ok",
        "brokenbroke": "retryable",
        "pagepagepag": "unavailable",
        "shortshorts": "unavailable",
    }, status
    assert "HTTP 404" in by_id["gonegonegon"]["reason"]
    assert by_id["gonegonegon"]["attempts"] == 1  # gone for good: not retried
    assert by_id["busybusybus"]["attempts"] == 3
    assert "lasts 12.50 s" in by_id["shortshorts"]["reason"]
    assert "bytes" in by_id["brokenbroke"]["reason"] and by_id["brokenbroke"]["attempts"] == 3
    # Retry-After honoured (2 s, twice), exponential backoff for the cut connection (0.25,
    # 0.5), and otherwise 30 s between clips' first requests (the fake sleep records them).
    assert sleeps.count(2.0) == 2
    assert [s for s in sleeps if s < 1.0] == [0.25, 0.5]
    attempts = sum(e["attempts"] for e in journal.values())
    assert attempts == 12
    assert sum(1 for s in sleeps if 1.0 < s <= 30.0 and s != 2.0) == attempts - 1
    # The coverage summary and what the ok clips are.
    coverage = json.loads((out / "coverage.json").read_text())
    assert (coverage["ok"], coverage["unavailable"], coverage["retryable"]) == (4, 3, 1)
    assert coverage["ok_share"] == 0.5
    assert not (out / "stage.json").exists()
    rows = {r["youtube_id"]: r for r in map(json.loads, (out / "manifest.jsonl").open())}
    assert set(rows) == {"okokokokok1", "cutcutcut_2", "busybusybus", "flakyflakyf"}
    cut = rows["cutcutcut_2"]
    assert cut["path"] == f"audio/{cut['id']}.wav" and cut["video"] == f"video/{cut['id']}.mp4"
    audio, sr = soundfile.read(out / cut["path"])
    assert sr == SR and len(audio) == 10 * SR
    # The tone starts at 3 s of the video, so at 1 s of the clip cut from 2 s.
    level = [np.abs(audio[int(t * SR) : int((t + 0.1) * SR)]).max() for t in (0.8, 1.1)]
    assert level[0] < 0.05 < level[1]
    from avtool.core.video import video_info

    info = video_info(out / cut["video"])
    assert info.frames == 10 * FPS and not info.has_audio
    hits_after_first = Counter(host.hits)
    assert hits_after_first["gonegonegon"] == 1

    # The host heals; a rerun fetches only the retryable clip, and nothing else again.
    host.behaviour["brokenbroke"] = "ok"
    result = download_dcase2018(
        manifest, out, DownloadConfig(), _options(host), max_reject_rate=0.5, sleep=sleeps.append
    )
    assert result["state"] == "done"
    assert (result["coverage"]["ok"], result["coverage"]["unavailable"]) == (5, 3)
    new_hits = host.hits - hits_after_first
    assert set(new_hits) == {"brokenbroke"}
    assert (out / "stage.json").exists()
    # Up to date: not a single request.
    before = Counter(host.hits)
    result = download_dcase2018(
        manifest, out, DownloadConfig(), _options(host), max_reject_rate=0.5
    )
    assert result["state"] == "up-to-date" and host.hits == before


def test_too_many_unavailable_fails_after_writing_the_summary(host, tmp_path):
    manifest = _manifest(tmp_path / "manifest.jsonl")
    only_gone = tmp_path / "gone.jsonl"
    only_gone.write_text(
        "".join(line + "\n" for line in manifest.read_text().splitlines() if "gonegone" in line)
    )
    out = tmp_path / "clips"
    with pytest.raises(StageFailed, match=r"1 of 1 items rejected .* --max-reject-rate 0.2"):
        download_dcase2018(only_gone, out, DownloadConfig(), _options(host, min_interval=0.0))
    assert json.loads((out / "rejects.jsonl").read_text())["reason"].startswith("HTTP 404")
    assert json.loads((out / "coverage.json").read_text())["unavailable"] == 1


def test_classify_youtube_messages():
    class Gone(Exception):
        pass

    assert classify(Gone("ERROR: [youtube] abc: Video unavailable")).status == "unavailable"
    assert classify(Gone("ERROR: [youtube] abc: Private video")).status == "unavailable"
    assert classify(Gone("ERROR: unable to download: Read timed out.")).status == "retryable"
    assert classify(Gone("Connection reset by peer")).status == "retryable"
    bot = "ERROR: [youtube] abc: Sign in to confirm you\u2019re not a bot"
    assert classify(Gone(bot)).status == "retryable"
    assert classify(Gone("ERROR: [youtube] abc: Sign in to confirm your age")).status == (
        "unavailable"
    )


def test_synthetic_corpus_end_to_end_through_serve_dir(cli, tmp_path):
    """synth -> prepare -> download --serve-dir: the demo's path, no server of the test's own."""
    from avtool.synth.dcase2018 import CLASSES, SIZE

    corpus, prepared, clips = tmp_path / "synth", tmp_path / "prepared", tmp_path / "clips"
    assert cli("synth", "dcase2018", "--out", corpus, "--clips", 5)[0] == 0
    assert cli("prepare", "dcase2018", "--metadata", corpus / "metadata", "--out", prepared)[0] == 0
    code, out, err = cli(
        "download", "dcase2018", "--manifest", prepared / "manifest.jsonl", "--out", clips,
        "--serve-dir", corpus / "media", "--min-interval", "0",
    )  # fmt: skip
    assert code == 0, err
    assert "5 clips: 5 ok (100.0%), 0 unavailable (0.0%), 0 retryable (0.0%)" in out
    from avtool.core.manifest import read_manifest
    from avtool.core.video import read_frames

    rows = read_manifest(clips / "manifest.jsonl")
    assert len(rows) == 5 and all(Path(r["path"]).is_file() for r in rows)
    truth: dict[str, list] = {}
    for line in (corpus / "truth/strong.tsv").read_text().splitlines()[1:]:
        name, onset, offset, label = line.split("\t")
        truth.setdefault(name[:-4], []).append((float(onset), float(offset), label))
    shifted = next(r for r in rows if r["start"] > 0)
    audio, sr = soundfile.read(shifted["path"])
    assert len(audio) == round(shifted["duration"] * sr)
    frames = read_frames(clips / shifted["video"])
    assert len(frames) == round(shifted["duration"] * 15)
    for onset, offset, label in truth[shifted["id"]]:
        row, col = divmod(CLASSES.index(label), 4)
        pixel = frames[:, row * (SIZE // 3) + SIZE // 6, col * (SIZE // 4) + SIZE // 8].astype(int)
        lit = np.flatnonzero(np.abs(pixel - 40).sum(axis=1) > 60)
        # The class's tile shows exactly while its event lasts, to a frame, after the cut.
        assert abs(lit[0] / 15 - onset) <= 1.5 / 15 and abs((lit[-1] + 1) / 15 - offset) <= 1.5 / 15


_KILLED_RUN = """
import sys
from avtool.corpora.dcase2018_download import DownloadConfig, FetchOptions, download_dcase2018
options = FetchOptions(url_template=sys.argv[3], min_interval=1.0, extractor="Generic")
download_dcase2018(sys.argv[1], sys.argv[2], DownloadConfig(), options)
"""


def test_sigkill_mid_run_resumes_to_the_same_bytes(host, tmp_path):
    """Killed after its first clips, a rerun fetches only the rest; files equal a clean run's."""
    import os
    import signal
    import subprocess
    import sys
    import time

    rows = [
        line
        for line in _manifest(tmp_path / "all.jsonl").read_text().splitlines()
        if any(k in line for k in ("okokok", "cutcut", "flakyf"))
    ]
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("\n".join(rows) + "\n")
    options = _options(host, min_interval=0.0)
    killed = tmp_path / "killed"
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_RUN, manifest, killed, options.url_template],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    journal = killed / "journal.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and child.poll() is None:
        if journal.exists() and journal.read_text().count("\n") >= 1:
            os.kill(child.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    child.wait()
    assert child.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    finished = {json.loads(line)["id"] for line in journal.read_text().splitlines()}
    assert 1 <= len(finished) < 3
    hits = Counter(host.hits)
    result = download_dcase2018(manifest, killed, DownloadConfig(), options)
    assert result["state"] == "done" and result["coverage"]["ok"] == 3
    refetched = {video for video in host.hits - hits}
    assert not refetched & {f.rsplit("_", 2)[0][1:] for f in finished}
    clean = tmp_path / "clean"
    download_dcase2018(manifest, clean, DownloadConfig(), options)
    for folder in ("audio", "video"):
        names = sorted(p.name for p in (clean / folder).iterdir())
        assert sorted(p.name for p in (killed / folder).iterdir()) == names
        for name in names:
            assert (killed / folder / name).read_bytes() == (clean / folder / name).read_bytes()
    assert (killed / "manifest.jsonl").read_bytes() == (clean / "manifest.jsonl").read_bytes()
