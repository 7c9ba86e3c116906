"""`avtool features ...`: feature extraction into HDF5 stores, and store checks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from avtool.cli import common

app = typer.Typer(no_args_is_help=True, help="Extract features into HDF5 stores; check stores.")

# Options of several extractors (the spectral ones; the pretrained networks').
SampleRateOption = Annotated[int, typer.Option("--sr", help="Sample rate to load at [22050].")]
FftSizeOption = Annotated[int, typer.Option("--n-fft", help="FFT size [2048].")]
HopOption = Annotated[int, typer.Option("--hop", help="Hop length in samples [512].")]
MelBandsOption = Annotated[int, typer.Option("--n-mels", help="Mel bands [128].")]
PowerOption = Annotated[float, typer.Option("--power", help="2 for power, 1 for magnitude [2].")]
RandomFallbackOption = Annotated[
    bool,
    typer.Option(
        "--allow-random-weights", help="Accept random weights if none are found (recorded)."
    ),
]
PrecisionOption = Annotated[
    str,
    typer.Option(
        "--precision",
        help="auto (bf16 on AMX, else int8 if within cosine 0.999 of fp32), fp32, bf16, int8.",
    ),
]


@app.command("logmel")
@common.shared_options
def logmel(
    *,
    manifest: common.ManifestOption,
    out: common.OutOption,
    sr: SampleRateOption = None,
    n_fft: FftSizeOption = None,
    hop: HopOption = None,
    n_mels: MelBandsOption = None,
    power: PowerOption = None,
    peak_normalize: bool = typer.Option(
        None, "--peak-normalize", help="Scale each waveform to a peak of 1 first [off]."
    ),
    settings: common.Settings,
    stage: common.ItemRun,
) -> None:
    """Log-mel spectrograms [n_mels, frames] in dB, equal to librosa's within 0.01 dB."""
    from avtool.features.logmel import extract_logmel
    from avtool.features.spectral import SpectralParams

    flags = {"sr": sr, "n_fft": n_fft, "hop": hop, "n_mels": n_mels, "power": power}
    flags["peak_normalize"] = peak_normalize
    common.run_item_stage(
        SpectralParams, extract_logmel, manifest, out, settings, stage, flags=flags
    )


