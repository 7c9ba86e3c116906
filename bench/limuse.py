"""LiMuSE speed and memory: training samples/s, peak memory per sample, inference RTF.

K=32 with the authors' configuration (voiceprint 512, face 256, N=128, L=16) on `--seconds`
of dual-channel audio at 16 kHz, on the CPU:
- training: Adam steps (forward, negative SI-SDR, backward, clipping at 5) for each run of
  `--train` (with or without activation checkpointing, a batch, torch's threads or a count, and
  optionally several DDP ranks over gloo sharing the batch: one single-thread rank per core is
  how a researcher runs `torchrun --nproc-per-node` on a small CPU machine); each in fresh
  processes, timed over `--steps` steps after `WARMUP_STEPS` (the first two pay the
  heap's growth: 4-6 s of forward against 1 s steady at batch 1); peak resident memory
  (ru_maxrss) less the memory before the first step is the peak;
- inference on one thread: the full-precision model (through the fused kernels of
  `avtool/models/limuse_fused.cpp`, the default, and on torch's path, in pieces and whole) and
  the model loaded from its packed 3-bit/8-bit file (`avtool.quant.pack`; kernels and torch's
  path), real-time factor = seconds / audio seconds, best of `--repeats`, with how far apart
  the paths' outputs are (the packed model's through its 8-bit grids: an SNR).

The authors' implementation is not installable here (no network, and its code is not ours to
ship), so its figures are the ones the issue measured on this machine kind (10 s per training
step of one 3 s mixture, 7.2 GB peak; inference 4.8 s, RTF 1.6): ratios against them are
across runs, not within one; the fused/torch, pieces/whole, checkpointing and packed/full ratios
are within this run. The CPUs may be shared: rerun on an idle machine for absolute figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

WARMUP_STEPS = 2
AUTHORS = {"train_seconds_per_sample": 10.0, "train_peak_gb_per_sample": 7.2, "rtf": 1.6}


def _inputs(batch: int, seconds: float):
    import torch

    samples = int(16000 * seconds)
    return (
        torch.randn(batch, 2, samples),
        torch.randn(batch, 512),
        torch.randn(batch, round(25 * seconds), 256),
        torch.randn(batch, samples),
    )


def _train_steps(batch: int, seconds: float, checkpointing: bool, steps: int) -> dict:
    import torch

    from avtool.metrics.si_sdr import negative_si_sdr
    from avtool.models.limuse import LiMuSE, LimuseModelConfig
    from avtool.train.distributed import setup

    context = setup("cpu")  # a process group when launched as one of several ranks
    torch.manual_seed(0)
    model = LiMuSE(LimuseModelConfig(checkpointing=checkpointing)).train()
    net = torch.nn.parallel.DistributedDataParallel(model) if context.is_distributed else model
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    mixture, voiceprint, visual, target = _inputs(batch, seconds)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    times = []
    for _ in range(WARMUP_STEPS + steps):
        started = time.perf_counter()
        loss = negative_si_sdr(net(mixture, voiceprint, visual), target)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        times.append(time.perf_counter() - started)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    steady = sum(times[WARMUP_STEPS:]) / steps
    context.close()
    return {
        "threads": torch.get_num_threads(),
        "warmup_seconds": times[:WARMUP_STEPS],
        "seconds_per_step": steady,
        "samples_per_s": batch / steady,
        "peak_gb_per_sample": peak / batch / 1e9,
    }


@contextlib.contextmanager
def _whole():
    """Each block in one piece, as the stack ran before it was split."""
    import avtool.models.limuse as limuse

    saved = limuse.TAC_SPAN_FRAMES, limuse.CONV_BLOCK_CHUNK_ELEMENTS
    limuse.TAC_SPAN_FRAMES, limuse.CONV_BLOCK_CHUNK_ELEMENTS = 1 << 40, 1 << 60
    try:
        yield
    finally:
        limuse.TAC_SPAN_FRAMES, limuse.CONV_BLOCK_CHUNK_ELEMENTS = saved


def _rtf(model, inputs, seconds: float, repeats: int) -> tuple[float, object]:
    best, output = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        output = model(*inputs)
        best = min(best, time.perf_counter() - started)
    return best / seconds, output


def _inference(seconds: float, repeats: int) -> dict:
    import torch

    from avtool.models import limuse_fused
    from avtool.models.limuse import LiMuSE, LimuseModelConfig
    from avtool.quant.pack import export_packed, load_packed
    from avtool.quant.weights import quantize_model
    from avtool.recipes.limuse import build_model

    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = LimuseModelConfig()
    model = LiMuSE(config).eval()
    mixture, voiceprint, visual, _ = _inputs(1, seconds)
    inputs = (mixture, voiceprint, visual)
    result = {}
    with torch.no_grad(), tempfile.TemporaryDirectory() as tmp:
        result["fused_kernels"] = limuse_fused.kernels() is not None
        result["rtf_full"], full = _rtf(model, inputs, seconds, repeats)
        with limuse_fused.torch_path():
            result["rtf_full_torch"], pieces = _rtf(model, inputs, seconds, repeats)
            with _whole():
                result["rtf_full_torch_whole"], whole = _rtf(model, inputs, seconds, repeats)
        result["max_deviation_fused_vs_torch"] = float((full - pieces).abs().max())
        result["max_deviation_pieces_vs_whole"] = float((pieces - whole).abs().max())
        quantize_model(model, 3, 8)
        model.eval()
        size = export_packed(model, LiMuSE(config), Path(tmp) / "m.avtq",
                             {"arch": "limuse", "model": asdict(config)}, 3, 8)  # fmt: skip
        packed, _ = load_packed(Path(tmp) / "m.avtq", build_model)
        result["rtf_packed"], low = _rtf(packed, inputs, seconds, repeats)
        with limuse_fused.torch_path():
            result["rtf_packed_torch"], low_torch = _rtf(packed, inputs, seconds, 1)
            fake_torch = model(*inputs)
        result["packed_bytes"] = size
        result["max_deviation_packed_vs_fake_quantized"] = float((model(*inputs) - low).abs().max())
        result["max_deviation_packed_vs_fake_quantized_torch"] = float(
            (fake_torch - low_torch).abs().max()
        )
        # 8-bit grids turn float rounding into grid steps: how far the two paths' outputs are.
        result["packed_fused_vs_torch_snr_db"] = float(
            10 * torch.log10(low_torch.pow(2).sum() / (low - low_torch).pow(2).sum())
        )
        result["full_output_rms"] = float(full.pow(2).mean().sqrt())
    result["fused_speedup_full"] = result["rtf_full_torch"] / result["rtf_full"]
    result["pieces_speedup_full"] = result["rtf_full_torch_whole"] / result["rtf_full_torch"]
    result["fused_speedup_packed"] = result["rtf_packed_torch"] / result["rtf_packed"]
    return result


def _train_run(mode: str, batch: int, threads: int, processes: int, args) -> dict:
    """One training run in fresh processes: `processes` DDP ranks of batch/processes items
    each; the step time is the slowest rank's, the peak memory the ranks' sum."""
    if batch % processes:
        raise RuntimeError(f"batch {batch} does not split over {processes} processes")
    command = [sys.executable, __file__, "--one", f"{mode}:{batch // processes}:{threads}",
               "--steps", str(args.steps), "--seconds", str(args.seconds)]  # fmt: skip
    port = 29500 + os.getpid() % 1000
    ranks = [
        subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={
                **os.environ,
                "RANK": str(rank),
                "WORLD_SIZE": str(processes),
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(port),
            },
        )
        for rank in range(processes)
    ]
    failed = None
    while failed is None and any(rank.poll() is None for rank in ranks):
        failed = next((i for i, rank in enumerate(ranks) if rank.poll()), None)
        time.sleep(0.5)
    for rank in ranks:  # after one rank died (e.g. killed for memory) the others would wait
        rank.kill()  # for it in the all-reduce
    outputs = [rank.communicate() for rank in ranks]
    if failed is None:
        failed = next((i for i, rank in enumerate(ranks) if rank.returncode), None)
    if failed is not None:
        error = outputs[failed][1].strip()[-200:]
        raise RuntimeError(f"rank {failed} exited {ranks[failed].returncode}: {error}")
    steps = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    slowest = max(step["seconds_per_step"] for step in steps)
    peak = sum(step["peak_gb_per_sample"] * (batch // processes) for step in steps)
    return {
        **steps[0],
        "processes": processes,
        "seconds_per_step": slowest,
        "samples_per_s": batch / slowest,
        "peak_gb_per_sample": peak / batch,
    }


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument(
        "--train",
        default="plain:1:1,plain:2,checkpointing:2,checkpointing:2:1:2,checkpointing:8,"
        "checkpointing:8:1:2",
        help="training runs, mode:batch[:threads[:processes]] comma-separated (threads: torch's"
        " default unless given; processes: DDP ranks over gloo sharing the batch; plain at batch"
        " 8 needs ~48 GB)",
    )
    parser.add_argument("--steps", type=int, default=3, help="training steps per run")
    parser.add_argument("--repeats", type=int, default=2, help="inference runs (best kept)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(sys.argv[2:] if sys.argv[1:2] == ["limuse"] else sys.argv[1:])
    from avtool.core.memory import keep_freed_memory

    keep_freed_memory()  # as the CLI does
    if args.one:
        mode, batch, threads = args.one.split(":")
        if int(threads):
            import torch

            torch.set_num_threads(int(threads))
        print(
            json.dumps(_train_steps(int(batch), args.seconds, mode == "checkpointing", args.steps))
        )
        return {}
    result: dict = {"benchmark": "limuse", "seconds": args.seconds, "train": {}}
    scale = 3.0 / args.seconds  # the authors' figures are for 3 s mixtures
    for run_spec in filter(None, args.train.split(",")):
        mode, batch_text, *rest = run_spec.split(":")
        batch, threads, processes = int(batch_text), *map(int, rest + ["0", "1"][len(rest) :])
        name = f"{mode}_batch{batch}" + (f"_threads{threads}" if threads else "")
        name += f"_processes{processes}" if processes > 1 else ""
        try:
            step = _train_run(mode, batch, threads, processes, args)
        except RuntimeError as error:  # e.g. killed for memory: say so and go on
            result["train"][name] = {"failed": str(error)[-300:]}
            continue
        step["speedup_vs_authors"] = AUTHORS["train_seconds_per_sample"] / (
            step["seconds_per_step"] / batch * scale
        )
        step["memory_vs_authors_per_sample"] = (
            step["peak_gb_per_sample"] * scale / AUTHORS["train_peak_gb_per_sample"]
        )
        result["train"][name] = step
        print(json.dumps({name: step}), flush=True)
    result["inference"] = _inference(args.seconds, args.repeats)
    result["inference"]["speedup_vs_authors_full"] = (
        AUTHORS["rtf"] / result["inference"]["rtf_full"]
    )
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
