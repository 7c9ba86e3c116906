"""`avtool features ...`: feature extraction into HDF5 stores, and store checks."""

from __future__ import annotations

from pathlib import Path

import typer

from avtool.cli import common

app = typer.Typer(no_args_is_help=True, help="Extract features into HDF5 stores; check stores.")


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
    from avtool.features.logmel import extract_logmel
    from avtool.features.spectral import SpectralParams

    flags = {"sr": sr, "n_fft": n_fft, "hop": hop, "n_mels": n_mels, "power": power}
    common.run_manifest_command(
        SpectralParams,
        extract_logmel,
        manifest,
        out,
        config,
        sets,
        flags=flags,
        shard=shard,
        jobs=jobs,
        launcher=launcher,
        force=force,
        dry_run=dry_run,
        max_reject_rate=max_reject_rate,
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
    from avtool.features.mfcc import extract_mfcc
    from avtool.features.spectral import SpectralParams

    flags = {
        "sr": sr,
        "n_fft": n_fft,
        "hop": hop,
        "n_mels": n_mels,
        "n_mfcc": n_mfcc,
        "power": power,
    }
    common.run_manifest_command(
        SpectralParams,
        extract_mfcc,
        manifest,
        out,
        config,
        sets,
        flags=flags,
        shard=shard,
        jobs=jobs,
        launcher=launcher,
        force=force,
        dry_run=dry_run,
        max_reject_rate=max_reject_rate,
    )


@app.command("check")
def check(store: Path = typer.Argument(..., help="Feature store directory.")) -> None:
    """Open every shard and read every item; the last line is `items: N`."""
    from avtool.core.store import check_store

    items, problems = check_store(store)
    for problem in problems:
        typer.echo(f"warning: {problem}")
    typer.echo(f"items: {items}")


@app.command("ser-mfcc")
def ser_mfcc(
    manifest: Path = common.ManifestOption,
    out: Path = common.OutOption,
    sr: int = typer.Option(None, "--sr", help="Rate to load at: 16000, or 48000 (MFCC-48000-40)."),
    n_mfcc: int = typer.Option(None, "--n-mfcc", help="MFCCs (and Δ, ΔΔ) [40]."),
    sequence: bool = typer.Option(
        None, "--sequence", help="Store per-frame [frames, 160] sequences, not their means."
    ),
    config: Path = common.ConfigOption,
    sets: list[str] = common.SetOption,
    jobs: int = common.JobsOption,
    shard: str = common.ShardOption,
    launcher: str = common.LauncherOption,
    force: bool = common.ForceOption,
    dry_run: bool = common.DryRunOption,
    max_reject_rate: float = common.MaxRejectOption,
) -> None:
    """The SER report's 160-d vector: means of 40 MFCC, Δ, ΔΔ and 40 log-mel bands."""
    from avtool.features.ser_mfcc import SerMfccParams, extract_ser_mfcc

    common.run_manifest_command(
        SerMfccParams,
        extract_ser_mfcc,
        manifest,
        out,
        config,
        sets,
        flags={"sr": sr, "n_mfcc": n_mfcc, "sequence": sequence},
        shard=shard,
        jobs=jobs,
        launcher=launcher,
        force=force,
        dry_run=dry_run,
        max_reject_rate=max_reject_rate,
    )


@app.command("wav2vec2")
def wav2vec2(
    manifest: Path = common.ManifestOption,
    out: Path = common.OutOption,
    model: str = typer.Option(
        None, "--model", help="Local model folder or cached name [facebook/wav2vec2-base]."
    ),
    sequence: bool = typer.Option(
        None, "--sequence", help="Store last hidden states [frames, hidden], not their mean."
    ),
    allow_random_weights: bool = typer.Option(
        None, "--allow-random-weights", help="Accept a model with random weights (recorded)."
    ),
    config: Path = common.ConfigOption,
    sets: list[str] = common.SetOption,
    jobs: int = common.JobsOption,
    shard: str = common.ShardOption,
    launcher: str = common.LauncherOption,
    force: bool = common.ForceOption,
    dry_run: bool = common.DryRunOption,
    max_reject_rate: float = common.MaxRejectOption,
) -> None:
    """wav2vec 2.0 last hidden states (time mean by default), from local weights only."""
    from avtool.features.wav2vec2 import Wav2Vec2Params, extract_wav2vec2

    flags = {"model": model, "sequence": sequence, "allow_random_weights": allow_random_weights}
    common.run_manifest_command(
        Wav2Vec2Params,
        extract_wav2vec2,
        manifest,
        out,
        config,
        sets,
        flags=flags,
        shard=shard,
        jobs=jobs,
        launcher=launcher,
        force=force,
        dry_run=dry_run,
        max_reject_rate=max_reject_rate,
    )


@app.command("voiceprint")
def voiceprint(
    manifest: Path = common.ManifestOption,
    out: Path = common.OutOption,
    config: Path = common.ConfigOption,
    sets: list[str] = common.SetOption,
    jobs: int = common.JobsOption,
    shard: str = common.ShardOption,
    launcher: str = common.LauncherOption,
    force: bool = common.ForceOption,
    dry_run: bool = common.DryRunOption,
    max_reject_rate: float = common.MaxRejectOption,
) -> None:
    """256-d resemblyzer speaker embedding per utterance (e.g. GRID lists/enrolment.jsonl)."""
    from avtool.features.voiceprint import VoiceprintParams, extract_voiceprint

    common.run_manifest_command(
        VoiceprintParams,
        extract_voiceprint,
        manifest,
        out,
        config,
        sets,
        shard=shard,
        jobs=jobs,
        launcher=launcher,
        force=force,
        dry_run=dry_run,
        max_reject_rate=max_reject_rate,
    )


@app.command("face")
def face(
    manifest: Path = common.ManifestOption,
    out: Path = common.OutOption,
    detector: str = typer.Option(None, "--detector", help="dlib (HOG) or haar (OpenCV) [dlib]."),
    config: Path = common.ConfigOption,
    sets: list[str] = common.SetOption,
    jobs: int = common.JobsOption,
    shard: str = common.ShardOption,
    launcher: str = common.LauncherOption,
    force: bool = common.ForceOption,
    dry_run: bool = common.DryRunOption,
    max_reject_rate: float = common.MaxRejectOption,
) -> None:
    """Per-frame (25 fps) 128-d dlib face descriptors + face mask per video."""
    from avtool.features.face import FaceParams, extract_face

    result = common.run_manifest_command(
        FaceParams,
        extract_face,
        manifest,
        out,
        config,
        sets,
        flags={"detector": detector},
        shard=shard,
        jobs=jobs,
        launcher=launcher,
        force=force,
        dry_run=dry_run,
        max_reject_rate=max_reject_rate,
    )
    if result.message and result.state != "dry-run":
        typer.echo(result.message)
