"""`avtool train ...`"""

from __future__ import annotations

from pathlib import Path

import typer

from avtool.cli import common

app = typer.Typer(no_args_is_help=True, help="Train commands.")


@app.command("mmt")
@common.shared_options
def mmt(
    *,
    manifest: common.ManifestOption,
    out: common.OutOption,
    method: str = typer.Option(
        None, "--method", help="mmt, kanezaki, kim, kmeans or felzenszwalb [mmt]."
    ),
    seeds: int = typer.Option(None, "--seeds", help="Runs per image, seeds --seed.. [1]."),
    seed: int = typer.Option(None, "--seed", help="First seed [0]."),
    iterations: int = typer.Option(None, "--iterations", help="T, CNN methods [1000]."),
    max_side: int = typer.Option(
        None, "--max-side", help="Segment a copy downscaled to this side; 0 = full size [0]."
    ),
    precision: str = typer.Option(
        None, "--precision", help="CNN methods: fp32, bf16 or auto (bf16 where fast) [fp32]."
    ),
    device: common.DeviceOption = "cpu",
    settings: common.Settings,
    stage: common.ItemRun,
) -> None:
    """Segment every image of a BSDS manifest with one method; resumable per image."""
    from avtool.recipes.mmt import SegmentConfig, segment

    flags = {
        "method": method,
        "seeds": seeds,
        "seed": seed,
        "iterations": iterations,
        "max_side": max_side,
        "precision": precision,
    }
    common.run_item_stage(
        SegmentConfig, segment, manifest, out, settings, stage, flags=flags, device=device
    )


@app.command("demo")
@common.shared_options
def demo(
    *,
    features: Path = typer.Option(..., "--features", help="Log-mel feature store."),
    manifest: common.ManifestOption,
    out: common.OutOption,
    epochs: int = typer.Option(None, "--epochs", help="Training epochs [12]."),
    seed: int = typer.Option(None, "--seed", help="Random seed [0]."),
    device: str = typer.Option(None, "--device", help="cpu, cuda, auto [cpu]."),
    settings: common.Settings,
    stage: common.StageRun,
) -> None:
    """Train the demo's tiny speaker classifier on log-mel features (runs under torchrun too)."""
    from avtool.recipes.demo import DemoConfig, train_demo

    flags = {"train": {"epochs": epochs, "seed": seed, "device": device}}
    params = settings.resolve(DemoConfig, flags)
    result = train_demo(features, manifest, out, params, **stage.options)
    common.report_result(out, result)


@app.command("ser")
@common.shared_options
def ser(
    *,
    features: Path = typer.Option(
        ..., "--features", help="ser-mfcc, wav2vec2 or imported feature store."
    ),
    manifest: common.ManifestOption,
    out: common.OutOption,
    model: str = typer.Option(
        None,
        "--model",
        help="lstm, cnn, cnn_lstm (the report's networks), mlp, svc, rf, logreg (baselines) "
        "or w2v_rf (wav2vec2 stores only) (default: cnn_lstm).",
    ),
    split: str = typer.Option(
        None,
        "--split",
        help="random (stratified, seeded; the report's 80/20) or actors (speaker-independent, "
        "actors held out per fold) (default: random).",
    ),
    folds: int = typer.Option(
        None,
        "--folds",
        help="random: 1 = one 80/20 split, K = stratified K-fold; actors: K folds of "
        "actors_per_fold (2) actors, 0 = every fold (default: 0).",
    ),
    loss: str = typer.Option(
        None,
        "--loss",
        help="ce (label smoothing, class weights) or focal (the report's) (default: ce).",
    ),
    epochs: int = typer.Option(
        None,
        "--epochs",
        # Written out: importing the recipe here would load numpy for every --help (a test keeps
        # this text equal to RECIPE).
        help="Fixed epoch budget, no early stopping (default: the model's: lstm 50, cnn 60, "
        "cnn_lstm 40, mlp 200).",
    ),
    seeds: int = typer.Option(
        None, "--seeds", help="Networks per fold, seeds --seed.., softmax averaged (default: 1)."
    ),
    seed: int = typer.Option(
        None, "--seed", help="First initialisation seed (and the forests') (default: 0)."
    ),
    split_seed: int = typer.Option(
        None, "--split-seed", help="Seed of the random split / fold choice (default: 0)."
    ),
    device: str = typer.Option(None, "--device", help="cpu, cuda, cuda:N (default: cpu)."),
    settings: common.Settings,
    stage: common.StageRun,
) -> None:
    """Train one SER model (or baseline) on every fold of a protocol, from RAVDESS features."""
    from avtool.recipes.ser import SerConfig, train_ser

    flags = {
        "model": model,
        "split": split,
        "folds": folds,
        "loss": loss,
        "epochs": epochs,
        "seeds": seeds,
        "seed": seed,
        "split_seed": split_seed,
        "device": device,
    }
    params = settings.resolve(SerConfig, flags)
    result = train_ser(features, manifest, out, params, **stage.options)
    common.report_result(out, result)


