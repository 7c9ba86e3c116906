"""ATL dataset builder: real spotipy / yt-dlp / lyricsgenius clients against the fake services."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile
from atl_data_helpers import SONGS_PER_GENRE, fresh_credentials, make_synth, scan_for

from avtool.core.errors import InputError
from avtool.corpora.lyrics.builder import (
    DEFAULT_ARTISTS,
    LyricsBuildConfig,
    SplitConfig,
    build_lyrics_dataset,
    read_artist_files,
    split_tracks,
)
from avtool.corpora.lyrics.common import CredentialsError, clean_title, file_stem
from avtool.corpora.lyrics.youtube import pick_result
from avtool.synth.lyrics import load_catalog
from avtool.synth.lyrics_services import FakeLyricsServices, Fault


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    return make_synth(tmp_path_factory.mktemp("atl"))


def fast_config() -> LyricsBuildConfig:
    """Defaults, with timeouts and backoffs short enough for a test."""
    config = LyricsBuildConfig()
    return replace(
        config,
        spotify=replace(config.spotify, timeout=2.0),
        youtube=replace(config.youtube, timeout=2.0, backoff=0.2),
        genius=replace(config.genius, timeout=0.6, sleep_time=0.0),
    )


def use(fake: FakeLyricsServices, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in fake.env().items():
        monkeypatch.setenv(name, value)


def expected_tracks(catalog: dict) -> dict[str, dict]:
    """Tracks that must reach the manifest: all but the one per genre without a YouTube match."""
    return {
        t["id"]: {**t, "genre": genre}
        for genre, data in catalog["genres"].items()
        for t in data["tracks"]
        if any(v.get("media") for v in t["youtube"])
    }


# --- pieces ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "clean"),
    [
        ("Sunflower (Spider-Man: Into the Spider-Verse)", "Sunflower"),
        ("Old Town Road (feat. Billy Ray Cyrus) - Remix", "Old Town Road"),
        ("Tequila - Remastered 2019", "Tequila"),
        ("Wow. - Remix feat. Roddy Ricch", "Wow."),
        ("Eyes On You [Live]", "Eyes On You"),
        ("Self Made ft. Future", "Self Made"),
        ("Mo Bamba", "Mo Bamba"),
        ("10,000 Hours (with Justin Bieber)", "10,000 Hours"),
        ("Speechless - Acoustic Version", "Speechless"),
        ("Jolene", "Jolene"),
        ("(Intro)", "(Intro)"),  # nothing left: the title is kept
    ],
)
def test_titles_are_cleaned_for_genius(title, clean):
    assert clean_title(title) == clean


def test_file_names_come_from_ids_never_paths():
    assert file_stem("6rqhFgbbKwnb9MLmUQDhG6") == "6rqhFgbbKwnb9MLmUQDhG6"
    for hostile in ("../../etc/passwd", "a/b", "Ünïcode", "", "x" * 65, ".hidden", "con\x00"):
        stem = file_stem(hostile)
        assert stem.startswith("h") and len(stem) == 33 and stem.isalnum(), hostile
    assert file_stem("a/b") != file_stem("a\\b")


def test_youtube_result_is_chosen_by_duration_and_poor_matches_rejected():
    entries = [
        {"id": "loop", "duration": 3600},
        {"id": "live", "duration": 260},
        {"id": "audio", "duration": 203},
        {"id": "none"},
    ]
    assert pick_result(entries, 201.4, 15)[0]["id"] == "audio"
    chosen, why = pick_result(entries[:2], 201.4, 15)
    assert chosen is None and "59s off" in why
    assert pick_result([{"id": "x"}], 200, 15) == (None, "none of 1 results has a duration")


def test_shipped_artist_lists_are_the_reports_top_10s():
    genres = read_artist_files(DEFAULT_ARTISTS)
    assert sorted(genres) == ["country", "rap"]
    assert len(genres["rap"]) == len(genres["country"]) == 10
    assert genres["rap"][0] == "Post Malone" and genres["country"][0] == "Luke Combs"


def test_artist_files_skip_comments_and_duplicates(tmp_path):
    (tmp_path / "rap.txt").write_text("# top\nA\n\nB  # note\nA\n", encoding="utf-8")
    (tmp_path / "empty.txt").write_text("# nothing\n")
    assert read_artist_files(tmp_path) == {"rap": ["A", "B"]}
    with pytest.raises(InputError, match="artist folder not found"):
        read_artist_files(tmp_path / "missing")
    (tmp_path / "rap.txt").unlink()
    with pytest.raises(InputError, match=r"no <genre>\.txt file with artists"):
        read_artist_files(tmp_path)


def test_split_is_balanced_per_genre_and_seeded():
    complete = {
        "rap": [{"id": f"r{i:02d}"} for i in range(25)],
        "country": [{"id": f"c{i:02d}"} for i in range(20)],
    }
    splits, dropped = split_tracks(complete, SplitConfig(seed=1))
    assert dropped == {"country": 0, "rap": 5}
    for genre in ("rap", "country"):
        assert {k: len(v) for k, v in splits[genre].items()} == {"test": 2, "valid": 2, "train": 16}
    again, _ = split_tracks(complete, SplitConfig(seed=1))
    other, _ = split_tracks(complete, SplitConfig(seed=2))
    assert again == splits and other != splits
    unbalanced, dropped = split_tracks(complete, SplitConfig(seed=1, balance=False))
    assert len(unbalanced["rap"]["train"]) == 21 and dropped["rap"] == 0  # 25 - 2 - 2


def test_synthetic_genres_differ_in_words_tempo_and_timbre(synth):
    from avtool.synth.lyrics import VOCABULARY, render_audio

    catalog = load_catalog(synth)
    rap = catalog["genres"]["rap"]["tracks"][0]["genius"]["lyrics"].lower().split()
    country = catalog["genres"]["country"]["tracks"][0]["genius"]["lyrics"].lower().split()
    assert sum(w in VOCABULARY["rap"] for w in rap) > 10 * sum(
        w in VOCABULARY["rap"] for w in country
    )

    def low_share(y):
        spectrum = np.abs(np.fft.rfft(y)) ** 2
        return spectrum[np.fft.rfftfreq(len(y), 1 / 16000) < 100].sum() / spectrum.sum()

    def beat_seconds(y):
        """The strongest period of the onset envelope between 0.3 and 1 s."""
        frames = (y[: len(y) // 160 * 160].reshape(-1, 160) ** 2).sum(1)
        onsets = np.maximum(0, np.diff(np.log(frames + 1e-6)))
        onsets -= onsets.mean()
        autocorrelation = np.correlate(onsets, onsets, "full")[len(onsets) - 1 :]
        lags = np.arange(len(autocorrelation)) / 100
        band = (lags >= 0.3) & (lags <= 1.0)
        return lags[band][np.argmax(autocorrelation[band])]

    rap = [render_audio("rap", 12.0, seed=s) for s in range(6)]
    country = [render_audio("country", 12.0, seed=s) for s in range(6)]
    assert min(map(low_share, rap)) > 0.3 > max(map(low_share, country))  # sub-bass vs strings
    # 140-160 BPM is a 0.38-0.43 s beat; 76-100 BPM is 0.6-0.79 s.
    assert np.median([beat_seconds(y) for y in rap]) < 0.45
    assert np.median([beat_seconds(y) for y in country]) > 0.55


# --- the whole builder against the fakes, with faults ------------------------------------


def test_build_survives_rate_limits_failures_timeouts_and_malformed_json(
    synth, tmp_path, monkeypatch, caplog
):
    catalog = load_catalog(synth)
    expected = expected_tracks(catalog)
    first_artist = catalog["genres"]["rap"]["artists"][0]["id"]
    some_video = next(v["id"] for t in expected.values() for v in t["youtube"] if v.get("media"))
    faults = [
        Fault("spotify", "top-tracks", ["429"], key=first_artist, retry_after="1"),
        Fault("spotify", "artist-search", ["malformed"]),
        Fault("youtube", "search", ["503", "429"], retry_after="0"),
        Fault("youtube", "media", ["500"], key=some_video),
        Fault("genius", "search", ["malformed"]),
        Fault("genius", "page", ["timeout"], delay=1.5),
    ]
    out = tmp_path / "data"
    with FakeLyricsServices(synth, credentials=fresh_credentials(), faults=faults) as fake:
        use(fake, monkeypatch)
        with caplog.at_level(logging.INFO):
            result = build_lyrics_dataset(synth / "artists", out, fast_config())
        assert all(not f.actions for f in faults), "every injected fault was met"
        assert result["state"] == "done" and result["retryable"] == 0
        assert result["manifest"] == len(expected) == 2 * SONGS_PER_GENRE

        # Retry-After of the 429 was honoured (HttpClient's log of the pause says how long).
        assert any(
            "HTTP 429" in r.getMessage() and "in 1.0s" in r.getMessage() for r in caplog.records
        )
        assert fake.received[("spotify", "top-tracks", first_artist)] == 2
        # yt-dlp's 500 was retried by our loop; the media was then served once.
        assert fake.received[("youtube", "media", some_video)] == 2
        # Malformed JSON went to the journal as retryable, then the retry pass fetched it.
        spotify_lines = [
            json.loads(x) for x in (out / "spotify" / "journal.jsonl").read_text().splitlines()
        ]
        assert [e["status"] for e in spotify_lines].count("retryable") == 1
        assert "malformed" in next(e["reason"] for e in spotify_lines if e["status"] == "retryable")
        genius_search = [
            json.loads(x) for x in (out / "genius" / "journal.jsonl").read_text().splitlines()
        ]
        assert sum(e["status"] == "retryable" for e in genius_search) == 1

        # Nothing finished was fetched twice.
        for video in (v["id"] for t in expected.values() for v in t["youtube"] if v.get("media")):
            assert fake.served[("youtube", "media", video)] == 1
        for track in expected.values():
            assert fake.served[("genius", "page", track["genius"]["path"])] == 1

        # A rerun has nothing to do and asks nothing of any service.
        before = sum(fake.received.values())
        again = build_lyrics_dataset(synth / "artists", out, fast_config())
        assert again["fetched"] == 0 and sum(fake.received.values()) == before

    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert {r["id"] for r in rows} == set(expected)
    for row in rows:
        track = expected[row["id"]]
        assert row["genre"] == track["genre"] and row["title"] == track["name"]
        assert row["artist"] == track["artists"][0]["name"]
        assert (
            row["isrc"] == track["isrc"] and row["spotify_duration"] == track["duration_ms"] / 1000
        )
        lyrics = (out / row["lyrics_path"]).read_text(encoding="utf-8")
        assert lyrics == track["genius"]["lyrics"] + "\n"  # raw, section tags kept
        audio, sr = soundfile.read(out / row["path"])
        assert sr == 16000 and audio.ndim == 1
        assert row["duration"] == pytest.approx(track["audio_seconds"], abs=0.01)
        assert Path(row["path"]).name == f"{row['id']}.wav"
    per_split = {(r["genre"], r["split"]) for r in rows}
    assert ("rap", "train") in per_split and ("country", "train") in per_split
    summary = json.loads((out / "split" / "summary.json").read_text())
    assert summary["per_genre"]["rap"] == summary["per_genre"]["country"]
    # The featuring/remastered title was searched on Genius without its decorations.
    searches = [json.loads(x) for x in (out / "genius" / "search.jsonl").read_text().splitlines()]
    feat = next(s for s in searches if s["song"] and "(feat." in expected[s["id"]]["name"])
    assert "feat" not in feat["query"] and "Remastered" not in feat["query"]
    assert feat["song"]["title_match"] == 1.0
    # The track with only an hour-long upload was rejected as a poor match.
    rejected = [json.loads(x) for x in (out / "youtube" / "journal.jsonl").read_text().splitlines()]
    assert (
        sum("s off Spotify's" in e["reason"] for e in rejected if e["status"] == "not_found") == 2
    )


def test_persistent_failure_is_left_retryable_then_fetched_on_rerun(synth, tmp_path, monkeypatch):
    catalog = load_catalog(synth)
    expected = expected_tracks(catalog)
    video = next(v["id"] for t in expected.values() for v in t["youtube"] if v.get("media"))
    config = replace(fast_config(), youtube=replace(fast_config().youtube, retries=1))
    # 2 attempts in the first pass, 2 in the retry pass: all fail.
    faults = [Fault("youtube", "media", ["503"] * 4, key=video, retry_after="0")]
    out = tmp_path / "data"
    with FakeLyricsServices(synth, credentials=fresh_credentials(), faults=faults) as fake:
        use(fake, monkeypatch)
        first = build_lyrics_dataset(synth / "artists", out, config)
        assert first["state"] == "partial" and first["retryable"] == 1
        assert not (out / "youtube" / "stage.json").exists()
        journal = [
            json.loads(x) for x in (out / "youtube" / "journal.jsonl").read_text().splitlines()
        ]
        assert [e["status"] for e in journal if e.get("video_id") == video or "503" in e["reason"]]
        served_before = +fake.served
        second = build_lyrics_dataset(synth / "artists", out, config)
        assert second["state"] == "done" and second["manifest"] == len(expected)
        newly = fake.served - served_before
        # Only the failed track's search result was reused and its audio fetched; its lyrics too.
        assert newly[("youtube", "media", video)] == 1
        assert sum(v for (s, route, _), v in newly.items() if route == "media") == 1
        assert (
            sum(v for (s, route, _), v in newly.items() if route == "search" and s == "youtube")
            == 0
        )
        assert (out / "youtube" / "stage.json").exists()


def test_refused_or_missing_credentials_stop_with_a_clear_message(synth, tmp_path, monkeypatch):
    good = fresh_credentials()
    with FakeLyricsServices(synth, credentials=good) as fake:
        use(fake, monkeypatch)
        wrong = "wrong-" + good["SPOTIPY_CLIENT_SECRET"]
        monkeypatch.setenv("SPOTIPY_CLIENT_SECRET", wrong)
        with pytest.raises(CredentialsError) as refused:
            build_lyrics_dataset(synth / "artists", tmp_path / "a", fast_config())
        message = str(refused.value)
        assert "HTTP 400" in message and "SPOTIPY_CLIENT_SECRET" in message
        assert wrong not in message and good["SPOTIPY_CLIENT_ID"] not in message

        monkeypatch.setenv("SPOTIPY_CLIENT_SECRET", good["SPOTIPY_CLIENT_SECRET"])
        monkeypatch.setenv("GENIUS_ACCESS_TOKEN", "not-the-token")
        with pytest.raises(CredentialsError, match=r"genius: GET .* HTTP 401") as genius:
            build_lyrics_dataset(synth / "artists", tmp_path / "b", fast_config())
        assert "not-the-token" not in str(genius.value)

        monkeypatch.delenv("GENIUS_ACCESS_TOKEN")
        with pytest.raises(CredentialsError, match="GENIUS_ACCESS_TOKEN not set"):
            build_lyrics_dataset(synth / "artists", tmp_path / "b", fast_config())
        assert scan_for([tmp_path], [*good.values(), wrong, *fake.secrets()]) == []


def test_genre_playlists_are_made_for_the_user(synth, monkeypatch):
    from avtool.corpora.lyrics.spotify import SpotifyConfig, create_playlist, make_client

    with FakeLyricsServices(synth, credentials=fresh_credentials()) as fake:
        use(fake, monkeypatch)
        client = make_client(SpotifyConfig(), auth_token=fake.user_token)
        uris = [f"spotify:track:{i:022d}" for i in range(150)]
        playlist = create_playlist(client, "avtool atl rap", uris, "test")
        assert fake.playlists[playlist] == {"name": "avtool atl rap", "items": uris}
        assert fake.received[("spotify", "playlist-items", playlist)] == 2  # 100 per request


def test_playlist_stage_makes_one_per_genre_once(synth, tmp_path, monkeypatch):
    from avtool.corpora.lyrics import spotify
    from avtool.corpora.lyrics.builder import _make_playlists

    tracks = [
        {"id": f"{n:022d}", "genre": genre, "uri": f"spotify:track:{n:022d}"}
        for n, genre in enumerate(["rap", "rap", "country"])
    ]
    with FakeLyricsServices(synth, credentials=fresh_credentials()) as fake:
        use(fake, monkeypatch)
        # The real user_client asks the user to authorise in a browser: stand in its token.
        monkeypatch.setattr(
            spotify, "user_client", lambda config: spotify.make_client(config, fake.user_token)
        )
        first = _make_playlists(tmp_path / "playlists", tracks, fast_config(), force=False)
        again = _make_playlists(tmp_path / "playlists", tracks, fast_config(), force=False)
    assert first.counts["ok"] == 2 and again.state == "up-to-date" and again.fetched == 0
    made = sorted((p["name"], len(p["items"])) for p in fake.playlists.values())
    assert made == [("avtool atl country", 1), ("avtool atl rap", 2)]


def test_audio_is_converted_to_the_configured_format(tmp_path):
    from avtool.corpora.lyrics.youtube import YoutubeAudio, YoutubeConfig

    source = tmp_path / "media.wav"
    t = np.arange(44100) / 44100
    soundfile.write(source, np.stack([np.sin(2 * np.pi * 440 * t)] * 2, axis=1), 44100)
    audio = YoutubeAudio(YoutubeConfig(sample_rate=8000), tmp_path / "stage")
    target = tmp_path / "stage" / "wav" / "x.wav"
    audio._to_wav(source, target)
    info = soundfile.info(str(target))
    assert (info.samplerate, info.channels, info.subtype) == (8000, 1, "PCM_16")
    assert info.duration == pytest.approx(1.0, abs=0.01)
