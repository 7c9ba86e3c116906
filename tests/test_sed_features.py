"""SED features: 604 log-mel frames, 151 VGGish patches and 151 VGG16 frames for a 10 s clip;
the networks' state-dict keys are the published checkpoints'; random weights only on request,
and recorded; `models fetch --url` downloads through the same checks."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import write_manifest
from test_http import FakeServer, Reply

from avtool.core.errors import InputError
from avtool.core.store import FeatureStore
from avtool.features import pretrained, vgg16, vggish
from avtool.features.pretrained import INT8_MIN_COSINE, load_weights, min_cosine
from avtool.features.spectral import SpectralExtractor
from avtool.recipes.sed import SED_LOGMEL

# torchvggish's VGG (make_layers + embeddings) and torchvision's vgg16: names and shapes.
VGGISH_KEYS = {
    "features.0": (64, 1, 3, 3), "features.3": (128, 64, 3, 3), "features.6": (256, 128, 3, 3),
    "features.8": (256, 256, 3, 3), "features.11": (512, 256, 3, 3),
    "features.13": (512, 512, 3, 3), "embeddings.0": (4096, 12288),
    "embeddings.2": (4096, 4096), "embeddings.4": (128, 4096),
}  # fmt: skip
VGG16_CONVS = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
VGG16_WIDTHS = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]


@pytest.fixture
def empty_cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("AVTOOL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "models"


def tone(seconds: float, sr: int = 16000, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amplitude * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)


def write_clip_video(path: Path, seconds: float, fps: int = 25, side: int = 32) -> Path:
    from avtool.core.video import write_video

    frames = np.zeros((int(seconds * fps), side, side, 3), np.uint8)
    frames[:, :, :, 0] = np.linspace(0, 255, len(frames)).astype(np.uint8)[:, None, None]
    write_video(path, frames, fps, codec="mpeg4")
    return path


def test_logmel_with_the_papers_settings_gives_604_frames_for_10s(tmp_path):
    from avtool.features.logmel import extract_logmel

    assert SpectralExtractor(SED_LOGMEL).n_frames(10 * SED_LOGMEL.sr) == 604
    loud, quiet = tmp_path / "loud.wav", tmp_path / "quiet.wav"
    # Float samples: 16-bit ones would quantise the two levels differently.
    sf.write(loud, tone(10.0), 16000, subtype="FLOAT")
    sf.write(quiet, tone(10.0, amplitude=0.125), 16000, subtype="FLOAT")
    rows = [{"id": "loud", "path": str(loud)}, {"id": "quiet", "path": str(quiet)}]
    manifest = write_manifest(tmp_path / "manifest.jsonl", rows)
    extract_logmel(manifest, tmp_path / "peak", SED_LOGMEL)
    from dataclasses import replace

    extract_logmel(manifest, tmp_path / "raw", replace(SED_LOGMEL, peak_normalize=False))
    peak, raw = FeatureStore(tmp_path / "peak"), FeatureStore(tmp_path / "raw")
    assert peak["loud"].shape == (128, 604)
    assert peak.attrs["params"]["peak_normalize"] is True
    # Peak normalisation makes the level irrelevant; without it a quarter amplitude is -12 dB.
    np.testing.assert_allclose(peak["loud"], peak["quiet"], atol=1e-3)
    band = int(np.argmax(raw["loud"][:, 300]))
    assert raw["loud"][band, 300] - raw["quiet"][band, 300] == pytest.approx(
        20 * np.log10(4), abs=0.01
    )


def test_vggish_examples_give_151_patches_for_10s():
    patches = vggish.examples(np.zeros(160000, np.float32))
    assert patches.shape == (151, 96, 64)
    assert vggish.n_patches(160000) == 151
    assert vggish.n_patches(160000, hop_frames=96) == 10  # no overlap: AudioSet's default
    # Shorter than one patch: padded to one. Log of the 0.01 offset where there is silence.
    assert vggish.examples(np.zeros(8000, np.float32)).shape == (1, 96, 64)
    assert patches.min() == pytest.approx(np.log(0.01))
    # A 1 kHz tone lands in the HTK-mel band whose centre is nearest 1 kHz.
    mel = vggish.log_mel(tone(1.0))
    edges = np.linspace(1127 * np.log(1 + 125 / 700), 1127 * np.log(1 + 7500 / 700), 66)
    centres = 700 * (np.exp(edges[1:-1] / 1127) - 1)
    assert int(np.argmax(mel.mean(axis=0))) == int(np.argmin(abs(centres - 1000)))


def test_vgg16_samples_151_frames_for_a_10s_video(tmp_path):
    video = write_clip_video(tmp_path / "clip.mp4", 10.0)
    frames = vgg16.sample_frames(video, vgg16.FPS, 32)
    assert frames.shape == (151, 32, 32, 3)
    images = vgg16.normalise(frames[:2])
    assert images.shape == (2, 3, 32, 32)
    expected = (frames[0, 0, 0] / 255.0 - vgg16.IMAGENET_MEAN) / vgg16.IMAGENET_STD
    np.testing.assert_allclose(images[0, :, 0, 0], expected, rtol=1e-5)


def test_state_dict_keys_are_the_published_checkpoints():
    with torch.device("meta"):
        vggish_state = vggish.build_vggish().state_dict()
        vgg16_state = vgg16.build_vgg16().state_dict()
    assert {k: tuple(v.shape) for k, v in vggish_state.items() if k.endswith("weight")} == {
        f"{name}.weight": shape for name, shape in VGGISH_KEYS.items()
    }
    assert set(vggish_state) == {f"{n}.{p}" for n in VGGISH_KEYS for p in ("weight", "bias")}
    channels = [3, *VGG16_WIDTHS]
    expected = {
        f"features.{i}.weight": (out, cin, 3, 3)
        for i, cin, out in zip(VGG16_CONVS, channels[:-1], VGG16_WIDTHS, strict=True)
    }
    expected.update({
        "classifier.0.weight": (4096, 25088),
        "classifier.3.weight": (4096, 4096),
        "classifier.6.weight": (1000, 4096),
    })  # fmt: skip
    assert {k: tuple(v.shape) for k, v in vgg16_state.items() if k.endswith("weight")} == expected
    assert len(vgg16_state) == 2 * len(expected)


def test_load_weights_is_strict_and_identifies_the_file(tmp_path, empty_cache):
    def build() -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Linear(3, 2))

    source = build()
    torch.save(source.state_dict(), tmp_path / "net.pth")
    # An unregistered name cannot be looked up: use vgg16's registry entry for the file name.
    model, random, sha = load_weights(build, str(tmp_path / "net.pth"), "vgg16", False)
    assert not random
    assert sha == hashlib.sha256((tmp_path / "net.pth").read_bytes()).hexdigest()
    assert torch.equal(model[0].weight, source[0].weight)
    torch.save({"other.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(InputError, match="not a vgg16 checkpoint"):
        load_weights(build, str(tmp_path / "bad.pth"), "vgg16", False)
    with pytest.raises(InputError, match="--allow-random-weights"):
        load_weights(build, "", "vgg16", False)
    _, random, sha = load_weights(build, "", "vgg16", True)
    assert random and sha == "random-seed-0"


def test_extraction_refuses_random_weights_unless_allowed_and_records_them(
    cli, tmp_path, empty_cache
):
    video = write_clip_video(tmp_path / "clip.mp4", 2.0)
    audio = tmp_path / "clip.wav"
    sf.write(audio, tone(1.0), 16000)
    rows = [{"id": "clip", "path": str(audio), "video": str(video)}]
    manifest = write_manifest(tmp_path / "manifest.jsonl", rows)
    code, _, err = cli("features", "vgg16", "--manifest", manifest, "--out", tmp_path / "v")
    assert code == 2 and "avtool models fetch vgg16" in err
    assert not (tmp_path / "v").exists()
    code, _, err = cli(
        "features", "vgg16", "--manifest", manifest, "--out", tmp_path / "v",
        "--allow-random-weights", "--image-size", 32, "--fps", 1.51, "--precision", "fp32",
    )  # fmt: skip
    assert code == 0, err
    store = FeatureStore(tmp_path / "v")
    assert store["clip"].shape == (4, 4096)  # ceil(2 s x 1.51 fps)
    assert store.attrs["random_weights"] is True
    assert store.attrs["weights_sha256"] == "random-seed-0"
    code, _, err = cli(
        "features", "vggish", "--manifest", manifest, "--out", tmp_path / "g",
        "--allow-random-weights", "--precision", "fp32",
    )  # fmt: skip
    assert code == 0, err
    store = FeatureStore(tmp_path / "g")
    assert store["clip"].shape == (1, 128)  # a 1 s clip holds one 0.96 s patch
    assert store.attrs["random_weights"] is True


def test_models_fetch_url_checks_what_it_downloads(cli, empty_cache, monkeypatch):
    from avtool.models import registry
    from avtool.models.registry import ModelEntry, WeightFile

    server = FakeServer()
    try:
        server.route("/mirror/vggish.pth", Reply(200, b"not the published weights"))
        code, _, err = cli("models", "fetch", "vggish", "--url", f"{server.url}/mirror/vggish.pth")
        assert code != 0 and "expected one starting 10086976" in err
        assert not (empty_cache / "vggish" / "vggish-10086976.pth").exists()

        weights = bytes(range(256)) * 8
        prefix = hashlib.sha256(weights).hexdigest()[:8]
        entry = ModelEntry(
            name="tiny-net",
            used_by="test",
            source="test",
            licence="none",
            files=(
                WeightFile(
                    f"tiny-{prefix}.pth", "nowhere", "https://nowhere.invalid", "x", None, prefix
                ),
            ),
        )
        monkeypatch.setitem(registry.REGISTRY, entry.name, entry)
        server.route("/mirror/tiny.pth", Reply(200, weights))
        code, out, err = cli(
            "models", "fetch", "tiny-net", "--url", f"{server.url}/mirror/tiny.pth"
        )
        assert code == 0, err
        assert (empty_cache / "tiny-net" / f"tiny-{prefix}.pth").read_bytes() == weights
        assert out.splitlines()[-1] == str(empty_cache / "tiny-net")
    finally:
        server.close()


def _textured_video(path: Path, seed: int) -> Path:
    from avtool.core.video import write_video

    frames = np.random.default_rng(seed).integers(0, 256, (25, 64, 64, 3)).astype(np.uint8)
    frames[:, :32] //= 3  # a darker half: activations that differ across the picture
    write_video(path, frames, 25, codec="mpeg4")
    return path


def test_int8_vgg16_keeps_fp32s_outputs_and_is_recorded(cli, tmp_path, empty_cache):
    rows = [
        {"id": f"clip{i}", "path": str(_textured_video(tmp_path / f"clip{i}.mp4", i))}
        for i in range(2)
    ]
    manifest = write_manifest(tmp_path / "manifest.jsonl", rows)
    stores = {}
    for precision in ("fp32", "int8"):
        code, _, err = cli(
            "features", "vgg16", "--manifest", manifest, "--out", tmp_path / precision,
            "--allow-random-weights", "--image-size", 64, "--fps", 5, "--precision", precision,
        )  # fmt: skip
        assert code == 0, err
        stores[precision] = FeatureStore(tmp_path / precision)
    assert stores["fp32"].attrs["precision_used"] == "fp32"
    assert stores["int8"].attrs["precision_used"] == "int8"
    assert stores["int8"].attrs["int8_min_cosine"] >= INT8_MIN_COSINE
    for clip in ("clip0", "clip1"):
        exact, approximate = stores["fp32"][clip], stores["int8"][clip]
        assert exact.shape == approximate.shape == (5, 4096)
        assert min_cosine(exact, approximate) >= INT8_MIN_COSINE
        assert not np.array_equal(exact, approximate)  # int8 did run


def test_int8_that_departs_from_fp32_falls_back_or_is_refused(tmp_path, monkeypatch, caplog):
    video = str(_textured_video(tmp_path / "clip.mp4", 0))
    missing = str(tmp_path / "missing.mp4")  # unreadable candidates are skipped
    monkeypatch.setattr(pretrained, "INT8_MIN_COSINE", 1.5)  # no int8 network can reach it
    params = vgg16.VGG16Params(allow_random_weights=True, image_size=64, fps=5)
    _, precision, cosine = vgg16.VGG16Worker(params, (missing, video)).choose_network()
    assert precision == "fp32" and 0.99 < cosine <= 1.0
    assert "computing in fp32" in caplog.text
    explicit = vgg16.VGG16Params(allow_random_weights=True, image_size=64, fps=5, precision="int8")
    with pytest.raises(InputError, match="--precision fp32"):
        vgg16.VGG16Worker(explicit, (missing, video)).choose_network()
    with pytest.raises(InputError, match=r"no readable file.*--precision fp32"):
        vgg16.VGG16Worker(explicit, (missing,)).choose_network()


def test_int8_vggish_keeps_fp32s_embeddings(cli, tmp_path, empty_cache):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(2):
        sf.write(tmp_path / f"clip{i}.wav", tone(2.0) + 0.05 * rng.standard_normal(32000), 16000)
        rows.append({"id": f"clip{i}", "path": str(tmp_path / f"clip{i}.wav")})
    manifest = write_manifest(tmp_path / "manifest.jsonl", rows)
    stores = {}
    for precision in ("fp32", "int8"):
        code, _, err = cli(
            "features", "vggish", "--manifest", manifest, "--out", tmp_path / precision,
            "--allow-random-weights", "--precision", precision,
        )  # fmt: skip
        assert code == 0, err
        stores[precision] = FeatureStore(tmp_path / precision)
    assert stores["int8"].attrs["precision_used"] == "int8"
    assert stores["int8"].attrs["int8_min_cosine"] >= INT8_MIN_COSINE
    exact, approximate = stores["fp32"]["clip0"], stores["int8"]["clip0"]
    assert exact.shape == approximate.shape == (18, 128)  # 2 s: 1 + (198 - 96) // 6 patches
    assert min_cosine(exact, approximate) >= INT8_MIN_COSINE
    assert not np.array_equal(exact, approximate)
