"""LiMuSE speed and memory: training samples/s, peak memory per sample, inference RTF.

K=32 with the authors' configuration (voiceprint 512, face 256, N=128, L=16) on `--seconds`
of dual-channel audio at 16 kHz, on the CPU:
- training: one Adam step (forward, negative SI-SDR, backward, clipping at 5) at batch
  `--batch`, with and without activation checkpointing; each in a fresh process, whose peak
  resident memory (ru_maxrss) less the memory before the step is the step's peak;
- inference on one thread: the full-precision model and the model loaded from its packed
  3-bit/8-bit file (`avtool.quant.pack`), real-time factor = seconds / audio seconds.

The authors' implementation is not installable here (no network, and its code is not ours to
ship), so its figures are the ones the issue measured on this machine kind (10 s per training
step of one 3 s mixture, 7.2 GB peak; inference 4.8 s, RTF 1.6): ratios against them are
across runs, not within one; the checkpointing on/off and packed/full ratios are within this
run. The CPUs are shared: rerun on an idle machine for absolute figures.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

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


def _train_step(batch: int, seconds: float, checkpointing: bool) -> dict:
    import torch

    from avtool.metrics.si_sdr import negative_si_sdr
    from avtool.models.limuse import LiMuSE, LimuseModelConfig

    torch.manual_seed(0)
    model = LiMuSE(LimuseModelConfig(checkpointing=checkpointing)).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    mixture, voiceprint, visual, target = _inputs(batch, seconds)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    started = time.perf_counter()
    loss = negative_si_sdr(model(mixture, voiceprint, visual), target)
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    optimizer.step()
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    return {
        "seconds": elapsed,
        "samples_per_s": batch / elapsed,
        "peak_gb_per_sample": peak / batch / 1e9,
    }


def _inference(seconds: float) -> dict:
    import torch

    from avtool.models.limuse import LiMuSE, LimuseModelConfig
    from avtool.quant.pack import export_packed, load_packed
    from avtool.quant.weights import quantize_model
    from avtool.recipes.limuse import build_model

    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = LimuseModelConfig()
    model = LiMuSE(config).eval()
    mixture, voiceprint, visual, _ = _inputs(1, seconds)
    result = {}
    with torch.no_grad(), tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        full = model(mixture, voiceprint, visual)
        result["rtf_full"] = (time.perf_counter() - started) / seconds
        quantize_model(model, 3, 8)
        model.eval()
        size = export_packed(model, LiMuSE(config), Path(tmp) / "m.avtq",
                             {"arch": "limuse", "model": asdict(config)}, 3, 8)  # fmt: skip
        packed, _ = load_packed(Path(tmp) / "m.avtq", build_model)
        started = time.perf_counter()
        low = packed(mixture, voiceprint, visual)
        result["rtf_packed"] = (time.perf_counter() - started) / seconds
        result["packed_bytes"] = size
        result["max_deviation_packed_vs_fake_quantized"] = float(
            (model(mixture, voiceprint, visual) - low).abs().max()
        )
        result["full_output_rms"] = float(full.pow(2).mean().sqrt())
    return result


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--one", choices=["plain", "checkpointing"], help=argparse.SUPPRESS)
    args = parser.parse_args(sys.argv[2:] if sys.argv[1:2] == ["limuse"] else sys.argv[1:])
    if args.one:
        print(json.dumps(_train_step(args.batch, args.seconds, args.one == "checkpointing")))
        return {}
    result: dict = {"benchmark": "limuse", "seconds": args.seconds, "batch": args.batch}
    for mode in ("plain", "checkpointing"):
        command = [sys.executable, __file__, "--one", mode, "--batch", str(args.batch),
                   "--seconds", str(args.seconds)]  # fmt: skip
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        result[f"train_{mode}"] = json.loads(output.strip().splitlines()[-1])
    result["inference"] = _inference(args.seconds)
    per_sample = result["train_plain"]["seconds"] / args.batch * 3.0 / args.seconds
    result["vs_authors_across_runs"] = {
        "train_speedup": AUTHORS["train_seconds_per_sample"] / per_sample,
        "train_memory_ratio_plain": result["train_plain"]["peak_gb_per_sample"]
        * 3.0
        / args.seconds
        / AUTHORS["train_peak_gb_per_sample"],
        "train_memory_ratio_checkpointing": result["train_checkpointing"]["peak_gb_per_sample"]
        * 3.0
        / args.seconds
        / AUTHORS["train_peak_gb_per_sample"],
        "inference_speedup_full": AUTHORS["rtf"] / result["inference"]["rtf_full"],
    }
    result["checkpointing_memory_saving"] = result["train_plain"]["peak_gb_per_sample"] / max(
        result["train_checkpointing"]["peak_gb_per_sample"], 1e-9
    )
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
