"""Options every command shares, declared once so their names and help stay uniform."""

from __future__ import annotations

from pathlib import Path

import typer

OutOption = typer.Option(..., "--out", help="Output directory.")
ConfigOption = typer.Option(
    None, "--config", help="YAML file of options (the defaults follow the paper)."
)
SetOption = typer.Option([], "--set", help="Dotted override, repeatable: --set train.lr=0.001.")
JobsOption = typer.Option(1, "--jobs", min=1, help="Local worker processes (one shard each).")
ShardOption = typer.Option(
    None, "--shard", help="Run only shard I/N (default: SLURM array task, else all items)."
)
SeedOption = typer.Option(0, "--seed", help="Random seed.")
ForceOption = typer.Option(False, "--force", help="Replace outputs made with another config.")
DryRunOption = typer.Option(False, "--dry-run", help="Say what would run and why; change nothing.")
DeviceOption = typer.Option("cpu", "--device", help="Torch device: cpu, cuda, cuda:1 ...")
MaxRejectOption = typer.Option(
    0.2, "--max-reject-rate", min=0.0, max=1.0, help="Fail the stage past this share of rejects."
)
LauncherOption = typer.Option(
    "local", "--launcher", help="local (process pool) or slurm (job array through submitit)."
)
ManifestOption = typer.Option(
    ..., "--manifest", exists=False, help="JSONL with id and path per line."
)


def existing_path(path: Path, what: str) -> Path:
    from avtool.core.errors import InputError

    if not path.exists():
        raise InputError(f"{path}: {what} not found; check the path")
    return path


def report_item_stage(result) -> None:
    """Print what a per-item stage did, in one or a few lines."""
    if result.state == "dry-run":
        typer.echo(result.message)
        return
    counts = ", ".join(f"{key} {value}" for key, value in sorted(result.counts.items()))
    if result.state == "up-to-date":
        typer.echo(f"{result.out_dir}: up to date ({counts}); nothing to do")
    else:
        reuse = f"; {result.message}" if result.message else ""
        typer.echo(f"{result.out_dir}: done in {result.seconds:.1f}s ({counts}){reuse}")


def report_result(out: Path, result: dict) -> None:
    """Print a whole-stage result: its dry-run plan, 'up to date', or its scalar figures.

    Under torchrun only rank 0 prints, as only rank 0 writes.
    """
    import os

    if os.environ.get("RANK", "0") != "0":
        return
    if result["state"] == "dry-run":
        typer.echo(result["message"])
        return
    figures = ", ".join(
        f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}"
        for key, value in result.items()
        if key != "state" and isinstance(value, int | float | str)
    )
    verb = "up to date" if result["state"] == "up-to-date" else "done"
    typer.echo(f"{out}: {verb} ({figures})")


def run_manifest_command(
    params_class: type,
    extract,
    manifest: Path,
    out: Path,
    config: Path | None,
    sets: list[str],
    flags: dict | None = None,
    **execution,
):
    """Resolve a per-item stage's config, run `extract(manifest, out, params, **execution)`,
    print what it did, and return its result."""
    from avtool.core.config import resolve

    params = resolve(params_class, config, sets, flags=flags)
    result = extract(manifest, out, params, **execution)
    report_item_stage(result)
    return result
