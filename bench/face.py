"""Face cues: frames per CPU-second of `features face` against per-frame detection + descriptor.

The baseline is what `features face` did before version 2 and what a researcher would write
with dlib: on every frame, HOG detection, 5-point landmarks and the 128-d ResNet descriptor;
its per-video identity is the mean of the per-frame descriptors. The new worker detects on
key frames, runs the 68-point landmarks on every frame and the descriptor on a few key frames.
Both run on the same videos in the same process, alternating video by video, timed with
`time.process_time` (CPU seconds, so other processes on the machine weigh less).

Videos: the real GRID samples (`../shared/data/real_samples/grid/s1/*.mpg`) when present, else a
synthetic GRID. Printed: frames per CPU-second before/after and their ratio, per video the cosine
between the new identity and the baseline's per-video mean, and the Pearson correlation between
the inner-lip height and the 25 fps audio envelope.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_samples" / "grid"


def baseline(worker, path: Path, fps: float) -> tuple[np.ndarray, int]:
    """Per-frame detection + 5-point landmarks + descriptor: (mean descriptor, frames)."""
    from avtool.core.video import iter_frames

    descriptors, frames = [], 0
    for decoded in iter_frames(path, fps=fps):
        frame = np.ascontiguousarray(decoded)
        frames += 1
        box = worker.detect(frame)
        if box is not None:
            descriptors.append(worker.identity(frame, box))
    mean = np.mean(descriptors, axis=0) if descriptors else np.zeros(128)
    return mean, frames


def _videos(work: Path, count: int) -> list[Path]:
    if REAL.is_dir():
        return sorted((REAL / "s1").glob("*.mpg"))[:count]
    from avtool.synth.grid import synth_grid

    synth_grid(work / "GRID", 2, max(1, (count + 1) // 2), size=(360, 288))
    return sorted((work / "GRID").glob("s*/*.mpg"))[:count]


def main() -> dict:
    from avtool.core.audio import load_audio
    from avtool.features.face import FaceParams, FaceWorker, opening_envelope_correlation

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--detect-every", type=int, default=FaceParams.detect_every)
    parser.add_argument("--identity-frames", type=int, default=FaceParams.identity_frames)
    args = parser.parse_args(sys.argv[2:] if sys.argv[1:2] == ["face"] else sys.argv[1:])
    params = FaceParams(detect_every=args.detect_every, identity_frames=args.identity_frames)
    worker = FaceWorker(params)
    worker.setup()
    result: dict = {"benchmark": "face", "source": "real GRID" if REAL.is_dir() else "synthetic"}
    before = after = 0.0
    frames_total = 0
    per_video = {}
    with tempfile.TemporaryDirectory() as tmp:
        for path in _videos(Path(tmp), args.videos):
            start = time.process_time()
            reference, frames = baseline(worker, path, params.fps)
            before += time.process_time() - start
            start = time.process_time()
            record = worker({"id": path.stem, "path": str(path)})[0]
            after += time.process_time() - start
            frames_total += frames
            identity = record["identity"].astype(np.float64)
            cosine = float(identity @ reference / max(np.linalg.norm(reference), 1e-12))
            audio, sr = load_audio(path, sr=16000)
            r = opening_envelope_correlation(record["mouth"], record["mask"], audio, sr)
            per_video[path.stem] = {
                "frames": frames,
                "face_frames": int(record["mask"].sum()),
                "cosine_to_per_frame_mean": round(cosine, 4),
                "opening_envelope_r": round(r, 3),
            }
    worker.teardown()
    result["frames"] = frames_total
    result["frames_per_cpu_s_before"] = round(frames_total / before, 2)
    result["frames_per_cpu_s_after"] = round(frames_total / after, 2)
    result["speedup"] = round(before / after, 2)
    result["min_cosine"] = min(v["cosine_to_per_frame_mean"] for v in per_video.values())
    result["videos"] = per_video
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
