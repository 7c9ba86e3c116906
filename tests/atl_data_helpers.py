"""Shared by the ATL dataset-builder tests: a small synthetic catalog and test credentials."""

from __future__ import annotations

import secrets
from pathlib import Path

SONGS_PER_GENRE = 3


def make_synth(root: Path) -> Path:
    from avtool.synth.lyrics import synth_lyrics

    synth = root / "synth"
    synth_lyrics(synth, SONGS_PER_GENRE, seed=3)
    return synth


def fresh_credentials() -> dict[str, str]:
    """Random credentials per test, so a hit in a scan can only come from this run."""
    return {
        "SPOTIPY_CLIENT_ID": "cid" + secrets.token_hex(12),
        "SPOTIPY_CLIENT_SECRET": "csec/" + secrets.token_urlsafe(18),
        "GENIUS_ACCESS_TOKEN": "gtok+" + secrets.token_urlsafe(24),
    }


def scan_for(roots: list[Path], needles: list[str]) -> list[tuple[str, str]]:
    """(file, needle) for every needle found in any file under `roots`, raw or URL-encoded."""
    from urllib.parse import quote, quote_plus

    spellings = set()
    for needle in needles:
        spellings.update({needle, quote(needle, safe=""), quote_plus(needle, safe="")})
    found = []
    for root in roots:
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for path in files:
            data = path.read_bytes()
            for spelling in spellings:
                if spelling.encode() in data:
                    found.append((str(path), spelling[:6] + "..."))
    return found
