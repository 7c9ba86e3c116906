"""`avtool quantize ...`"""

from __future__ import annotations

from pathlib import Path

import typer

from avtool.cli import common

app = typer.Typer(no_args_is_help=True, help="Quantize commands.")


@app.command("limuse")
@common.shared_options
def limuse(
    *,
    run: Path = typer.Option(..., "--run", help="Run directory of `avtool train limuse`."),
    out: Path = typer.Option(None, "--out", help="Output directory [RUN-q<bits>]."),
    weight_bits: int = typer.Option(None, "--weight-bits", help="Weight bits [3]."),
    act_bits: int = typer.Option(None, "--act-bits", help="Activation bits; 0 = off [8]."),
    epochs: int = typer.Option(None, "--epochs", help="Fine-tuning epochs [10]."),
    device: str = typer.Option(None, "--device", help="cpu, cuda, auto [auto]."),
    settings: common.Settings,
    stage: common.StageRun,
) -> None:
    """Fine-tune a low-bit LiMuSE from a trained run; write and check its packed file."""
    from avtool.recipes.limuse import QuantizeConfig, quantize_limuse

    flags = {
        "weight_bits": weight_bits,
        "act_bits": act_bits,
        "train": {"epochs": epochs, "device": device},
    }
    params = settings.resolve(QuantizeConfig, flags)
    out = out or run.with_name(f"{run.name}-q{params.weight_bits}")
    result = quantize_limuse(run, out, params, **stage.options)
    common.report_result(out, result)
