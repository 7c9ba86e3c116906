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

`--cost` times one full-size image (the real 481×321 sample 135069, else a synthetic one): CPU
seconds per iteration of MMT and Kanezaki in fp32 and in bf16 (`--precisions`), side by side
in one process, the fast path (`precision=auto` on this machine) against fp32, and the
MMT/Kanezaki ratio over its FLOP floor; all of it twice, in two processes, with malloc keeping
freed memory (as the CLI runs) and with glibc's default. Process time, so other users of a
shared machine do not count. `--cost --device cuda` (a lent GPU) prints wall seconds per
full-size image at T=1000 of MMT and Kanezaki instead.

`--real` runs every method (k-means' and Felzenszwalb's whole grids, Kanezaki, Kim µ=1 and 5,
MMT at each TV weight β of `--betas`) on the real BSDS500 samples at full size (or
`--max-side`), `--seeds` seeds, and prints accuracy, mIoU, segment count and the per-image
spread over seeds. Each run is a line of
`--results` (resumed when rerun); MMT's output is also scored at a few iterations on the way.
Full size at T=300 is ~50 CPU-minutes per MMT run (10 CPU-s an iteration on one AVX2 core):
start it with nohup, e.g.
`nohup python bench/mmt.py --real --methods kmeans,mmt --seeds 1 --results r.jsonl > r.log &`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REAL_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_samples" / "bsds500"


def main() -> dict:
    import numpy as np
    import torch

    from avtool.core.memory import keep_freed_memory
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
    parser.add_argument(
        "--first-seed", type=int, default=0, help="--real: seeds first-seed..seeds-1 (in parallel)"
    )
    parser.add_argument("--ema", type=float, default=0.999)
    parser.add_argument(
        "--betas", default="5", help="--real: MMT's TV weights β to run (comma list)"
    )
    parser.add_argument("--segments", type=int, default=10000, help="Kanezaki's SLIC count")
    parser.add_argument("--methods", default="mmt,kanezaki", help="--stability/--real: which")
    parser.add_argument("--real", action="store_true", help="every method on the real samples")
    parser.add_argument("--root", type=Path, default=REAL_ROOT, help="--real: BSDS500 folder")
    parser.add_argument("--results", type=Path, help="--real: JSONL of runs, resumed if present")
    parser.add_argument(
        "--summary", type=Path, nargs="+", help="one --real table from these result files"
    )
    parser.add_argument("--precision", default="fp32", help="fp32, bf16 or auto")
    parser.add_argument("--ids", default="", help="--real: only these image ids (comma list)")
    parser.add_argument("--cost", action="store_true", help="full-size cost per iteration")
    parser.add_argument("--precisions", default="fp32,bf16", help="--cost: which precisions")
    parser.add_argument("--allocator", choices=["kept", "default"], help=argparse.SUPPRESS)
    parser.add_argument(
        "--device", default="cpu", help="--cost on a GPU (cuda): seconds per image at T=1000"
    )
    parser.add_argument(
        "--max-side", type=int, default=0, help="--real: segment a copy this size; 0 = full"
    )
    args = parser.parse_args(sys.argv[2:] if sys.argv[1:2] == ["mmt"] else sys.argv[1:])
    torch.set_num_threads(1)
    if args.allocator != "default":
        keep_freed_memory()
    if args.summary:
        return summary(args)
    if args.real:
        return real(args)
    if args.cost and args.device != "cpu":
        return device_seconds(args)
    if args.cost:
        return cost(args) if args.allocator else cost_by_allocator()
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


FLOP_FLOOR = 3.07 / 0.611  # MMT over Kanezaki (M=2), per pixel and iteration; see docstring


