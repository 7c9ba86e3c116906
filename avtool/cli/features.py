"""`avtool features ...`: feature extraction into HDF5 stores, and store checks."""

from __future__ import annotations

from pathlib import Path

import typer

from avtool.cli import common

app = typer.Typer(no_args_is_help=True, help="Extract features into HDF5 stores; check stores.")


def _spectral(
    kind: str,
    manifest: Path,
    out: Path,
    flags: dict,
    config: Path | None,
    sets: list[str],
    jobs: int,
    shard: str | None,
    launcher: str,
    force: bool,
    dry_run: bool,
    max_reject_rate: float,
) -> None:
    from avtool.core.config import resolve
    from avtool.features.logmel import extract_spectral
    from avtool.features.spectral import SpectralParams

    params = resolve(SpectralParams, config, sets, flags=flags)
    result = extract_spectral(
        kind,
        manifest,
        out,
        params,
        shard=shard,
        jobs=jobs,
        launcher=launcher,
        force=force,
        dry_run=dry_run,
        max_reject_rate=max_reject_rate,
    )
    common.report_item_stage(result)


@app.command("logmel")
def logmel(
    manifest: Path = common.ManifestOption,
    out: Path = common.OutOption,
    sr: int = typer.Option(None, "--sr", help="Sample rate to load at [22050]."),
    n_fft: int = typer.Option(None, "--n-fft", help="FFT size [2048]."),
    hop: int = typer.Option(None, "--hop", help="Hop length in samples [512]."),
    n_mels: int = typer.Option(None, "--n-mels", help="Mel bands [128]."),
    power: float = typer.Option(None, "--power", help="2 for power, 1 for magnitude [2]."),
    config: Path = common.ConfigOption,
    sets: list[str] = common.SetOption,
    jobs: int = common.JobsOption,
    shard: str = common.ShardOption,
    launcher: str = common.LauncherOption,
    force: bool = common.ForceOption,
    dry_run: bool = common.DryRunOption,
    max_reject_rate: float = common.MaxRejectOption,
) -> None:
    """Log-mel spectrograms [n_mels, frames] in dB, equal to librosa's within 0.01 dB."""
    flags = {"sr": sr, "n_fft": n_fft, "hop": hop, "n_mels": n_mels, "power": power}
    _spectral(
        "logmel",
        manifest,
        out,
        flags,
        config,
        sets,
        jobs,
        shard,
        launcher,
        force,
        dry_run,
        max_reject_rate,
    )


@app.command("mfcc")
def mfcc(
    manifest: Path = common.ManifestOption,
    out: Path = common.OutOption,
    sr: int = typer.Option(None, "--sr", help="Sample rate to load at [22050]."),
    n_fft: int = typer.Option(None, "--n-fft", help="FFT size [2048]."),
    hop: int = typer.Option(None, "--hop", help="Hop length in samples [512]."),
    n_mels: int = typer.Option(None, "--n-mels", help="Mel bands [128]."),
    n_mfcc: int = typer.Option(None, "--n-mfcc", help="Coefficients kept [20]."),
    power: float = typer.Option(None, "--power", help="2 for power, 1 for magnitude [2]."),
    config: Path = common.ConfigOption,
    sets: list[str] = common.SetOption,
    jobs: int = common.JobsOption,
    shard: str = common.ShardOption,
    launcher: str = common.LauncherOption,
    force: bool = common.ForceOption,
    dry_run: bool = common.DryRunOption,
    max_reject_rate: float = common.MaxRejectOption,
) -> None:
    """MFCCs [n_mfcc, frames], equal to librosa.feature.mfcc within 1e-3."""
    flags = {
        "sr": sr,
        "n_fft": n_fft,
        "hop": hop,
        "n_mels": n_mels,
        "n_mfcc": n_mfcc,
        "power": power,
    }
    _spectral(
        "mfcc",
        manifest,
        out,
        flags,
        config,
        sets,
        jobs,
        shard,
        launcher,
        force,
        dry_run,
        max_reject_rate,
    )


@app.command("check")
def check(store: Path = typer.Argument(..., help="Feature store directory.")) -> None:
    """Open every shard and read every item; the last line is `items: N`."""
    from avtool.core.store import check_store

    items, problems = check_store(store)
    for problem in problems:
        typer.echo(f"warning: {problem}")
    typer.echo(f"items: {items}")
