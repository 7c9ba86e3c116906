"""Fault check at full size: SIGKILL `avtool features logmel` at random instants, resume, compare.

Over N synthetic ten-second clips: an uninterrupted run, a run killed K times at random instants
and then completed, and the same extraction as 3 separate shards. Prints whether every store
equals the uninterrupted one item for item, bit for bit, and whether every shard file opens.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def logmel_command(manifest: Path, out: Path, *extra: str) -> list[str]:
    return [
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
        "22050",
        "--n-fft",
        "2048",
        "--hop",
        "366",
        "--n-mels",
        "128",
        *extra,
    ]


def load(store_dir: Path) -> dict[str, np.ndarray]:
    from avtool.core.store import FeatureStore

    with FeatureStore(store_dir) as store:
        return {key: store[key] for key in store}


def identical(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return sorted(a) == sorted(b) and all(
        a[k].tobytes() == b[k].tobytes() and a[k].shape == b[k].shape for k in a
    )


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=300)
    parser.add_argument("--kills", type=int, default=4)
    parser.add_argument("--work", type=Path, default=Path("data/bench/crash"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(sys.argv[2:] if sys.argv[1:2] == ["crash_resume"] else sys.argv[1:])
    work = args.work
    corpus = work / f"speech-{args.clips}"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "avtool.cli.main",
            "synth",
            "speech",
            "--out",
            str(corpus),
            "--count",
            str(args.clips),
            "--duration",
            "10",
            "--sr",
            "22050",
            "--seed",
            "3",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    manifest = corpus / "manifest.jsonl"
    for name in ("reference", "killed", "sharded"):
        subprocess.run(["rm", "-rf", str(work / name)], check=True)
    start = time.perf_counter()
    subprocess.run(
        logmel_command(manifest, work / "reference"), check=True, stdout=subprocess.DEVNULL
    )
    full_seconds = time.perf_counter() - start
    rng = random.Random(args.seed)
    kill_times, after_kills = [], []
    for _ in range(args.kills):
        process = subprocess.Popen(
            logmel_command(manifest, work / "killed"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        journal = work / "killed" / "journal.jsonl"
        done_before = sum(1 for _ in journal.open()) if journal.exists() else 0
        # Kill inside the item loop, by progress rather than by clock (load varies): once this
        # attempt has committed a batch, at a random instant of the next one.
        started = time.perf_counter()
        while process.poll() is None:
            done_now = sum(1 for _ in journal.open()) if journal.exists() else 0
            if done_now > done_before:
                break
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.5))
        instant = time.perf_counter() - started
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kill_times.append(round(instant, 2))
        process.wait()
        done = sum(1 for _ in journal.open()) if journal.exists() else 0
        parts = len(list((work / "killed").glob("part-*.h5")))
        after_kills.append(
            {
                "journal_lines": done,
                "readable_items": len(load(work / "killed")),
                "part_files": parts,
            }
        )
    subprocess.run(logmel_command(manifest, work / "killed"), check=True, stdout=subprocess.DEVNULL)
    for index in range(3):
        subprocess.run(
            logmel_command(manifest, work / "sharded", "--shard", f"{index}/3"),
            check=True,
            stdout=subprocess.DEVNULL,
        )
    reference = load(work / "reference")
    killed = load(work / "killed")
    journal_ids = [json.loads(line)["id"] for line in (work / "killed" / "journal.jsonl").open()]
    result = {
        "benchmark": "crash_resume",
        "clips": args.clips,
        "uninterrupted_s": round(full_seconds, 1),
        "kill_instants_s": kill_times,
        "after_each_kill": after_kills,
        "killed_equals_reference": identical(reference, killed),
        "killed_shard_file_bytes_equal": (work / "killed" / "shard-00000-of-00001.h5").read_bytes()
        == (work / "reference" / "shard-00000-of-00001.h5").read_bytes(),
        "journal_lines": len(journal_ids),
        "journal_duplicates": len(journal_ids) - len(set(journal_ids)),
        "three_shards_equal_reference": identical(reference, load(work / "sharded")),
        "items": len(reference),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
