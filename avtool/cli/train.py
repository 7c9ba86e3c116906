"""`avtool train ...`"""

from __future__ import annotations

from pathlib import Path

import typer

from avtool.cli import common

app = typer.Typer(no_args_is_help=True, help="Train commands.")


@app.command("mmt")
def mmt(
    manifest: Path = common.ManifestOption,
    out: Path = common.OutOption,
    method: str = typer.Option(
        None, "--method", help="mmt, kanezaki, kim, kmeans or felzenszwalb [mmt]."
    ),
    seeds: int = typer.Option(None, "--seeds", help="Runs per image, seeds --seed.. [1]."),
    seed: int = typer.Option(None, "--seed", help="First seed [0]."),
    iterations: int = typer.Option(None, "--iterations", help="T, CNN methods [1000]."),
    max_side: int = typer.Option(
        None, "--max-side", help="Segment a copy downscaled to this side; 0 = full size [0]."
    ),
    device: str = common.DeviceOption,
    config: Path = common.ConfigOption,
    sets: list[str] = common.SetOption,
    jobs: int = common.JobsOption,
    shard: str = common.ShardOption,
    launcher: str = common.LauncherOption,
    force: bool = common.ForceOption,
    dry_run: bool = common.DryRunOption,
    max_reject_rate: float = common.MaxRejectOption,
) -> None:
    """Segment every image of a BSDS manifest with one method; resumable per image."""
    from avtool.recipes.mmt import SegmentConfig, segment

    flags = {
        "method": method,
        "seeds": seeds,
        "seed": seed,
        "iterations": iterations,
        "max_side": max_side,
    }
    common.run_manifest_command(
        SegmentConfig,
        segment,
        manifest,
        out,
        config,
        sets,
        flags=flags,
        device=device,
        shard=shard,
        jobs=jobs,
        launcher=launcher,
        force=force,
        dry_run=dry_run,
        max_reject_rate=max_reject_rate,
    )


@app.command("demo")
def demo(
    features: Path = typer.Option(..., "--features", help="Log-mel feature store."),
    manifest: Path = common.ManifestOption,
    out: Path = common.OutOption,
    epochs: int = typer.Option(None, "--epochs", help="Training epochs [12]."),
    seed: int = typer.Option(None, "--seed", help="Random seed [0]."),
    device: str = typer.Option(None, "--device", help="cpu, cuda, auto [cpu]."),
    config: Path = common.ConfigOption,
    sets: list[str] = common.SetOption,
    force: bool = common.ForceOption,
    dry_run: bool = common.DryRunOption,
) -> None:
    """Train the demo's tiny speaker classifier on log-mel features (runs under torchrun too)."""
    from avtool.core.config import resolve
    from avtool.recipes.demo import DemoConfig, train_demo

    flags = {"train": {"epochs": epochs, "seed": seed, "device": device}}
    params = resolve(DemoConfig, config, sets, flags=flags)
    result = train_demo(features, manifest, out, params, force=force, dry_run=dry_run)
    common.report_result(out, result)


@app.command("ser")
def ser(
    features: Path = typer.Option(..., "--features", help="ser-mfcc or wav2vec2 feature store."),
    manifest: Path = common.ManifestOption,
    out: Path = common.OutOption,
    model: str = typer.Option(None, "--model", help="lstm, cnn, cnn_lstm or w2v_rf [cnn_lstm]."),
    split: str = typer.Option(
        None, "--split", help="random (the report's 80/20) or actors (speaker-independent)."
    ),
    loss: str = typer.Option(None, "--loss", help="focal or ce [focal]."),
    epochs: int = typer.Option(
        None, "--epochs", help="Most epochs; early stopping ends sooner [100]."
    ),
    seed: int = typer.Option(None, "--seed", help="Split, initialisation and forest seed [0]."),
    device: str = typer.Option(None, "--device", help="cpu, cuda, auto [cpu]."),
    config: Path = common.ConfigOption,
    sets: list[str] = common.SetOption,
    force: bool = common.ForceOption,
    dry_run: bool = common.DryRunOption,
) -> None:
    """Train one of the SER report's models on RAVDESS features."""
    from avtool.core.config import resolve
    from avtool.recipes.ser import SerConfig, train_ser

    flags = {
        "model": model,
        "split": split,
        "loss": loss,
        "seed": seed,
        "train": {"epochs": epochs, "seed": seed, "device": device},
    }
    params = resolve(SerConfig, config, sets, flags=flags)
    result = train_ser(features, manifest, out, params, force=force, dry_run=dry_run)
    common.report_result(out, result)
