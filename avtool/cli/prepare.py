"""`avtool prepare ...`"""

from __future__ import annotations

from pathlib import Path

import typer

from avtool.cli import common

app = typer.Typer(no_args_is_help=True, help="Prepare commands.")


@app.command("bsds")
def bsds(
    root: Path = typer.Option(..., "--root", help="BSDS500 data folder (images/, groundTruth/)."),
    out: Path = common.OutOption,
    split: list[str] = typer.Option(
        None, "--split", help="Split to include, repeatable [train, val, test]."
    ),
    config: Path = common.ConfigOption,
    sets: list[str] = common.SetOption,
    force: bool = common.ForceOption,
    dry_run: bool = common.DryRunOption,
    max_reject_rate: float = common.MaxRejectOption,
) -> None:
    """Manifest of BSDS500 images with their ground-truth .mat; bad files go to rejects.jsonl."""
    from avtool.core.config import resolve
    from avtool.corpora.bsds import PrepareConfig, prepare_bsds

    params = resolve(PrepareConfig, config, sets, flags={"splits": split or None})
    result = prepare_bsds(
        root, out, params, force=force, dry_run=dry_run, max_reject_rate=max_reject_rate
    )
    if result["state"] == "dry-run":
        typer.echo(result["message"])
        return
    counts = ", ".join(f"{k} {v}" for k, v in sorted(result.items()) if k != "state")
    typer.echo(f"{out}: {result['state']} ({counts})")


@app.command("ravdess")
def ravdess(
    root: Path = typer.Option(..., "--root", help="Folder holding Actor_01 … Actor_24."),
    out: Path = common.OutOption,
    include_song: bool = typer.Option(
        None, "--include-song", help="Keep song files (vocal channel 02) [speech only]."
    ),
    config: Path = common.ConfigOption,
    sets: list[str] = common.SetOption,
    force: bool = common.ForceOption,
    dry_run: bool = common.DryRunOption,
    max_reject_rate: float = common.MaxRejectOption,
) -> None:
    """Manifest of RAVDESS audio with every name field decoded; bad files go to rejects.jsonl."""
    from avtool.core.config import resolve
    from avtool.corpora.ravdess import PrepareConfig, prepare_ravdess

    params = resolve(PrepareConfig, config, sets, flags={"include_song": include_song})
    result = prepare_ravdess(
        root, out, params, force=force, dry_run=dry_run, max_reject_rate=max_reject_rate
    )
    if result["state"] == "dry-run":
        typer.echo(result["message"])
        return
    counts = ", ".join(f"{k} {v}" for k, v in sorted(result.items()) if k != "state")
    typer.echo(f"{out}: {result['state']} ({counts})")


@app.command("grid")
def grid(
    root: Path = typer.Option(..., "--root", help="GRID folder (s1 ... s34, alignments/, ...)."),
    out: Path = common.OutOption,
    mixture_list: list[Path] = typer.Option(
        [], "--mixture-list", help="The LiMuSE authors' list file(s) instead of seeded lists."
    ),
    config: Path = common.ConfigOption,
    sets: list[str] = common.SetOption,
    seed: int = typer.Option(None, "--seed", help="Seed of the mixture lists [0]."),
    jobs: int = common.JobsOption,
    shard: str = common.ShardOption,
    launcher: str = common.LauncherOption,
    force: bool = common.ForceOption,
    dry_run: bool = common.DryRunOption,
    max_reject_rate: float = common.MaxRejectOption,
) -> None:
    """Index GRID, draw 2-speaker mixture lists, write dual-channel mixtures (index/ lists/ mix/)."""
    from avtool.core.config import resolve
    from avtool.corpora.grid import GridConfig
    from avtool.corpora.grid_mixtures import prepare_grid

    params = resolve(GridConfig, config, sets, flags={"seed": seed})
    result = prepare_grid(
        root,
        out,
        params,
        mixture_lists=mixture_list,
        shard=shard,
        jobs=jobs,
        launcher=launcher,
        force=force,
        dry_run=dry_run,
        max_reject_rate=max_reject_rate,
    )
    common.report_result(out, result)


@app.command("dcase2018")
def dcase2018(
    metadata: Path = typer.Option(
        ..., "--metadata", help="DCASE 2018 task 4 metadata folder (train/, test/, eval/)."
    ),
    out: Path = common.OutOption,
    config: Path = common.ConfigOption,
    sets: list[str] = common.SetOption,
    force: bool = common.ForceOption,
    dry_run: bool = common.DryRunOption,
    max_reject_rate: float = common.MaxRejectOption,
) -> None:
    """Clip manifest of the weak, unlabeled, test and eval lists; quirks reported, bad rows rejected."""
    from avtool.core.config import resolve
    from avtool.corpora.dcase2018 import PrepareConfig, prepare_dcase2018

    params = resolve(PrepareConfig, config, sets)
    result = prepare_dcase2018(
        metadata, out, params, force=force, dry_run=dry_run, max_reject_rate=max_reject_rate
    )
    common.report_result(out, result)


@app.command("lyrics")
def lyrics(
    out: Path = common.OutOption,
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
    config: Path = common.ConfigOption,
    sets: list[str] = common.SetOption,
    force: bool = common.ForceOption,
    dry_run: bool = common.DryRunOption,
) -> None:
    """ATL dataset: Spotify top tracks -> YouTube audio -> Genius lyrics -> split manifest.

    Credentials from SPOTIPY_CLIENT_ID, SPOTIPY_CLIENT_SECRET and GENIUS_ACCESS_TOKEN.
    Resumable: finished items are never fetched again; rerun to retry the retryable ones.
    """
    from avtool.core.config import resolve
    from avtool.core.errors import StageFailed
    from avtool.corpora.lyrics.builder import LyricsBuildConfig, prepare_lyrics

    params = resolve(LyricsBuildConfig, config, sets, flags={"split": {"seed": seed}})
    result = prepare_lyrics(
        artists,
        out,
        params,
        fake_services=fake_services,
        force=force,
        dry_run=dry_run,
        playlists=playlists,
    )
    common.report_result(out, result)
    if result["state"] == "partial":
        raise StageFailed(
            f"{out}: {result['retryable']} item(s) still retryable (see the stages' "
            "journal.jsonl); rerun the same command to fetch them"
        )