def cost_by_allocator() -> dict:
    """`--cost` twice, each in its own process: malloc keeping freed memory (what avtool
    does, `avtool.core.memory`) and glibc's default, which maps every large tensor anew."""
    results = {}
    for allocator in ("kept", "default"):
        command = [sys.executable, __file__, *sys.argv[1:], "--allocator", allocator]
        env = {**os.environ, "AVTOOL_KEEP_FREED_MEMORY": "1" if allocator == "kept" else "0"}
        print(f"allocator {allocator}:", flush=True)
        lines = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
        print(lines.stdout, end="", flush=True)
        results[allocator] = json.loads(lines.stdout.strip().splitlines()[-1])
    kept, default = results["kept"]["fp32"], results["default"]["fp32"]
    summary = {
        "benchmark": "mmt_cost_by_allocator",
        "fp32_mmt_cpu_s_per_iteration": {
            "kept": kept["mmt_cpu_s_per_iteration"],
            "default": default["mmt_cpu_s_per_iteration"],
        },
        "allocator_speedup_mmt": round(
            default["mmt_cpu_s_per_iteration"] / kept["mmt_cpu_s_per_iteration"], 2
        ),
        "allocator_speedup_kanezaki": round(
            default["kanezaki_cpu_s_per_iteration"] / kept["kanezaki_cpu_s_per_iteration"], 2
        ),
    }
    print(json.dumps(summary))
    return summary


def _cost_image(root: Path) -> tuple:
    import numpy as np

    from avtool.corpora.bsds import read_image
    from avtool.synth.bsds import make_image

    real_image = root / "images" / "train" / "135069.jpg"
    if real_image.exists():
        return read_image(real_image), f"real {real_image.name}"
    return make_image(np.random.default_rng(0), 321, 481)[0], "synthetic"


def _timed(image, method: str, precision: str, iterations: int, device: str, clock) -> tuple:
    """(fixed, per-iteration) seconds by `clock` of MMT or Kanezaki (no early stop): one run of
    1 iteration (set-up, kernel choice and the final labelling pass) and one of 1 + `iterations`."""
    from avtool.models import segmentation as seg

    def run(steps: int) -> float:
        config = seg.NetConfig(steps, n_conv=3 if method == "mmt" else 2, precision=precision)
        start = clock()
        if method == "mmt":
            seg.segment_mmt(image, 0, config, device=device)
        else:
            seg.segment_kanezaki(image, 0, config, device=device, stop_early=False)
        return clock() - start  # the labels come back to the host: a GPU is synced

    fixed = run(1)
    return fixed, (run(1 + iterations) - fixed) / iterations


def device_seconds(args: argparse.Namespace, iterations: int = 1000) -> dict:
    """`--cost --device cuda`: wall seconds per full-size image at T=1000 of MMT and Kanezaki
    (no early stop), fp32 and `auto`, from `--iterations` timed iterations after one."""
    from avtool.models import segmentation as seg

    image, source = _cost_image(args.root)
    result: dict = {"benchmark": "mmt_device", "device": args.device, "image": source}
    auto = "bf16" if seg.use_bf16("auto", args.device) else "fp32"
    for precision in dict.fromkeys(["fp32", auto]):
        for method in ("mmt", "kanezaki"):
            fixed, per_iteration = _timed(
                image, method, precision, args.iterations, args.device, time.perf_counter
            )
            key = f"{precision}_{method}_s_per_image_t{iterations}"
            result[key] = round(fixed + per_iteration * iterations, 1)
            print(json.dumps(result), flush=True)
    return result


