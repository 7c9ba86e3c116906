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
    peak_normalize: bool = typer.Option(
        None, "--peak-normalize", help="Scale each waveform to a peak of 1 first [off]."
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
    """Log-mel spectrograms [n_mels, frames] in dB, equal to librosa's within 0.01 dB."""
    from avtool.features.logmel import extract_logmel
    from avtool.features.spectral import SpectralParams

    flags = {"sr": sr, "n_fft": n_fft, "hop": hop, "n_mels": n_mels, "power": power}
    flags["peak_normalize"] = peak_normalize
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


@app.command("import")
def import_arrays(
    npz: Path = typer.Option(..., "--npz", help=".npz with `features` [N, D] and `filenames` [N]."),
    out: Path = common.OutOption,
    manifest: str = typer.Option(
        None,
        "--manifest",
        help="none, or ravdess: also write manifest.jsonl decoded from RAVDESS file names "
        "(default: none).",
    ),
    describes: str = typer.Option(
        None,
        "--describes",
        help="What the arrays are, recorded in the store (default: unspecified).",
    ),
    config: Path = common.ConfigOption,
    sets: list[str] = common.SetOption,
    force: bool = common.ForceOption,
    dry_run: bool = common.DryRunOption,
) -> None:
    """Store precomputed arrays under ids from their file names (extractor 'imported')."""
    from avtool.core.config import resolve
    from avtool.features.imported import ImportConfig, import_features

    params = resolve(
        ImportConfig, config, sets, flags={"manifest": manifest, "describes": describes}
    )
    common.report_result(out, import_features(npz, out, params, force=force, dry_run=dry_run))


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


@app.command("lyrics-text")
def lyrics_text(
    manifest: Path = common.ManifestOption,
    out: Path = common.OutOption,
    section_tags: str = typer.Option(
        None, "--section-tags", help="drop, or words (the ATL authors' code) [drop]."
    ),
    config: Path = common.ConfigOption,
    sets: list[str] = common.SetOption,
    force: bool = common.ForceOption,
    dry_run: bool = common.DryRunOption,
) -> None:
    """ATL lyrics: cleaned lines, vocabulary (tokenizer.json), songs.csv for `train genre`."""
    from avtool.core.config import resolve
    from avtool.features.lyrics_text import LyricsTextConfig, prepare_lyrics_text

    params = resolve(LyricsTextConfig, config, sets, flags={"section_tags": section_tags})
    result = prepare_lyrics_text(manifest, out, params, force=force, dry_run=dry_run)
    common.report_result(out, result)


@app.command("lyrics-audio")
def lyrics_audio(
    manifest: Path = common.ManifestOption,
    out: Path = common.OutOption,
    offset: float = typer.Option(None, "--offset", help="Clip start in seconds [25]."),
    duration: float = typer.Option(None, "--duration", help="Clip length in seconds [10]."),
    short: str = typer.Option(
        None, "--short", help="Songs shorter than offset+duration: last, pad, reject [last]."
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
    """ATL clip log-mel: 16 kHz, 10 s from 25 s, n_fft 512, hop 160, 64 mels -> [64, 1001]."""
    from avtool.features.lyrics_audio import LyricsAudioParams, extract_lyrics_audio

    common.run_manifest_command(
        LyricsAudioParams,
        extract_lyrics_audio,
        manifest,
        out,
        config,
        sets,
        flags={"offset": offset, "duration": duration, "short": short},
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
    """Per video a 128-d dlib identity; per frame (25 fps) a 45-d mouth shape and a face mask."""
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


@app.command("vggish")
def vggish(
    manifest: Path = common.ManifestOption,
    out: Path = common.OutOption,
    weights: str = typer.Option(
        None, "--weights", help="vggish-10086976.pth or its folder [the models cache]."
    ),
    allow_random_weights: bool = typer.Option(
        None, "--allow-random-weights", help="Accept random weights if none are found (recorded)."
    ),
    precision: str = typer.Option(None, "--precision", help="auto (bf16 on AMX), fp32, bf16."),
    config: Path = common.ConfigOption,
    sets: list[str] = common.SetOption,
    jobs: int = common.JobsOption,
    shard: str = common.ShardOption,
    launcher: str = common.LauncherOption,
    force: bool = common.ForceOption,
    dry_run: bool = common.DryRunOption,
    max_reject_rate: float = common.MaxRejectOption,
) -> None:
    """VGGish embeddings (patches x 128) of 0.96 s patches every 0.06 s: 151 for 10 s."""
    from avtool.features.vggish import VGGishParams, extract_vggish

    flags = {
        "weights": weights,
        "allow_random_weights": allow_random_weights,
        "precision": precision,
    }
    common.run_manifest_command(
        VGGishParams,
        extract_vggish,
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


@app.command("vgg16")
def vgg16(
    manifest: Path = common.ManifestOption,
    out: Path = common.OutOption,
    weights: str = typer.Option(
        None, "--weights", help="vgg16-397923af.pth or its folder [the models cache]."
    ),
    allow_random_weights: bool = typer.Option(
        None, "--allow-random-weights", help="Accept random weights if none are found (recorded)."
    ),
    fps: float = typer.Option(None, "--fps", help="Frames sampled per second [15.1]."),
    image_size: int = typer.Option(
        None, "--image-size", help="Square input side; below 224 only for demos [224]."
    ),
    precision: str = typer.Option(None, "--precision", help="auto (bf16 on AMX), fp32, bf16."),
    config: Path = common.ConfigOption,
    sets: list[str] = common.SetOption,
    jobs: int = common.JobsOption,
    shard: str = common.ShardOption,
    launcher: str = common.LauncherOption,
    force: bool = common.ForceOption,
    dry_run: bool = common.DryRunOption,
    max_reject_rate: float = common.MaxRejectOption,
) -> None:
    """VGG16 fc7 activations (frames x 4096) of video frames at 15.1 fps: 151 for 10 s."""
    from avtool.features.vgg16 import VGG16Params, extract_vgg16

    flags = {
        "weights": weights,
        "allow_random_weights": allow_random_weights,
        "fps": fps,
        "image_size": image_size,
        "precision": precision,
    }
    common.run_manifest_command(
        VGG16Params,
        extract_vgg16,
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
