"""SER feature throughput: `avtool features ser-mfcc --jobs 2` against the report's function.

The baseline is the report's `extract_mfcc_features` called per file, as its notebook does
(librosa.load at 16 kHz, trim top_db=20, normalize, mfcc(n_mfcc=40) + delta + delta2 +
power_to_db(melspectrogram(n_mels=40), ref=np.max), time means): one process over the same
48 kHz synthetic RAVDESS files, in the same run, after a warm-up that compiles librosa's numba
kernels. Both sides are whole processes (imports included). Deviation: the largest absolute
difference between the two 160-d vectors over the first 50 files.
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

REPORT_LOOP = """
import json, os, sys
import librosa
import numpy as np

def extract_mfcc_features(file_path, resampling_freq=16000, n_mfcc=40):
    audio, sr = librosa.load(file_path, sr=resampling_freq)
    trimmed_audio, _ = librosa.effects.trim(audio, top_db=20)
    preprocessed_audio = librosa.util.normalize(trimmed_audio)
    mfccs = librosa.feature.mfcc(y=preprocessed_audio, sr=sr, n_mfcc=n_mfcc)
    delta_mfccs = librosa.feature.delta(mfccs)
    delta_delta_mfccs = librosa.feature.delta(mfccs, order=2)
    mel_spec = librosa.feature.melspectrogram(y=preprocessed_audio, sr=sr, n_mels=40)
    mel_spec_db = librosa.power_to_db(mel_spec, ref=np.max)
    return np.concatenate([np.mean(mfccs, axis=1), np.mean(delta_mfccs, axis=1),
                           np.mean(delta_delta_mfccs, axis=1), np.mean(mel_spec_db, axis=1)])

manifest, limit, dump = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = [json.loads(line) for line in open(manifest)][:limit]
out = {row["id"]: extract_mfcc_features(os.path.join(os.path.dirname(manifest), row["path"]))
       for row in rows}
if dump != "-":
    np.savez(dump, **{k: v for k, v in list(out.items())[:50]})
print(len(out))
"""


def avtool(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "avtool.cli.main", *args], check=True, stdout=subprocess.DEVNULL
    )


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--actors", type=int, default=24, help="60 files each (24: 1440)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs of each side")
    parser.add_argument("--work", type=Path, default=Path("data/bench"))
    args = parser.parse_args(sys.argv[2:] if sys.argv[1:2] == ["ser"] else sys.argv[1:])
    corpus = args.work / f"ravdess-{args.actors}"
    avtool("synth", "ravdess", "--out", str(corpus), "--actors", str(args.actors))
    prep = args.work / f"ravdess-{args.actors}-prep"
    avtool("prepare", "ravdess", "--root", str(corpus), "--out", str(prep))
    manifest = prep / "manifest.jsonl"
    files = sum(1 for _ in manifest.open())
    import numpy as np

    from avtool.core.store import FeatureStore

    args.work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.work) as scratch:
        script = Path(scratch) / "report_loop.py"
        script.write_text(REPORT_LOOP)
        dump = Path(scratch) / "reference.npz"
        timed([sys.executable, str(script), str(manifest), "1", "-"])  # numba warm-up
        # The sides alternate, `--repeats` times each; the medians are compared (shared-machine
        # noise lands on both instead of deciding the ratio).
        report_runs, avtool_runs = [], []
        for repeat in range(args.repeats):
            report_runs.append(
                timed([sys.executable, str(script), str(manifest), str(files), str(dump)])
            )
            store = Path(scratch) / f"store{repeat}"
            command = [sys.executable, "-m", "avtool.cli.main", "features", "ser-mfcc"]
            command += ["--manifest", str(manifest), "--out", str(store), "--jobs", str(args.jobs)]
            avtool_runs.append(timed(command))
        reference = np.load(dump)
        with FeatureStore(store) as features:
            deviation = max(float(np.abs(features[k] - reference[k]).max()) for k in reference)
    report_seconds, avtool_seconds = statistics.median(report_runs), statistics.median(avtool_runs)
    result = {
        "benchmark": "ser",
        "files": files,
        "jobs": args.jobs,
        "repeats": args.repeats,
        "report_function_s": round(report_seconds, 2),
        "avtool_s": round(avtool_seconds, 2),
        "speedup": round(report_seconds / avtool_seconds, 2),
        "speedup_per_pair": [
            round(a / b, 2) for a, b in zip(report_runs, avtool_runs, strict=True)
        ],
        "max_abs_deviation": deviation,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
