"""Log-mel throughput: `avtool features logmel --jobs 2` against a per-file librosa loop.

The baseline is what the papers' code does per file: `librosa.load(path, sr=22050)` (soxr
resampling), then `power_to_db(melspectrogram(...))`. Both run as whole processes on the same
200 ten-second clips recorded at 44.1 kHz, in the same run. Deviation is measured on clips
already at 22.05 kHz, where both sides see the same waveform.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SR, N_FFT, HOP, N_MELS = 22050, 2048, 366, 128

LIBROSA_LOOP = f"""
import json, os, sys, time, librosa
manifest, limit = sys.argv[1], int(sys.argv[2])
paths = [json.loads(line)["path"] for line in open(manifest)][:limit]
out = {{}}
# librosa loads its submodules lazily: pay that before the clock starts, as avtool's workers do.
librosa.power_to_db(librosa.feature.melspectrogram(y=librosa.tone(440, sr={SR}, duration=0.2), sr={SR}))
start = time.perf_counter()
for path in paths:
    y, sr = librosa.load(os.path.join(os.path.dirname(manifest), path), sr={SR})
    out[path] = librosa.power_to_db(
        librosa.feature.melspectrogram(y=y, sr=sr, n_fft={N_FFT}, hop_length={HOP}, n_mels={N_MELS}))
print(time.perf_counter() - start)
"""


def avtool(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "avtool.cli.main", *args], check=True, stdout=subprocess.DEVNULL
    )


def timed(command: list[str]) -> tuple[float, str]:
    """Wall seconds of a whole process, and what it printed."""
    start = time.perf_counter()
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    return time.perf_counter() - start, result.stdout


def max_deviation_db(manifest: Path, store_dir: Path) -> float:
    import librosa
    import numpy as np

    from avtool.core.manifest import read_manifest
    from avtool.core.store import FeatureStore

    worst = 0.0
    with FeatureStore(store_dir) as store:
        for item in read_manifest(manifest):
            y, _ = librosa.load(item["path"], sr=None)
            reference = librosa.power_to_db(
                librosa.feature.melspectrogram(
                    y=y, sr=SR, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS
                )
            )
            worst = max(worst, float(np.max(np.abs(store[item["id"]] - reference))))
    return worst


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("data/bench"))
    args = parser.parse_args(sys.argv[2:] if sys.argv[1:2] == ["logmel"] else sys.argv[1:])
    work = args.work
    clips_44k = work / f"speech-44k-{args.clips}"
    clips_22k = work / "speech-22k-20"
    avtool(
        "synth",
        "speech",
        "--out",
        str(clips_44k),
        "--count",
        str(args.clips),
        "--duration",
        "10",
        "--sr",
        "44100",
        "--seed",
        "1",
    )
    avtool(
        "synth",
        "speech",
        "--out",
        str(clips_22k),
        "--count",
        "20",
        "--duration",
        "10",
        "--sr",
        str(SR),
        "--seed",
        "2",
    )
    manifest = clips_44k / "manifest.jsonl"
    with tempfile.TemporaryDirectory(dir=work) as scratch:
        script = Path(scratch) / "librosa_loop.py"
        script.write_text(LIBROSA_LOOP)
        # Warm-up on one clip: numba compiles librosa's kernels once per environment.
        timed([sys.executable, str(script), str(manifest), "1"])
        librosa_seconds, printed = timed(
            [sys.executable, str(script), str(manifest), str(args.clips)]
        )
        librosa_loop_seconds = float(printed.strip().splitlines()[-1])
        out = Path(scratch) / "store"
        avtool_seconds, _ = timed(
            [
                sys.executable,
                "-m",
                "avtool.cli.main",
                "features",
                "logmel",
                "--manifest",
                str(manifest),
                "--out",
                str(out),
                "--sr",
                str(SR),
                "--n-fft",
                str(N_FFT),
                "--hop",
                str(HOP),
                "--n-mels",
                str(N_MELS),
                "--jobs",
                str(args.jobs),
            ]
        )
        # Steady-state work: the item loops of the shards, which ran in parallel (the longest),
        # without interpreter start, imports and worker set-up.
        stamps = [
            json.loads(p.read_text())
            for p in out.glob("stage-*-of-*.json")
            if not p.name.endswith(".started.json")
        ]
        avtool_items_seconds = max(stamp["work"]["items_seconds"] for stamp in stamps)
        avtool_setup_seconds = max(stamp["work"]["setup_seconds"] for stamp in stamps)
        out22 = Path(scratch) / "store22"
        avtool(
            "features",
            "logmel",
            "--manifest",
            str(clips_22k / "manifest.jsonl"),
            "--out",
            str(out22),
            "--sr",
            str(SR),
            "--n-fft",
            str(N_FFT),
            "--hop",
            str(HOP),
            "--n-mels",
            str(N_MELS),
        )
        deviation = max_deviation_db(clips_22k / "manifest.jsonl", out22)
    result = {
        "benchmark": "logmel",
        "clips": args.clips,
        "jobs": args.jobs,
        "librosa_loop_s": round(librosa_seconds, 2),
        "avtool_s": round(avtool_seconds, 2),
        "speedup_whole_process": round(librosa_seconds / avtool_seconds, 2),
        "librosa_loop_work_s": round(librosa_loop_seconds, 2),
        "avtool_items_s": round(avtool_items_seconds, 2),
        "avtool_worker_setup_s": round(avtool_setup_seconds, 2),
        "speedup_steady_state": round(librosa_loop_seconds / avtool_items_seconds, 2),
        "max_deviation_db": deviation,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
