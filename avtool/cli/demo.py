"""`avtool demo`: every system end to end on synthetic corpora, in minutes."""

from __future__ import annotations

from pathlib import Path

import typer

PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"


def demo(
    out: Path = typer.Option(
        Path("data/demo"), "--out", help="Workspace for the demo's data and runs."
    ),
    only: list[str] = typer.Option([], "--only", help="Run only these parts (demo, mmt, ...)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would run; change nothing."),
) -> None:
    """Run pipelines/demo.yaml, then each system's pipelines/demo-<system>.yaml."""
    import time

    from avtool.cli.run import execute_command
    from avtool.core.errors import InputError
    from avtool.recipes.pipeline import run_pipeline

    parts = {"demo": PIPELINES / "demo.yaml"}
    parts.update({p.stem.removeprefix("demo-"): p for p in sorted(PIPELINES.glob("demo-*.yaml"))})
    unknown = sorted(set(only) - set(parts))
    if unknown:
        raise InputError(
            f"--only {', '.join(unknown)}: no such demo part; parts are {', '.join(parts)}"
        )
    timings = []
    for name, pipeline in parts.items():
        if only and name not in only:
            continue
        start = time.monotonic()
        run_pipeline(
            pipeline,
            execute_command,
            dry_run=dry_run,
            sets=[f"workspace={out}"],
            announce=typer.echo,
        )
        timings.append(f"{name} {time.monotonic() - start:.0f}s")
    typer.echo(f"demo finished: {', '.join(timings)}; outputs under {out}")