@app.command("lyrics")
@common.shared_options
def lyrics(
    *,
    text: Path = typer.Option(..., "--text", help="Output of `avtool features lyrics-text`."),
    features: Path = typer.Option(..., "--features", help="`features lyrics-audio` store."),
    out: common.OutOption,
    epochs: int = typer.Option(None, "--epochs", help="Training epochs [60, the report's]."),
    seed: int = typer.Option(None, "--seed", help="Initialisation and data order seed [0]."),
    device: str = typer.Option(None, "--device", help="cpu, cuda, auto [auto]."),
    settings: common.Settings,
    stage: common.StageRun,
) -> None:
    """Train the ATL lyric generator (audio clip + words so far -> next word)."""
    from avtool.recipes.atl.generator import LyricsTrainConfig, train_lyrics

    flags = {"train": {"epochs": epochs, "seed": seed, "device": device}}
    params = settings.resolve(LyricsTrainConfig, flags)
    result = train_lyrics(text, features, out, params, **stage.options)
    common.report_result(out, result)


@app.command("genre")
@common.shared_options
def genre(
    *,
    csv: Path = typer.Option(..., "--csv", help="Lyrics CSV (e.g. MetroLyrics)."),
    lyrics_column: str = typer.Option("lyrics", "--lyrics-column", help="Column of lyrics."),
    genre_column: str = typer.Option("genre", "--genre-column", help="Column of genres."),
    out: common.OutOption,
    model: str = typer.Option(None, "--model", help="lstm (the report's) or tfidf [lstm]."),
    genres: list[str] = typer.Option(
        None, "--genre", help="A class, repeatable [Country, Hip-Hop]."
    ),
    epochs: int = typer.Option(None, "--epochs", help="LSTM epochs [3]."),
    seed: int = typer.Option(None, "--seed", help="Split and initialisation seed [0]."),
    device: str = typer.Option(None, "--device", help="cpu, cuda, auto [auto]."),
    settings: common.Settings,
    stage: common.StageRun,
) -> None:
    """Train the ATL lyric genre classifier on any CSV of lyrics and genres."""
    from avtool.recipes.atl.genre import GenreConfig, train_genre

    flags = {
        "model": model,
        "genres": genres or None,
        "seed": seed,
        "train": {"epochs": epochs, "seed": seed, "device": device},
    }
    params = settings.resolve(GenreConfig, flags)
    result = train_genre(csv, lyrics_column, genre_column, out, params, **stage.options)
    common.report_result(out, result)


@app.command("sed")
@common.shared_options
def sed(
    *,
    manifest: common.ManifestOption,
    out: common.OutOption,
    inputs: str = typer.Option(
        None, "--inputs", help="Comma-separated streams: spectral, vggish, vgg16 [spectral]."
    ),
    logmel: Path = typer.Option(None, "--logmel", help="Log-mel store (the spectral stream)."),
    vggish: Path = typer.Option(None, "--vggish", help="VGGish store."),
    vgg16: Path = typer.Option(None, "--vgg16", help="VGG16 store."),
    seeds: int = typer.Option(None, "--seeds", help="Models trained, seeds --seed.. [1]."),
    seed: int = typer.Option(None, "--seed", help="First seed [0]."),
    steps: int = typer.Option(None, "--steps", help="Optimiser steps a model [50000]."),
    device: str = typer.Option(None, "--device", help="cpu, cuda, auto [cpu]."),
    settings: common.Settings,
    stage: common.StageRun,
) -> None:
    """Mean-teacher CRNN on one input setting of the SED paper's Table 3, for N seeds."""
    from avtool.recipes.sed import SedTrainConfig, train_sed

    flags = {
        "inputs": inputs.split(",") if inputs else None,
        "seeds": seeds,
        "first_seed": seed,
        "steps": steps,
        "train": {"device": device},
    }
    params = settings.resolve(SedTrainConfig, flags)
    stores = {"spectral": logmel, "vggish": vggish, "vgg16": vgg16}
    result = train_sed(manifest, out, params, stores, **stage.options)
    common.report_result(out, result)


@app.command("limuse")
@common.shared_options
def limuse(
    *,
    data: Path = typer.Option(..., "--data", help="Output of `avtool prepare grid`."),
    out: common.OutOption,
    voiceprint: Path = typer.Option(None, "--voiceprint", help="Store of `features voiceprint`."),
    face: Path = typer.Option(None, "--face", help="Store of `features face`."),
    arch: str = typer.Option(None, "--arch", help="limuse or tasnet [limuse]."),
    groups: int = typer.Option(None, "--groups", help="K; 1 = without GC [32]."),
    epochs: int = typer.Option(
        None, "--epochs", help="Most epochs; early stopping ends sooner [50]."
    ),
    seed: int = typer.Option(None, "--seed", help="Initialisation and data order seed [0]."),
    device: str = typer.Option(None, "--device", help="cpu, cuda, auto [auto]."),
    settings: common.Settings,
    stage: common.StageRun,
) -> None:
    """Train LiMuSE (or a TasNet baseline) on GRID mixtures with their cues (torchrun too)."""
    from avtool.recipes.limuse import LimuseConfig, train_limuse

    flags = {
        "arch": arch,
        "model": {"groups": groups},
        "train": {"epochs": epochs, "seed": seed, "device": device},
    }
    params = settings.resolve(LimuseConfig, flags)
    result = train_limuse(data, out, params, voiceprint, face, **stage.options)
    common.report_result(out, result)