def cost(args: argparse.Namespace) -> dict:
    """CPU seconds per iteration at full size (481×321), fp32 beside bf16 and `auto`, one run.

    `auto` is what `precision=auto` resolves to on this machine (bf16 only where it is native
    and a probe finds it faster). Iterations per CPU-second use process time, so the other
    users of a shared machine do not count; the ratios come from the same run.
    """
    from avtool.core.memory import keep_freed_memory
    from avtool.models import segmentation as seg

    image, source = _cost_image(args.root)
    auto = "bf16" if seg.use_bf16("auto") else "fp32"
    result: dict = {
        "benchmark": "mmt_cost",
        "image": source,
        "size": list(image.shape[:2]),
        "iterations_timed": args.iterations,
        "cpu_capability": __import__("torch").backends.cpu.get_cpu_capability(),
        "native_bf16": seg._native_bf16(),
        "auto_resolves_to": auto,
        "flop_floor_mmt_over_kanezaki": round(FLOP_FLOOR, 2),
        "keeps_freed_memory": keep_freed_memory(),
    }
    precisions = args.precisions.split(",")
    if auto not in precisions:
        precisions.append(auto)
    per_iteration: dict[str, dict[str, float]] = {}
    for precision in precisions:
        per_iteration[precision] = {}
        for method in ("mmt", "kanezaki"):
            _, seconds = _timed(image, method, precision, args.iterations, "cpu", time.process_time)
            per_iteration[precision][method] = seconds
            print(f"  {precision} {method}: {seconds:.2f} CPU-s per iteration", flush=True)
    for precision, costs in per_iteration.items():
        ratio = costs["mmt"] / costs["kanezaki"]
        result[precision] = {
            "mmt_cpu_s_per_iteration": round(costs["mmt"], 2),
            "kanezaki_cpu_s_per_iteration": round(costs["kanezaki"], 2),
            "mmt_iterations_per_cpu_s": round(1 / costs["mmt"], 4),
            "mmt_over_kanezaki": round(ratio, 2),
            "ratio_over_floor": round(ratio / FLOP_FLOOR, 2),
        }
    fast = per_iteration[auto]
    result["fast_path_speedup_over_fp32"] = round(per_iteration["fp32"]["mmt"] / fast["mmt"], 2)
    if "bf16" in per_iteration:
        result["bf16_speedup_over_fp32"] = round(
            per_iteration["fp32"]["mmt"] / per_iteration["bf16"]["mmt"], 2
        )
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


REAL_METHODS = ("kmeans", "felzenszwalb", "kanezaki", "kim", "mmt")


def _real_runs(args: argparse.Namespace) -> list[tuple[str, dict, int]]:
    """(method, variant, seed) in the order run: cheap baselines first, MMT last."""
    grids = {
        "kmeans": [{"k": k} for k in (2, 5, 8, 11, 14, 17, 20)],
        "felzenszwalb": [{"scale": s} for s in (100.0, 500.0, 1000.0, 1500.0, 2000.0)],
        "kim": [{"mu": 1.0}, {"mu": 5.0}],
        "mmt": [{"beta": float(b)} for b in args.betas.split(",")],
    }
    methods = [m for m in REAL_METHODS if m in args.methods.split(",")]
    runs = []
    for method in methods:
        seeds = [0] if method == "felzenszwalb" else list(range(args.first_seed, args.seeds))
        for variant in grids.get(method, [{}]):
            runs += [(method, variant, seed) for seed in seeds]
    return runs


def _run_real(method: str, variant: dict, seed: int, image, args, progress, observe) -> tuple:
    from avtool.models import segmentation as seg

    if method == "kmeans":
        return seg.segment_kmeans(image, variant["k"], seed), 0
    if method == "felzenszwalb":
        return seg.segment_felzenszwalb(image, variant["scale"]), 0
    n_conv = 3 if method == "mmt" else 2
    config = seg.NetConfig(args.iterations, n_conv=n_conv, precision=args.precision)
    if method == "mmt":
        return seg.segment_mmt(
            image,
            seed,
            config,
            alpha=args.ema,
            beta=variant["beta"],
            progress=progress,
            observe=observe,
        )
    if method == "kanezaki":
        return seg.segment_kanezaki(image, seed, config, segments=args.segments, progress=progress)
    return seg.segment_kim(image, seed, config, mu=variant["mu"], progress=progress)


