"""The ATL builder killed mid-scrape (SIGKILL, twice) and resumed; then a credential scan."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from atl_data_helpers import fresh_credentials, make_synth, scan_for

from avtool.synth.lyrics import load_catalog
from avtool.synth.lyrics_services import FakeLyricsServices, Fault

ITEM_ROUTES = {
    ("spotify", "artist-search"),
    ("spotify", "top-tracks"),
    ("youtube", "search"),
    ("youtube", "watch"),
    ("youtube", "media"),
    ("genius", "search"),
    ("genius", "page"),
}


def start_build(
    synth: Path, out: Path, env: dict[str, str], logs: Path, run: int
) -> subprocess.Popen:
    logs.mkdir(parents=True, exist_ok=True)
    code = "import sys; from avtool.cli.main import main; sys.exit(main())"
    args = ["-v", "prepare", "lyrics", "--artists", synth / "artists", "--out", out]
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args), "--set", "genius.sleep_time=0"],
        env=env,
        cwd=env["HOME"],
        stdout=(logs / f"run{run}.out").open("wb"),
        stderr=(logs / f"run{run}.err").open("wb"),
    )


@pytest.mark.slow
def test_killed_build_resumes_without_refetching_and_no_file_holds_a_credential(tmp_path):
    synth = make_synth(tmp_path)
    catalog = load_catalog(synth)
    expected = {
        t["id"]: t
        for data in catalog["genres"].values()
        for t in data["tracks"]
        if any(v.get("media") for v in t["youtube"])
    }
    # Kill 1 while the third audio file is being sent; kill 2 while the fourth lyrics page is.
    audio_hold = Fault("youtube", "media", ["pass", "pass", "hold"])
    page_hold = Fault("genius", "page", ["pass", "pass", "pass", "hold"])
    out, logs = tmp_path / "data", tmp_path / "logs"
    home = tmp_path / "home"
    home.mkdir()
    with FakeLyricsServices(
        synth, credentials=fresh_credentials(), faults=[audio_hold, page_hold]
    ) as fake:
        env = {
            **os.environ,
            **fake.env(),
            "HOME": str(home),
            "XDG_CACHE_HOME": str(home / ".cache"),
        }
        held = []  # the request each kill cut: received, never answered
        for run, fault in enumerate((audio_hold, page_hold), start=1):
            process = start_build(synth, out, env, logs, run)
            try:
                while not fault.held.wait(0.2):
                    assert process.poll() is None, (logs / f"run{run}.err").read_text()[-2000:]
                process.send_signal(signal.SIGKILL)
                assert process.wait(30) == -signal.SIGKILL
            finally:
                if process.poll() is None:
                    process.kill()
                fault.released.set()
            route = (fault.service, fault.route)
            held += [k for k in fake.received if k[:2] == route and fake.served[k] == 0]
        assert len(held) == 2

        final = start_build(synth, out, env, logs, 3)
        assert final.wait(120) == 0, (logs / "run3.err").read_text()[-3000:]

        # Nothing finished before a kill was fetched again. The two requests cut by the kills
        # were received twice and served once; the only other repeat is the watch page of the
        # video whose download was cut (yt-dlp reads the page, then the media: the download
        # as a whole is redone).
        item_requests = {k: v for k, v in fake.served.items() if (k[0], k[1]) in ITEM_ROUTES}
        refetched = {k: v for k, v in item_requests.items() if v != 1}
        assert refetched == {("youtube", "watch", held[0][2]): 2}
        assert [fake.received[k] for k in held] == [2, 2]
        assert fake.served[("spotify", "token", "")] == 1  # later runs had no Spotify work
        media = sum(v for k, v in item_requests.items() if k[1] == "media")
        pages = sum(v for k, v in item_requests.items() if k[1] == "page")
        assert media == pages == len(expected)
        print(
            f"\nkill/resume: {len(item_requests)} item requests; served once each but the cut "
            f"download's watch page ({media} audio files, {pages} lyrics pages); the 2 requests "
            "in flight at the kills were received twice, served once"
        )

        secrets_known = fake.secrets()

    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert {r["id"] for r in rows} == set(expected)
    for row in rows:
        lyrics = (out / row["lyrics_path"]).read_text(encoding="utf-8")
        assert lyrics == expected[row["id"]]["genius"]["lyrics"] + "\n"
        # The audio is the served media, byte for byte (already 16 kHz mono PCM: kept as is).
        served = synth / "media" / f"{row['youtube_id']}.wav"
        assert (out / row["path"]).read_bytes() == served.read_bytes()
    assert not list(out.rglob("*.tmp")) and not list(out.rglob(".download-*"))

    # The verbose logs did carry the credential headers, masked.
    logged = "".join(p.read_text(errors="replace") for p in logs.iterdir())
    assert "Basic ***" in logged and "Bearer ***" in logged
    written = [p for p in tmp_path.rglob("*") if p.is_file() and synth not in p.parents]
    hits = scan_for(written, secrets_known)
    print(f"credential scan: {len(written)} files, {len(secrets_known)} secrets, {len(hits)} hits")
    assert len(written) > 30  # wavs, lyrics, journals, stamps, configs, logs
    assert hits == []
    planted = tmp_path / "planted.txt"  # the scan itself finds a secret, even URL-encoded
    planted.write_text(f"GET /search?token={quote(secrets_known[2], safe='')}")
    assert scan_for([planted], secrets_known) != []
