"""VGG16 and VGGish feature throughput: avtool's path against a plain fp32 per-frame loop.

VGG16 is the cost of the SED system (~15.5 GFLOP a 224 x 224 frame, 151 frames a clip). Both
sides run the same network with the same random weights in this process, one after the other:
- baseline: what a researcher writes first: every frame of the video decoded and converted at
  full size, resized in torch, every other one kept, then one frame at a time through the
  fp32 module (NCHW weights);
- avtool: `avtool.features.vgg16`: only the frames the 15.1 fps grid picks are converted and
  rescaled (swscale), then batches, channels-last, and `precision: auto`: bf16 autocast where
  the CPU has AMX tiles, else int8 (calibrated on this clip, as on a corpus's first clips).
Both networks see the same images (avtool's decoded frames), so the smallest cosine similarity
between their 4096-d outputs (goal >= 0.999) measures the network path alone. Random weights:
the cosine of int8 with the published weights is measured when a store is made with them
(its `int8_min_cosine` attribute). Printed: frames
per CPU-second end to end (decode + network) of each side and their ratio, the network-only
ratio, and core-hours projected for the corpus (~16k clips x 151 frames). VGGish likewise in clips per CPU-second (151 patches a
clip; baseline: one patch at a time; int8 calibrated on the benchmarked noise). CPU seconds are process CPU time, so contention from
other processes inflates neither side; run on an idle machine for wall-clock figures.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

CORPUS_CLIPS = 16000  # ~14.5k training + 259 validation + 779 test clips, rounded up
FRAMES_PER_CLIP = 151


def _cpu_timed(function, *args):
    start = time.process_time()
    result = function(*args)
    return time.process_time() - start, result


def _video(path: Path, seconds: float, size: int) -> Path:
    from avtool.core.video import write_video

    rng = np.random.default_rng(0)
    frames = int(seconds * 25)
    # Smooth moving gradients: decodable, and ReLU activations that are not all zero.
    x = np.linspace(0, 1, size)
    images = np.empty((frames, size, size, 3), np.uint8)
    for t in range(frames):
        phase = t / frames
        images[t] = (
            255 * np.stack([np.outer(x, x), np.outer(1 - x, x), np.full((size, size), phase)], -1)
        ).astype(np.uint8)
    images = np.clip(images + rng.integers(0, 20, images.shape), 0, 255).astype(np.uint8)
    write_video(path, images, 25, codec="mpeg4")
    return path


def bench_vgg16(seconds: float, image_size: int, source_size: int) -> dict:
    import copy

    import torch

    from avtool.core.video import read_frames
    from avtool.features import vgg16
    from avtool.features.pretrained import min_cosine

    params = vgg16.VGG16Params(allow_random_weights=True, image_size=image_size)
    model, _, _ = vgg16.load_vgg16(params)
    plain = copy.deepcopy(model)  # NCHW fp32 weights for the baseline
    wanted = round(seconds * vgg16.FPS)
    with tempfile.TemporaryDirectory() as tmp:
        video = _video(Path(tmp) / "clip.mp4", seconds, source_size)
        # What `features vgg16` runs here; int8 is calibrated on this clip, as on a corpus's
        # first clips (calibration is once per worker, so it is not counted below).
        worker = vgg16.VGG16Worker(params, (str(video),))
        fast_model, precision, calibration_cosine = worker.choose_network()

        def decode_everything() -> torch.Tensor:
            # Every frame decoded and converted at full size, resized by torch, every other kept.
            frames = read_frames(video)[::2][:wanted]
            images = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
            return torch.nn.functional.interpolate(images, size=(image_size, image_size))

        def decode_needed() -> np.ndarray:
            return vgg16.normalise(vgg16.sample_frames(video, vgg16.FPS, image_size))

        def per_frame(images: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return torch.cat([plain(torch.from_numpy(i)[None]) for i in images]).numpy()

        def batched(images: np.ndarray) -> np.ndarray:
            return vgg16.embed(fast_model, images, precision)

        warm = vgg16.normalise(np.zeros((2, image_size, image_size, 3), np.uint8))
        per_frame(warm)  # oneDNN primitive creation, both paths
        batched(warm)
        decode_all_s, _ = _cpu_timed(decode_everything)
        decode_needed_s, images = _cpu_timed(decode_needed)
    base_net_s, base_out = _cpu_timed(per_frame, images)
    fast_net_s, fast_out = _cpu_timed(batched, images)
    frames = len(images)
    base_rate = frames / (decode_all_s + base_net_s)
    fast_rate = frames / (decode_needed_s + fast_net_s)
    return {
        "vgg16_image_size": image_size,
        "vgg16_precision": precision,
        "vgg16_int8_calibration_cosine": calibration_cosine,
        "vgg16_frames": frames,
        "vgg16_decode_all_cpu_s": round(decode_all_s, 3),
        "vgg16_decode_needed_cpu_s": round(decode_needed_s, 3),
        "vgg16_network_speedup": round(base_net_s / fast_net_s, 2),
        "vgg16_baseline_frames_per_cpu_s": round(base_rate, 3),
        "vgg16_avtool_frames_per_cpu_s": round(fast_rate, 3),
        "vgg16_speedup": round(fast_rate / base_rate, 2),
        "vgg16_min_cosine": round(min_cosine(base_out, fast_out), 6),
        "vgg16_corpus_core_hours_baseline": round(
            CORPUS_CLIPS * FRAMES_PER_CLIP / base_rate / 3600, 1
        ),
        "vgg16_corpus_core_hours_avtool": round(
            CORPUS_CLIPS * FRAMES_PER_CLIP / fast_rate / 3600, 1
        ),
    }


def bench_vggish(seconds: float) -> dict:
    import copy

    import soundfile as sf
    import torch

    from avtool.features import vggish
    from avtool.features.pretrained import min_cosine

    params = vggish.VGGishParams(allow_random_weights=True)
    model, _, _ = vggish.load_vggish(params)
    rng = np.random.default_rng(0)
    waveform = (0.1 * rng.standard_normal(int(seconds * vggish.SR))).astype(np.float32)
    patches = vggish.examples(waveform)

    plain = copy.deepcopy(model)
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.wav"
        sf.write(clip, waveform, vggish.SR)
        worker = vggish.VGGishWorker(params, (str(clip),))
        fast_model, precision, calibration_cosine = worker.choose_network()

    def baseline() -> np.ndarray:
        with torch.inference_mode():
            return torch.cat([plain(torch.from_numpy(p)[None, None]) for p in patches]).numpy()

    def fast() -> np.ndarray:
        return vggish.embed(fast_model, vggish.examples(waveform), precision)

    with torch.inference_mode():  # warm-up of both paths
        plain(torch.from_numpy(patches[:1])[:, None])
    vggish.embed(fast_model, patches[:2], precision)
    base_seconds, base_out = _cpu_timed(baseline)
    fast_seconds, fast_out = _cpu_timed(fast)
    clip_patches = vggish.n_patches(10 * vggish.SR)
    base_rate = len(base_out) / base_seconds / clip_patches
    fast_rate = len(fast_out) / fast_seconds / clip_patches
    return {
        "vggish_precision": precision,
        "vggish_int8_calibration_cosine": calibration_cosine,
        "vggish_patches": len(fast_out),
        "vggish_baseline_clips_per_cpu_s": round(base_rate, 4),
        "vggish_avtool_clips_per_cpu_s": round(fast_rate, 4),
        "vggish_speedup": round(fast_rate / base_rate, 2),
        "vggish_min_cosine": round(min_cosine(base_out, fast_out), 6),
        "vggish_corpus_core_hours_avtool": round(CORPUS_CLIPS / fast_rate / 3600, 1),
    }


def main() -> dict:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?")
    parser.add_argument("--seconds", type=float, default=2.0, help="Clip length benchmarked.")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--source-size", type=int, default=256, help="Video side in pixels.")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 = per core).")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = {
        "bench": "vgg16",
        "threads": args.threads,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "amx": bool(torch.cpu._is_amx_tile_supported()),
        **bench_vgg16(args.seconds, args.image_size, args.source_size),
        **bench_vggish(args.seconds),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
