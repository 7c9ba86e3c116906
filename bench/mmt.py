"""Per-image wall time of MMT (two students + two EMA teachers) against Kanezaki 2018.

Both run the paper's networks (MMT: M=3, Kanezaki: two 3×3 layers + 1×1; q=100) for the same
number of iterations on the same synthetic BSDS images, one torch thread each, in one process;
Kanezaki's early stop at 3 labels is off so that the iteration counts are equal. The ratio is
MMT's time over Kanezaki's (goal: ≤ 1.0). Accuracy of both is printed beside the times.
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
    args = parser.parse_args(sys.argv[2:] if sys.argv[1:2] == ["mmt"] else sys.argv[1:])
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    images = [make_image(rng, args.height, args.width) for _ in range(args.images)]
    # Warm-up: first calls pay for torch's kernel selection and scikit-image's imports.
    tiny = seg.NetConfig(iterations=2)
    seg.segment_mmt(images[0][0], 0, tiny)
    seg.segment_kanezaki(images[0][0], 0, tiny, stop_early=False)
    times: dict[str, list[float]] = {"mmt": [], "kanezaki": []}
    accuracy: dict[str, list[float]] = {"mmt": [], "kanezaki": []}
    for image, labels, _ in images:
        for name in times:
            start = time.perf_counter()
            if name == "mmt":
                out, _ = seg.segment_mmt(image, 0, seg.NetConfig(args.iterations, n_conv=3))
            else:
                config = seg.NetConfig(args.iterations, n_conv=2)
                out, _ = seg.segment_kanezaki(image, 0, config, segments=300, stop_early=False)
            times[name].append(time.perf_counter() - start)
            accuracy[name].append(match_scores(out, labels)[0])
    mmt_s, kanezaki_s = float(np.mean(times["mmt"])), float(np.mean(times["kanezaki"]))
    result = {
        "benchmark": "mmt",
        "images": args.images,
        "size": [args.height, args.width],
        "iterations": args.iterations,
        "mmt_s_per_image": round(mmt_s, 3),
        "kanezaki_s_per_image": round(kanezaki_s, 3),
        "ratio": round(mmt_s / kanezaki_s, 2),
        "mmt_accuracy": round(float(np.mean(accuracy["mmt"])), 4),
        "kanezaki_accuracy": round(float(np.mean(accuracy["kanezaki"])), 4),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