def _checkpoints(record: dict, truths: list, args: argparse.Namespace):
    """Scores MMT's output at a few iterations on the way (a T-curve from one run)."""
    from avtool.metrics.segmentation import score_against_annotators, segment_count
    from avtool.recipes.mmt.segment import _upsample

    marks = {m for m in (25, 50, 100, 150, 200, 300, 500, 700) if m < args.iterations}

    def observe(iteration: int, labels) -> None:
        if iteration in marks:
            out = _upsample(labels(), *truths[0].shape)
            accuracy, miou = score_against_annotators(out, truths)
            line = {**record, "checkpoint": iteration, "accuracy": round(accuracy, 4)}
            line.update(miou=round(miou, 4), segments=segment_count(out), ema=args.ema)
            print(json.dumps(line), flush=True)

    return observe


def _same_run(record: dict, args: argparse.Namespace) -> bool:
    return (
        record.get("iterations_asked") == args.iterations
        and record.get("max_side", 0) == args.max_side
        and record.get("ema") in (None, args.ema)
    )


def real(args: argparse.Namespace) -> dict:
    """Every method at full size on the real BSDS500 samples; one JSONL line per run."""

    from avtool.corpora.bsds import read_ground_truth, read_image
    from avtool.metrics.segmentation import score_against_annotators, segment_count
    from avtool.models.segmentation import Throttle
    from avtool.recipes.mmt.segment import _resize, _upsample

    images = sorted((args.root / "images" / "train").glob("*.jpg"))
    if args.ids:
        images = [p for p in images if p.stem in args.ids.split(",")]
    if not images:
        sys.exit(f"{args.root}: no images/train/*.jpg; pass --root to the BSDS500 samples")
    done: list[dict] = []
    if args.results and args.results.exists():
        done = [json.loads(line) for line in args.results.read_text().splitlines() if line]
    key = lambda r: (r["id"], r["method"], json.dumps(r["variant"]), r["seed"])  # noqa: E731
    seen = {key(r) for r in done if _same_run(r, args)}
    for path in images:
        image = read_image(path)
        small = _resize(image, args.max_side)
        truths = read_ground_truth(args.root / "groundTruth" / "train" / f"{path.stem}.mat")
        for method, variant, seed in _real_runs(args):
            record = {"id": path.stem, "method": method, "variant": variant, "seed": seed}
            if key(record) in seen:
                continue
            tag = f"{path.stem} {method} {variant or ''} seed {seed}"
            progress = Throttle(
                lambda i, loss, n, tag=tag: print(
                    f"  {tag}: iteration {i}/{args.iterations} loss {loss:.3f} segments {n}",
                    flush=True,
                ),
                every=30.0,
            )
            start_cpu, start = time.process_time(), time.perf_counter()
            observe = _checkpoints(record, truths, args) if method == "mmt" else None
            labels, steps = _run_real(method, variant, seed, small, args, progress, observe)
            labels = _upsample(labels, *image.shape[:2])
            accuracy, miou = score_against_annotators(labels, truths)
            record.update(
                iterations_asked=args.iterations,
                max_side=args.max_side,
                iterations=int(steps),
                precision=args.precision,
                ema=args.ema if method == "mmt" else None,
                accuracy=round(accuracy, 4),
                miou=round(miou, 4),
                segments=segment_count(labels),
                cpu_s=round(time.process_time() - start_cpu, 1),
                wall_s=round(time.perf_counter() - start, 1),
            )
            print(json.dumps(record), flush=True)
            done.append(record)
            if args.results:
                with args.results.open("a") as handle:
                    handle.write(json.dumps(record) + "\n")
    return print_real([r for r in done if _same_run(r, args)], len(images), args)


def print_real(records: list[dict], images: int, args: argparse.Namespace) -> dict:
    """The table over images and seeds, then the per-image one; returns the rows."""
    rows = real_table(records)
    print(
        f"\n{images} real BSDS500 train images, T={args.iterations}, "
        f"--max-side {args.max_side or 'full'}; "
        "accuracy/mIoU averaged over each image's annotators\n"
    )
    print("| Method | Images | Seeds | Accuracy | ± seeds (per image) | mIoU | Segments |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['label']} | {row['images']} | {row['seeds']} | {row['accuracy']:.4f} "
            f"| {row['accuracy_seed_std']:.4f} | {row['miou']:.4f} | {row['segments']:.1f} |"
        )
    print_per_image(records)
    result = {"benchmark": "mmt_real", "iterations": args.iterations, "rows": rows}
    print(json.dumps(result))
    return result


