"""`avtool synth ...`: miniature corpora for the demo and the tests."""

from __future__ import annotations

from pathlib import Path

import typer

from avtool.cli import common

app = typer.Typer(no_args_is_help=True, help="Write synthetic corpora in miniature.")


def _made(out: Path, stamp: dict | str | None) -> bool:
    """Whether a synth call wrote its corpus; if not, print its dry-run plan or 'up to date'."""
    if isinstance(stamp, str):
        typer.echo(stamp)
    elif stamp is None:
        typer.echo(f"{out}: up to date")
    return isinstance(stamp, dict)


@app.command("speech")
@common.shared_options
def speech(
    *,
    out: common.OutOption,
    count: int = typer.Option(..., "--count", min=1, help="Number of clips."),
    seed: common.SeedOption = 0,
    duration: float = typer.Option(
        None,
        "--duration",
        help="Seconds per clip (1 or more), exactly: sentences until full, cut where a word "
        "starts, padded with silence. Default: one sentence per clip.",
    ),
    sr: int = typer.Option(16000, "--sr", min=1, help="Sample rate in Hz."),
    stage: common.StageRun,
) -> None:
    """Speech clips from espeak-ng voices (both genders) and a manifest.jsonl."""
    from avtool.synth.speech import make_speech_corpus

    stamp = make_speech_corpus(out, count, seed=seed, duration=duration, sr=sr, **stage.options)
    if _made(out, stamp):
        typer.echo(
            f"{out}: {stamp['counts']['clips']} clips, {stamp['audio_seconds']:.1f} s of speech "
            f"from {stamp['counts']['speakers']} speakers; manifest {out / 'manifest.jsonl'}"
        )


@app.command("bsds")
@common.shared_options
def bsds(
    *,
    out: common.OutOption,
    count: int = typer.Option(12, "--count", min=1, help="Number of images."),
    height: int = typer.Option(48, "--height", min=8, help="Image height in pixels."),
    width: int = typer.Option(64, "--width", min=8, help="Image width in pixels."),
    splits: str = typer.Option(
        "test", "--splits", help="Comma list of splits, images round-robin [test]."
    ),
    seed: common.SeedOption = 0,
    stage: common.StageRun,
) -> None:
    """BSDS500 layout: region images (colour + texture + noise) and 3-5 annotators' .mat."""
    from avtool.synth.bsds import describe_synth, parse_splits, synth_bsds

    chosen = parse_splits(splits)
    if stage.dry_run:
        typer.echo(describe_synth(out, count, height, width, seed, chosen))
        return
    truth = synth_bsds(
        out, count, height=height, width=width, seed=seed, splits=chosen, force=stage.force
    )
    typer.echo(f"{out}: {len(truth)} images with ground truth in images/ and groundTruth/")


@app.command("ravdess")
@common.shared_options
def ravdess(
    *,
    out: common.OutOption,
    actors: int = typer.Option(4, "--actors", min=1, max=24, help="Actors (odd male) [4]."),
    sr: int = typer.Option(48000, "--sr", min=1, help="Sample rate in Hz [48000, as RAVDESS]."),
    seed: common.SeedOption = 0,
    stage: common.StageRun,
) -> None:
    """RAVDESS layout: 60 speech files per actor, emotions acted through espeak-ng prosody."""
    from avtool.synth.ravdess import synth_ravdess

    stamp = synth_ravdess(out, actors=actors, seed=seed, sr=sr, **stage.options)
    if _made(out, stamp):
        typer.echo(f"{out}: {stamp['counts']['files']} files from {actors} actors")


@app.command("grid")
@common.shared_options
def grid(
    *,
    out: common.OutOption,
    speakers: int = typer.Option(4, "--speakers", min=1, max=33, help="Speakers s1, s2, ..."),
    utterances: int = typer.Option(4, "--utterances", min=1, help="Utterances per speaker."),
    width: int = typer.Option(360, "--width", help="Frame width (GRID's 360)."),
    height: int = typer.Option(288, "--height", help="Frame height (GRID's 288)."),
    seed: common.SeedOption = 0,
    stage: common.StageRun,
) -> None:
    """GRID's layout and format: .mpg (MPEG-1, 44.1 kHz MP2) of a talking face, .align files."""
    from avtool.synth.grid import synth_grid

    stamp = synth_grid(out, speakers, utterances, seed=seed, size=(width, height), **stage.options)
    if _made(out, stamp):
        typer.echo(f"{out}: {stamp['counts']['utterances']} utterances of {speakers} speakers")


@app.command("lyrics")
@common.shared_options
def lyrics(
    *,
    out: common.OutOption,
    songs_per_genre: int = typer.Option(
        12, "--songs-per-genre", min=1, help="Tracks per genre that reach the manifest."
    ),
    seed: common.SeedOption = 0,
    stage: common.StageRun,
) -> None:
    """ATL catalog for the fake services: rap and country artists, audio, raw lyrics."""
    from avtool.synth.lyrics import synth_lyrics

    stamp = synth_lyrics(out, songs_per_genre, seed=seed, **stage.options)
    if _made(out, stamp):
        typer.echo(
            f"{out}: {stamp['counts']['tracks']} tracks ({songs_per_genre} per genre reach the "
            f"manifest, one per genre has no YouTube match); serve with "
            f"`avtool prepare lyrics --fake-services {out}`"
        )


@app.command("dcase2018")
@common.shared_options
def dcase2018(
    *,
    out: common.OutOption,
    clips: int = typer.Option(60, "--clips", min=5, help="Clips over weak, unlabeled, test."),
    media: bool = typer.Option(
        True, "--media/--no-media", help="Write media/<youtube_id>.mp4 (default), or lists only."
    ),
    seed: common.SeedOption = 0,
    stage: common.StageRun,
) -> None:
    """DCASE 2018 task 4 layout: metadata lists with the real quirks, media/<youtube_id>.mp4."""
    from avtool.synth.dcase2018 import synth_dcase2018

    stamp = synth_dcase2018(out, clips=clips, seed=seed, media=media, **stage.options)
    if _made(out, stamp):
        counts = stamp["counts"]
        typer.echo(
            f"{out}: {counts['clips']} clips ({counts['weak_clips']} weak, "
            f"{counts['unlabel_in_domain_clips']} unlabeled, {counts['test_clips']} test), "
            f"{counts['events']} events; metadata/" + (" and media/" if media else "")
        )
