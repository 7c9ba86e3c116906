"""Per-image wall time of MMT (two students + two EMA teachers) against Kanezaki 2018.

Both run the paper's networks (MMT: M=3, Kanezaki: two 3×3 layers + 1×1; q=100) for the same
number of iterations on the same synthetic BSDS images, one torch thread each, in one process;
Kanezaki's early stop at 3 labels is off so that the iteration counts are equal. The ratio is
MMT's time over Kanezaki's (goal: ≤ 1.0). Accuracy of both is printed beside the times.

Compute floor of that ratio, per pixel and iteration (2 FLOPs per multiply-add; backward ≈ 2×
forward, no input gradient at the first layer): MMT's M=3 net is 0.385 MFLOP forward, 1.151
MFLOP forward+backward, so two students trained and two teachers labelling cost 3.07 MFLOP;
Kanezaki's M=2 net trained once costs 0.611 MFLOP: 5.0× (2.7× if Kanezaki also had M=3).
Algorithm 1 is a chain within an iteration (teacher 2 labels → student 1 step → teacher 1's
EMA → teacher 1 labels → student 2 step), so the passes cannot be batched across networks.

`--stability` instead runs `--seeds` seeds per image with each method as the recipe runs it
(Kanezaki stops at 3 labels, 10,000 superpixels; MMT α = 0.999 unless `--ema`) and reports, per
method, the mean over images of the standard deviation over seeds of pixel accuracy and of the
segment count (the paper's claim: MMT's spread is the smaller). Example, paper's T and α:
`python bench/mmt.py --stability --images 4 --seeds 5 --iterations 1000 --height 24 --width 32`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main() -> dict:
    import numpy as np
    import torch

    from avtool.metrics.segmentation import match_scores
    from avtool.models import segmentation as seg
    from avtool.synth.bsds import make_image

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--height", type=int, default=48)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--stability", action="store_true", help="seed spread, not timing")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--ema", type=float, default=0.999)
    parser.add_argument("--segments", type=int, default=10000, help="Kanezaki's SLIC count")
    parser.add_argument("--methods", default="mmt,kanezaki", help="--stability: which to run")
    args = parser.parse_args(sys.argv[2:] if sys.argv[1:2] == ["mmt"] else sys.argv[1:])
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    images = [make_image(rng, args.height, args.width) for _ in range(args.images)]
    if args.stability:
        return stability(images, args)
    # Warm-up: first calls pay for torch's kernel selection and scikit-image's imports.
    tiny = seg.NetConfig(iterations=2)
    seg.segment_mmt(images[0][0], 0, tiny)
    seg.segment_kanezaki(images[0][0], 0, tiny, stop_early=False)
    # kanezaki_m3: the baseline with MMT's M=3, one reading of the paper's "the parameters of
    # [12] and [13] are same as the parameter of we proposed method".
    depth = {"mmt": 3, "kanezaki": 2, "kanezaki_m3": 3}
    times: dict[str, list[float]] = {name: [] for name in depth}
    accuracy: dict[str, list[float]] = {name: [] for name in depth}
    for image, labels, _ in images:
        for name, n_conv in depth.items():
            config = seg.NetConfig(args.iterations, n_conv=n_conv)
            start = time.perf_counter()
            if name == "mmt":
                out, _ = seg.segment_mmt(image, 0, config)
            else:
                out, _ = seg.segment_kanezaki(image, 0, config, segments=300, stop_early=False)
            times[name].append(time.perf_counter() - start)
            accuracy[name].append(match_scores(out, labels)[0])
    seconds = {name: float(np.mean(values)) for name, values in times.items()}
    result = {
        "benchmark": "mmt",
        "images": args.images,
        "size": [args.height, args.width],
        "iterations": args.iterations,
        "mmt_s_per_image": round(seconds["mmt"], 3),
        "kanezaki_s_per_image": round(seconds["kanezaki"], 3),
        "ratio": round(seconds["mmt"] / seconds["kanezaki"], 2),
        "ratio_to_kanezaki_m3": round(seconds["mmt"] / seconds["kanezaki_m3"], 2),
        "mmt_accuracy": round(float(np.mean(accuracy["mmt"])), 4),
        "kanezaki_accuracy": round(float(np.mean(accuracy["kanezaki"])), 4),
    }
    print(json.dumps(result))
    return result


def stability(images: list, args: argparse.Namespace) -> dict:
    import numpy as np

    from avtool.metrics.segmentation import match_scores
    from avtool.models import segmentation as seg

    runs = {
        "mmt": lambda image, seed: seg.segment_mmt(
            image, seed, seg.NetConfig(args.iterations, n_conv=3), alpha=args.ema
        ),
        "kanezaki": lambda image, seed: seg.segment_kanezaki(
            image, seed, seg.NetConfig(args.iterations, n_conv=2), segments=args.segments
        ),
    }
    runs = {name: runs[name] for name in args.methods.split(",")}
    result: dict = {
        "benchmark": "mmt_stability",
        "images": args.images,
        "seeds": args.seeds,
        "size": [args.height, args.width],
        "iterations": args.iterations,
        "ema": args.ema,
        "kanezaki_segments": args.segments,
    }
    for name, run in runs.items():
        accuracy = np.zeros((len(images), args.seeds))
        segments = np.zeros_like(accuracy)
        steps = np.zeros_like(accuracy)
        for i, (image, labels, _) in enumerate(images):
            for seed in range(args.seeds):
                out, steps[i, seed] = run(image, seed)
                accuracy[i, seed] = match_scores(out, labels)[0]
                segments[i, seed] = len(np.unique(out))
        result[name] = {
            "accuracy_mean": round(float(accuracy.mean()), 4),
            "accuracy_seed_std": round(float(accuracy.std(1).mean()), 4),
            "accuracy_seed_std_per_image": np.round(accuracy.std(1), 4).tolist(),
            "segments_mean": round(float(segments.mean()), 2),
            "segments_seed_std": round(float(segments.std(1).mean()), 2),
            "iterations_mean": round(float(steps.mean()), 1),
        }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
