"""`quantize limuse`: from a finished run, weight quantization networks (eqs. 1-4) and 8-bit
min-max activations, fine-tuned 10 epochs at lr 1e-4 with T = 5 x epoch; then the packed
file `model.avtq` (avtool.quant.pack) and the check that the model loaded from it gives the
fake-quantized model's outputs.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from avtool.core.errors import InputError
from avtool.recipes.limuse.config import PACKED, QUANTIZE_VERSION, QuantizeConfig
from avtool.recipes.limuse.data import LimuseMixtures
from avtool.recipes.limuse.model import build_model, forward, fp32_no_gc_bytes, loss, validate
from avtool.recipes.limuse.train import headline, read_run


def quantize_limuse(
    run: Path,
    out: Path,
    config: QuantizeConfig,
    force: bool = False,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Fine-tune a quantized copy of a trained run; write the packed model and check it."""
    import torch

    from avtool.core import atomic
    from avtool.core.stage import Stage, describe_status
    from avtool.quant.pack import export_packed, load_packed
    from avtool.quant.weights import quantize_model, set_temperature
    from avtool.train import checkpoint
    from avtool.train.loop import fit

    run, out = Path(run).resolve(), Path(out)
    summary, run_config = read_run(run)
    if "source_run" in summary:
        raise InputError(f"{run}: already quantized; quantize its full-precision run")
    stage = Stage(
        "quantize.limuse", QUANTIZE_VERSION, out, {"config": asdict(config), "run": str(run)},
        [run / "stage.json"],
    )  # fmt: skip
    if dry_run:
        return {"state": "dry-run", "message": describe_status(stage, force)}
    if stage.status().state == "done" and not force:
        return {"state": "up-to-date", **headline(json.loads((out / "summary.json").read_text()))}
    main_process = int(os.environ.get("RANK", "0")) == 0
    if main_process:
        stage.begin(force=force)
    header = {"arch": summary["arch"], "model": summary["model"]}
    model = build_model(header)
    model.load_state_dict(checkpoint.load(run / "final.pt")["model"])
    quantize_model(model, config.weight_bits, config.act_bits)
    # The epoch count lives in the model's state, so a resumed run keeps its temperature.
    model.register_buffer("quant_steps", torch.zeros((), dtype=torch.long))
    paths = [Path(summary[k]) if summary.get(k) else None for k in ("voiceprint", "face")]
    data = Path(summary["data"])
    train_set = LimuseMixtures(data, "train", *paths, run_config, run_config.max_train_items)
    val_set = LimuseMixtures(data, "valid", *paths, run_config)
    steps_per_epoch = math.ceil(len(train_set) / config.train.batch_size)
    arch = summary["arch"]

    def step(net, teacher, batch):
        module = getattr(net, "module", net)
        epoch = int(module.quant_steps) // steps_per_epoch + 1
        set_temperature(module, config.temperature_per_epoch * epoch)
        module.quant_steps += 1
        return loss(net, arch, batch)

    fit(
        model,
        train_set,
        config.train,
        out,
        step_fn=step,
        val_set=val_set if len(val_set) else None,
        evaluate_fn=validate(arch) if len(val_set) else None,
    )
    model.eval()
    size = export_packed(
        model, build_model(header), out / PACKED, header, config.weight_bits, config.act_bits
    )
    loaded, _ = load_packed(out / PACKED, build_model)
    check = LimuseMixtures(data, "test", *paths, run_config)
    check = check if len(check) else train_set
    deviation = 0.0
    with torch.no_grad():
        for position in range(min(config.check_items, len(check))):
            mixture, vp, vis, _ = (t.unsqueeze(0) for t in check[position])
            a = forward(model, mixture, vp, vis)
            b = forward(loaded, mixture, vp, vis)
            deviation = max(deviation, float((a - b).abs().max()))
    reference = fp32_no_gc_bytes(header)
    quant_summary = {
        **summary,
        "source_run": str(run),
        "weight_bits": config.weight_bits,
        "act_bits": config.act_bits,
        "bytes": size,
        "fp32_bytes": 4 * summary["params"],
        "compression_ratio": reference / size,
        "max_deviation": deviation,
        "deviation_items": min(config.check_items, len(check)),
    }
    if main_process:
        atomic.write_json(out / "summary.json", quant_summary)
        stage.finish(
            counts={"bytes": size, "train_items": len(train_set)},
            outputs=["final.pt", "metrics.jsonl", PACKED, "summary.json"],
        )
    return {"state": "done", **headline(quant_summary)}