def summary(args: argparse.Namespace) -> dict:
    """`--summary A.jsonl B.jsonl …`: one table over the runs of several `--real` result files
    (seeds or precisions run in separate processes), those at `--iterations` and `--max-side`."""
    records = [
        json.loads(line)
        for path in args.summary
        for line in path.read_text().splitlines()
        if line.strip()
    ]
    # one run per (image, method, setting, seed, precision): the last line wins
    unique = {
        (r["id"], run_label(r), r["seed"]): r
        for r in records
        if "checkpoint" not in r and _same_run(r, args)
    }
    records = list(unique.values())
    if not records:
        sys.exit(f"no runs at T={args.iterations} in {', '.join(map(str, args.summary))}")
    return print_real(records, len({r["id"] for r in records}), args)


CNN_METHODS = ("kanezaki", "kim", "mmt")


def run_label(record: dict) -> str:
    """'kmeans (k=8)', 'mmt (beta=5)', 'mmt (beta=5) bf16', 'kanezaki'."""
    settings = ", ".join(f"{k}={v:g}" for k, v in record["variant"].items())
    label = record["method"] + (f" ({settings})" if settings else "")
    precision = record.get("precision", "fp32")
    return label + (
        f" {precision}" if record["method"] in CNN_METHODS and precision != "fp32" else ""
    )


def print_per_image(records: list[dict], kmeans_k: int = 8) -> None:
    """Accuracy / mIoU / segments of each CNN run per image beside k-means at k=8 (the paper's
    reference baseline), mean over seeds."""
    import numpy as np

    shown = [
        r
        for r in records
        if r["method"] not in ("kmeans", "felzenszwalb") or r["variant"] == {"k": kmeans_k}
    ]
    columns = sorted(
        {run_label(r) for r in shown},
        key=lambda c: (not c.startswith("kmeans"), c),
    )
    print(f"\nPer image, mean over seeds: accuracy / mIoU / segments (k-means at k={kmeans_k})\n")
    print("| Image | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for image in sorted({r["id"] for r in shown}):
        cells = []
        for column in columns:
            mine = [r for r in shown if r["id"] == image and run_label(r) == column]
            cells.append(
                " / ".join(
                    f"{np.mean([r[key] for r in mine]):{fmt}}"
                    for key, fmt in (("accuracy", ".4f"), ("miou", ".4f"), ("segments", ".0f"))
                )
                if mine
                else "–"
            )
        print(f"| {image} | " + " | ".join(cells) + " |")


def real_table(records: list[dict]) -> list[dict]:
    """One row per (method, setting, precision): the mean over images of each image's mean
    over seeds (images with fewer seeds weigh the same), and the seed spread per image."""
    import numpy as np

    groups: dict[str, list[dict]] = {}
    for r in records:
        groups.setdefault(run_label(r), []).append(r)
    rows = []
    for label, group in groups.items():
        by_image: dict[str, list[dict]] = {}
        for r in group:
            by_image.setdefault(r["id"], []).append(r)

        def image_mean(key: str, by_image: dict = by_image) -> float:
            return float(np.mean([np.mean([r[key] for r in runs]) for runs in by_image.values()]))

        rows.append(
            {
                "label": label,
                "images": len(by_image),
                "seeds": max(len(v) for v in by_image.values()),
                "accuracy": image_mean("accuracy"),
                "accuracy_seed_std": float(
                    np.mean([np.std([r["accuracy"] for r in v]) for v in by_image.values()])
                ),
                "miou": image_mean("miou"),
                "segments": image_mean("segments"),
            }
        )
    return rows


if __name__ == "__main__":
    main()
