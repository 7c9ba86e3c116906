"""LiMuSE data throughput: mixtures per second and face-descriptor frames per second.

On a synthetic GRID (4 speakers x 3 utterances): the mixing stage (load, pyroomacoustics
anechoic simulation, SNR scaling, two wavs) over `--mixtures` mixtures, and the face stage
(decode, dlib HOG detection, 5-point landmarks, ResNet descriptor) over `--videos` 3 s
videos, each with one process and with `--jobs 2` (fresh output folders each time).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def main() -> dict:
    from avtool.core.journal import read_jsonl, write_jsonl
    from avtool.corpora.grid import (
        GridConfig,
        MixtureCounts,
        SplitSpeakers,
        build_index,
        build_lists,
    )
    from avtool.corpora.grid_mixtures import mix_grid
    from avtool.features.face import FaceParams, extract_face
    from avtool.synth.grid import synth_grid

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mixtures", type=int, default=40)
    parser.add_argument("--videos", type=int, default=4)
    args = parser.parse_args(sys.argv[2:] if sys.argv[1:2] == ["limuse_data"] else sys.argv[1:])
    config = GridConfig(
        speakers=SplitSpeakers(valid=[], test=["s3", "s4"]),
        mixtures=MixtureCounts(train=args.mixtures, valid=0, test=0),
    )
    result: dict = {"benchmark": "limuse_data", "mixtures": args.mixtures, "videos": args.videos}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        synth_grid(work / "GRID", 4, 3)
        build_index(work / "GRID", work / "index", config)
        build_lists(work / "index", work / "lists", config)
        videos = list(read_jsonl(work / "index" / "utterances.jsonl"))[: args.videos]
        for v in videos:
            v["path"] = str(work / "index" / v["video"])
        write_jsonl(work / "videos.jsonl", videos)
        for jobs in (1, 2):
            start = time.perf_counter()
            mix_grid(work / "lists", work / f"mix{jobs}", config, jobs=jobs)
            result[f"mixtures_per_s_jobs{jobs}"] = round(
                args.mixtures / (time.perf_counter() - start), 2
            )
            start = time.perf_counter()
            extract_face(work / "videos.jsonl", work / f"face{jobs}", FaceParams(), jobs=jobs)
            frames = 75 * len(videos)
            result[f"face_frames_per_s_jobs{jobs}"] = round(
                frames / (time.perf_counter() - start), 2
            )
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
