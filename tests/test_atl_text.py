"""ATL text and audio preparation: the report's cleaning, tokenizer, prefix pairs, 10 s clips."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from avtool.core.errors import ItemError
from avtool.features.lyrics_audio import LyricsAudioParams, clip
from avtool.features.lyrics_text import (
    Tokenizer,
    clean_line,
    clean_lyrics,
    prefix_pairs,
    wrap,
)


def test_cleaning_follows_the_report():
    # Lowercase, punctuation out (curly apostrophes too), one-letter and digit words out.
    assert clean_line("I’m rollin' 2 deep, Y'ALL—a B-52 in 4x4s!") == [
        "im", "rollin", "deep", "yall", "in",
    ]  # fmt: skip
    assert clean_line("Basically, I'm sayin' either way we 'bout to slide, ayy") == [
        "basically", "im", "sayin", "either", "way", "we", "bout", "to", "slide", "ayy",
    ]  # fmt: skip


def test_section_tags_are_dropped_by_default_and_words_on_request():
    text = "[Chorus: Drake]\nBlack leather glove\n[Outro]"
    assert clean_lyrics(text) == [["black", "leather", "glove"]]
    # The authors' code kept the tags' words: hence their model's "outro" after startseq.
    assert clean_lyrics(text, section_tags="words") == [
        ["chorus", "drake"], ["black", "leather", "glove"], ["outro"],
    ]  # fmt: skip


def test_lyricsgenius_artifacts_are_removed():
    raw = (
        "Toosie Slide Lyrics[Intro: Drake]\nBlack leather glove, no sequins\n"
        "You might also like\nIt go right foot up12Embed"
    )
    assert clean_lyrics(raw) == [
        ["black", "leather", "glove", "no", "sequins"], ["it", "go", "right", "foot", "up"],
    ]  # fmt: skip


def test_prefix_pairs_are_the_reports_table_2():
    sentence = wrap(clean_line("Black leather glove"))
    assert prefix_pairs(sentence) == [
        (["startseq"], "black"),
        (["startseq", "black"], "leather"),
        (["startseq", "black", "leather"], "glove"),
        (["startseq", "black", "leather", "glove"], "endseq"),
    ]


def test_tokenizer_ranks_by_count_and_round_trips(tmp_path):
    tokenizer = Tokenizer.fit([["b", "a", "c"], ["a", "c", "d"], ["a"]])
    # Keras' order: count descending, ties by first appearance; 0 is padding.
    assert tokenizer.index == {"a": 1, "c": 2, "b": 3, "d": 4}
    assert tokenizer.encode(["a", "zzz", "d"]) == [1, 4]  # unknown dropped, as Keras
    with_oov = Tokenizer.fit([["b", "a", "a"]], max_words=1, oov=True)
    assert with_oov.encode(["a", "b"]) == [2, 1] and with_oov.size == 3
    tokenizer.save(tmp_path / "tokenizer.json")
    loaded = Tokenizer.load(tmp_path / "tokenizer.json")
    assert loaded.index == tokenizer.index
    assert loaded.decode([0, 3, 1, 9]) == ["b", "a"]
    assert json.loads((tmp_path / "tokenizer.json").read_text())["words"] == ["a", "c", "b", "d"]


def _write_song(root, song_id, genre, split, lyrics):
    (root / f"{song_id}.txt").write_text(lyrics, encoding="utf-8")
    return {
        "id": song_id, "genre": genre, "split": split, "title": f"Title {song_id}",
        "artist": "Artist", "duration": 30.0, "path": f"{song_id}.wav",
        "lyrics_path": f"{song_id}.txt",
    }  # fmt: skip


def test_text_stage_fits_the_vocabulary_on_training_songs_only(tmp_path, cli):
    rows = [
        _write_song(tmp_path, "a", "rap", "train", "[Verse]\nMoney flow, money!\nStreet cash"),
        _write_song(tmp_path, "b", "country", "train", "Dirt road\nWhiskey river road"),
        _write_song(tmp_path, "c", "country", "test", "Banjo porch road"),
        _write_song(tmp_path, "d", "rap", "valid", "[Instrumental]\n1 2 3"),
    ]
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out, _ = cli("features", "lyrics-text", "--manifest", manifest, "--out", tmp_path / "t")
    assert code == 0, out
    tokenizer = Tokenizer.load(tmp_path / "t" / "tokenizer.json")
    assert "banjo" not in tokenizer.index and "road" in tokenizer.index
    assert tokenizer.words[:3] == ["startseq", "endseq", "money"]
    songs = [json.loads(x) for x in (tmp_path / "t" / "songs.jsonl").read_text().splitlines()]
    assert [s["id"] for s in songs] == ["a", "b", "c"]
    assert songs[0]["lines"] == [["money", "flow", "money"], ["street", "cash"]]
    rejects = (tmp_path / "t" / "rejects.jsonl").read_text()
    assert '"id": "d"' in rejects and "0 lines after cleaning" in rejects
    header = (tmp_path / "t" / "songs.csv").read_text().splitlines()[0]
    assert header == "index,song,year,artist,genre,lyrics"
    code, out, _ = cli("features", "lyrics-text", "--manifest", manifest, "--out", tmp_path / "t")
    assert code == 0 and "up to date" in out


def test_clip_takes_the_authors_offset_or_says_how_it_fell_back():
    params = LyricsAudioParams(sr=10, offset=2.0, duration=3.0)
    song = np.arange(60, dtype=np.float32)  # 6 s at 10 Hz
    piece, how = clip(song, params)
    assert how == "offset" and piece.tolist() == list(range(20, 50))
    piece, how = clip(song[:40], params)  # 4 s: 2 + 3 does not fit -> the last 3 s
    assert how == "last" and piece.tolist() == list(range(10, 40))
    piece, how = clip(song[:20], params)  # 2 s: shorter than the clip -> zero-padded
    assert how == "last" and piece.tolist() == list(range(20)) + [0] * 10
    pad = LyricsAudioParams(sr=10, offset=2.0, duration=3.0, short="pad")
    piece, how = clip(song[:40], pad)
    assert how == "pad" and piece.tolist() == list(range(20, 40)) + [0] * 10
    with pytest.raises(ItemError, match="shorter than offset"):
        clip(song[:40], LyricsAudioParams(sr=10, offset=2.0, duration=3.0, short="reject"))


def test_audio_stage_gives_64_by_1001_from_25_s(tmp_path, cli):
    from avtool.core.store import FeatureStore
    from avtool.features.spectral import SpectralExtractor, SpectralParams

    rng = np.random.default_rng(0)
    song = (0.1 * rng.standard_normal(36 * 16000)).astype(np.float32)
    sf.write(tmp_path / "s.wav", song, 16000, subtype="FLOAT")
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "s", "path": "s.wav"}) + "\n")
    code, out, _ = cli("features", "lyrics-audio", "--manifest", tmp_path / "m.jsonl",
                       "--out", tmp_path / "a")  # fmt: skip
    assert code == 0, out
    with FeatureStore(tmp_path / "a") as store:
        logmel = store["s"]
        assert store.attrs["extractor"] == "lyrics-audio"
    assert logmel.shape == (64, 1001)
    reference = SpectralExtractor(SpectralParams(sr=16000, n_fft=512, hop=160, n_mels=64))
    np.testing.assert_allclose(logmel, reference.logmel(song[25 * 16000 : 35 * 16000]), atol=1e-4)
