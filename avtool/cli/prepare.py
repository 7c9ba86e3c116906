"""`avtool prepare ...`"""

from __future__ import annotations

from pathlib import Path

import typer

from avtool.cli import common

app = typer.Typer(no_args_is_help=True, help="Prepare commands.")


def _report_manifest(out: Path, result: dict) -> None:
    """Print a manifest stage's dry-run plan, or its state and counts."""
    if result["state"] == "dry-run":
        typer.echo(result["message"])
        return
    counts = ", ".join(f"{k} {v}" for k, v in sorted(result.items()) if k != "state")
    typer.echo(f"{out}: {result['state']} ({counts})")


@app.command("bsds")
@common.shared_options
def bsds(
    *,
    root: Path = typer.Option(..., "--root", help="BSDS500 data folder (images/, groundTruth/)."),
    out: common.OutOption,
    split: list[str] = typer.Option(
        None, "--split", help="Split to include, repeatable [train, val, test]."
    ),
    settings: common.Settings,
    stage: common.RejectingRun,
) -> None:
    """Manifest of BSDS500 images with their ground-truth .mat; bad files go to rejects.jsonl."""
    from avtool.corpora.bsds import PrepareConfig, prepare_bsds

    params = settings.resolve(PrepareConfig, {"splits": split or None})
    _report_manifest(out, prepare_bsds(root, out, params, **stage.options))


@app.command("ravdess")
@common.shared_options
def ravdess(
    *,
    root: Path = typer.Option(..., "--root", help="Folder holding Actor_01 … Actor_24."),
    out: common.OutOption,
    include_song: bool = typer.Option(
        None, "--include-song", help="Keep song files (vocal channel 02) [speech only]."
    ),
    settings: common.Settings,
    stage: common.RejectingRun,
) -> None:
    """Manifest of RAVDESS audio with every name field decoded; bad files go to rejects.jsonl."""
    from avtool.corpora.ravdess import PrepareConfig, prepare_ravdess

    params = settings.resolve(PrepareConfig, {"include_song": include_song})
    _report_manifest(out, prepare_ravdess(root, out, params, **stage.options))


@app.command("grid")
@common.shared_options
def grid(
    *,
    root: Path = typer.Option(..., "--root", help="GRID folder (s1 ... s34, alignments/, ...)."),
    out: common.OutOption,
    mixture_list: list[Path] = typer.Option(
        [], "--mixture-list", help="The LiMuSE authors' list file(s) instead of seeded lists."
    ),
    settings: common.Settings,
    seed: int = typer.Option(None, "--seed", help="Seed of the mixture lists [0]."),
    stage: common.ItemRun,
) -> None:
    """Index GRID, draw 2-speaker mixture lists, write dual-channel mixtures (index/ lists/ mix/)."""
    from avtool.corpora.grid import GridConfig
    from avtool.corpora.grid_mixtures import prepare_grid

    params = settings.resolve(GridConfig, {"seed": seed})
    result = prepare_grid(
        root,
        out,
        params,
        mixture_lists=mixture_list,
        **stage.options,
    )
    common.report_result(out, result)


@app.command("dcase2018")
@common.shared_options
def dcase2018(
    *,
    metadata: Path = typer.Option(
        ..., "--metadata", help="DCASE 2018 task 4 metadata folder (train/, test/, eval/)."
    ),
    out: common.OutOption,
    settings: common.Settings,
    stage: common.RejectingRun,
) -> None:
    """Clip manifest of the weak, unlabeled, test and eval lists; quirks reported, bad rows rejected."""
    from avtool.corpora.dcase2018 import PrepareConfig, prepare_dcase2018

    params = settings.resolve(PrepareConfig)
    result = prepare_dcase2018(metadata, out, params, **stage.options)
    common.report_result(out, result)


@app.command("lyrics")
@common.shared_options
def lyrics(
    *,
    out: common.OutOption,
    artists: Path = typer.Option(
        None,
        "--artists",
        help="Folder of <genre>.txt artist lists. Default: the report's Billboard 2019 top 10 "
        "rap and country artists; with --fake-services, the synthetic catalog's.",
    ),
    fake_services: Path = typer.Option(
        None,
        "--fake-services",
        help="Folder from `avtool synth lyrics`: serve it as Spotify, YouTube and Genius on "
        "127.0.0.1 in this process, with dummy credentials, instead of the real services.",
    ),
    playlists: bool = typer.Option(
        False, "--playlists", help="Also make a private Spotify playlist per genre (user consent)."
    ),
    seed: int = typer.Option(None, "--seed", help="Seed of the train/valid/test split [0]."),
    settings: common.Settings,
    stage: common.StageRun,
) -> None:
    """ATL dataset: Spotify top tracks -> YouTube audio -> Genius lyrics -> split manifest.

    Credentials from SPOTIPY_CLIENT_ID, SPOTIPY_CLIENT_SECRET and GENIUS_ACCESS_TOKEN.
    Resumable: finished items are never fetched again; rerun to retry the retryable ones.
    """
    from avtool.core.errors import StageFailed
    from avtool.corpora.lyrics.builder import LyricsBuildConfig, prepare_lyrics

    params = settings.resolve(LyricsBuildConfig, {"split": {"seed": seed}})
    result = prepare_lyrics(
        artists,
        out,
        params,
        fake_services=fake_services,
        **stage.options,
        playlists=playlists,
    )
    common.report_result(out, result)
    if result["state"] == "partial":
        raise StageFailed(
            f"{out}: {result['retryable']} item(s) still retryable (see the stages' "
            "journal.jsonl); rerun the same command to fetch them"
        )