@app.command("mfcc")
@common.shared_options
def mfcc(
    *,
    manifest: common.ManifestOption,
    out: common.OutOption,
    sr: SampleRateOption = None,
    n_fft: FftSizeOption = None,
    hop: HopOption = None,
    n_mels: MelBandsOption = None,
    n_mfcc: int = typer.Option(None, "--n-mfcc", help="Coefficients kept [20]."),
    power: PowerOption = None,
    settings: common.Settings,
    stage: common.ItemRun,
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
    common.run_item_stage(SpectralParams, extract_mfcc, manifest, out, settings, stage, flags=flags)


@app.command("check")
def check(store: Path = typer.Argument(..., help="Feature store directory.")) -> None:
    """Open every shard and read every item; the last line is `items: N`."""
    from avtool.core.store import check_store

    items, problems = check_store(store)
    for problem in problems:
        typer.echo(f"warning: {problem}")
    typer.echo(f"items: {items}")


@app.command("import")
@common.shared_options
def import_arrays(
    *,
    npz: Path = typer.Option(..., "--npz", help=".npz with `features` [N, D] and `filenames` [N]."),
    out: common.OutOption,
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
    settings: common.Settings,
    stage: common.StageRun,
) -> None:
    """Store precomputed arrays under ids from their file names (extractor 'imported')."""
    from avtool.features.imported import ImportConfig, import_features

    params = settings.resolve(ImportConfig, {"manifest": manifest, "describes": describes})
    common.report_result(out, import_features(npz, out, params, **stage.options))


@app.command("ser-mfcc")
@common.shared_options
def ser_mfcc(
    *,
    manifest: common.ManifestOption,
    out: common.OutOption,
    sr: int = typer.Option(None, "--sr", help="Rate to load at: 16000, or 48000 (MFCC-48000-40)."),
    n_mfcc: int = typer.Option(None, "--n-mfcc", help="MFCCs (and Δ, ΔΔ) [40]."),
    sequence: bool = typer.Option(
        None, "--sequence", help="Store per-frame [frames, 160] sequences, not their means."
    ),
    settings: common.Settings,
    stage: common.ItemRun,
) -> None:
    """The SER report's 160-d vector: means of 40 MFCC, Δ, ΔΔ and 40 log-mel bands."""
    from avtool.features.ser_mfcc import SerMfccParams, extract_ser_mfcc

    flags = {"sr": sr, "n_mfcc": n_mfcc, "sequence": sequence}
    common.run_item_stage(
        SerMfccParams, extract_ser_mfcc, manifest, out, settings, stage, flags=flags
    )


@app.command("lyrics-text")
@common.shared_options
def lyrics_text(
    *,
    manifest: common.ManifestOption,
    out: common.OutOption,
    section_tags: str = typer.Option(
        None, "--section-tags", help="drop, or words (the ATL authors' code) [drop]."
    ),
    settings: common.Settings,
    stage: common.StageRun,
) -> None:
    """ATL lyrics: cleaned lines, vocabulary (tokenizer.json), songs.csv for `train genre`."""
    from avtool.features.lyrics_text import LyricsTextConfig, prepare_lyrics_text

    params = settings.resolve(LyricsTextConfig, {"section_tags": section_tags})
    common.report_result(out, prepare_lyrics_text(manifest, out, params, **stage.options))


@app.command("lyrics-audio")
@common.shared_options
def lyrics_audio(
    *,
    manifest: common.ManifestOption,
    out: common.OutOption,
    offset: float = typer.Option(None, "--offset", help="Clip start in seconds [25]."),
    duration: float = typer.Option(None, "--duration", help="Clip length in seconds [10]."),
    short: str = typer.Option(
        None, "--short", help="Songs shorter than offset+duration: last, pad, reject [last]."
    ),
    settings: common.Settings,
    stage: common.ItemRun,
) -> None:
    """ATL clip log-mel: 16 kHz, 10 s from 25 s, n_fft 512, hop 160, 64 mels -> [64, 1001]."""
    from avtool.features.lyrics_audio import LyricsAudioParams, extract_lyrics_audio

    flags = {"offset": offset, "duration": duration, "short": short}
    common.run_item_stage(
        LyricsAudioParams, extract_lyrics_audio, manifest, out, settings, stage, flags=flags
    )


@app.command("wav2vec2")
@common.shared_options
def wav2vec2(
    *,
    manifest: common.ManifestOption,
    out: common.OutOption,
    model: str = typer.Option(
        None, "--model", help="Local model folder or cached name [facebook/wav2vec2-base]."
    ),
    sequence: bool = typer.Option(
        None, "--sequence", help="Store last hidden states [frames, hidden], not their mean."
    ),
    allow_random_weights: bool = typer.Option(
        None, "--allow-random-weights", help="Accept a model with random weights (recorded)."
    ),
    settings: common.Settings,
    stage: common.ItemRun,
) -> None:
    """wav2vec 2.0 last hidden states (time mean by default), from local weights only."""
    from avtool.features.wav2vec2 import Wav2Vec2Params, extract_wav2vec2

    flags = {"model": model, "sequence": sequence, "allow_random_weights": allow_random_weights}
    common.run_item_stage(
        Wav2Vec2Params, extract_wav2vec2, manifest, out, settings, stage, flags=flags
    )


@app.command("voiceprint")
@common.shared_options
def voiceprint(
    *,
    manifest: common.ManifestOption,
    out: common.OutOption,
    settings: common.Settings,
    stage: common.ItemRun,
) -> None:
    """256-d resemblyzer speaker embedding per utterance (e.g. GRID lists/enrolment.jsonl)."""
    from avtool.features.voiceprint import VoiceprintParams, extract_voiceprint

    common.run_item_stage(VoiceprintParams, extract_voiceprint, manifest, out, settings, stage)


@app.command("face")
@common.shared_options
def face(
    *,
    manifest: common.ManifestOption,
    out: common.OutOption,
    detector: str = typer.Option(None, "--detector", help="dlib (HOG) or haar (OpenCV) [dlib]."),
    settings: common.Settings,
    stage: common.ItemRun,
) -> None:
    """Per video a 128-d dlib identity; per frame (25 fps) a 45-d mouth shape and a face mask."""
    from avtool.features.face import FaceParams, extract_face

    result = common.run_item_stage(
        FaceParams, extract_face, manifest, out, settings, stage, flags={"detector": detector}
    )
    if result.message and result.state != "dry-run":
        typer.echo(result.message)


@app.command("vggish")
@common.shared_options
def vggish(
    *,
    manifest: common.ManifestOption,
    out: common.OutOption,
    weights: str = typer.Option(
        None, "--weights", help="vggish-10086976.pth or its folder [the models cache]."
    ),
    allow_random_weights: RandomFallbackOption = None,
    precision: PrecisionOption = None,
    settings: common.Settings,
    stage: common.ItemRun,
) -> None:
    """VGGish embeddings (patches x 128) of 0.96 s patches every 0.06 s: 151 for 10 s."""
    from avtool.features.vggish import VGGishParams, extract_vggish

    flags = {
        "weights": weights,
        "allow_random_weights": allow_random_weights,
        "precision": precision,
    }
    common.run_item_stage(VGGishParams, extract_vggish, manifest, out, settings, stage, flags=flags)


@app.command("vgg16")
@common.shared_options
def vgg16(
    *,
    manifest: common.ManifestOption,
    out: common.OutOption,
    weights: str = typer.Option(
        None, "--weights", help="vgg16-397923af.pth or its folder [the models cache]."
    ),
    allow_random_weights: RandomFallbackOption = None,
    fps: float = typer.Option(None, "--fps", help="Frames sampled per second [15.1]."),
    image_size: int = typer.Option(
        None, "--image-size", help="Square input side; below 224 only for demos [224]."
    ),
    precision: PrecisionOption = None,
    settings: common.Settings,
    stage: common.ItemRun,
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
    common.run_item_stage(VGG16Params, extract_vgg16, manifest, out, settings, stage, flags=flags)
