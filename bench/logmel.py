"""Log-mel throughput: `avtool features logmel --jobs 2` against a per-file librosa loop.

The baseline is what the papers' code does per file: `librosa.load(path, sr=22050)` (soxr
resampling), then `power_to_db(melspectrogram(...))`. Both run as whole processes on the same
200 ten-second clips recorded at 44.1 kHz, in the same run. Deviation is measured on clips
already at 22.05 kHz, where both sides see the same waveform.
"""

from __future__ import annotations

import argparse
import json
import statistics
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
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs of each side")
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
    logmel_options = ["--sr", str(SR), "--n-fft", str(N_FFT), "--hop", str(HOP)]
    logmel_options += ["--n-mels", str(N_MELS)]
    with tempfile.TemporaryDirectory(dir=work) as scratch:
        script = Path(scratch) / "librosa_loop.py"
        script.write_text(LIBROSA_LOOP)
        # Warm-up on one clip: numba compiles librosa's kernels once per environment.
        timed([sys.executable, str(script), str(manifest), "1"])
        # The two sides alternate, `--repeats` times each, and the medians are compared: a
        # shared machine's noise then lands on both instead of deciding the ratio.
        runs: dict[str, list[float]] = {"librosa": [], "librosa_work": [], "avtool": []}
        runs |= {"avtool_items": [], "avtool_setup": []}
        for repeat in range(args.repeats):
            seconds, printed = timed([sys.executable, str(script), str(manifest), str(args.clips)])
            runs["librosa"].append(seconds)
            runs["librosa_work"].append(float(printed.strip().splitlines()[-1]))
            out = Path(scratch) / f"store{repeat}"
            seconds, _ = timed(
                [sys.executable, "-m", "avtool.cli.main", "features", "logmel", "--manifest",
                 str(manifest), "--out", str(out), *logmel_options, "--jobs", str(args.jobs)]
            )  # fmt: skip
            runs["avtool"].append(seconds)
            # Steady-state work: the item loops of the shards, which ran in parallel (the
            # longest), without interpreter start, imports and worker set-up.
            stamps = [
                json.loads(p.read_text())
                for p in out.glob("stage-*-of-*.json")
                if not p.name.endswith(".started.json")
            ]
            runs["avtool_items"].append(max(stamp["work"]["items_seconds"] for stamp in stamps))
            runs["avtool_setup"].append(max(stamp["work"]["setup_seconds"] for stamp in stamps))
        median = {name: statistics.median(values) for name, values in runs.items()}
        out22 = Path(scratch) / "store22"
        avtool("features", "logmel", "--manifest", str(clips_22k / "manifest.jsonl"), "--out",
               str(out22), *logmel_options)  # fmt: skip
        deviation = max_deviation_db(clips_22k / "manifest.jsonl", out22)
    ratios = [a / b for a, b in zip(runs["librosa"], runs["avtool"], strict=True)]
    result = {
        "benchmark": "logmel",
        "clips": args.clips,
        "jobs": args.jobs,
        "repeats": args.repeats,
        "librosa_loop_s": round(median["librosa"], 2),
        "avtool_s": round(median["avtool"], 2),
        "speedup_whole_process": round(median["librosa"] / median["avtool"], 2),
        "speedup_per_pair": [round(r, 2) for r in ratios],
        "librosa_loop_work_s": round(median["librosa_work"], 2),
        "avtool_items_s": round(median["avtool_items"], 2),
        "avtool_worker_setup_s": round(median["avtool_setup"], 2),
        "speedup_steady_state": round(median["librosa_work"] / median["avtool_items"], 2),
        "max_deviation_db": deviation,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
