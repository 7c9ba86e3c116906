"""`avtool prepare ...`"""

from __future__ import annotations

from pathlib import Path

import typer

from avtool.cli import common

app = typer.Typer(no_args_is_help=True, help="Prepare commands.")


@app.command("bsds")
def bsds(
    root: Path = typer.Option(..., "--root", help="BSDS500 data folder (images/, groundTruth/)."),
    out: Path = common.OutOption,
    split: list[str] = typer.Option(
        None, "--split", help="Split to include, repeatable [train, val, test]."
    ),
    config: Path = common.ConfigOption,
    sets: list[str] = common.SetOption,
    force: bool = common.ForceOption,
    dry_run: bool = common.DryRunOption,
) -> None:
    """Manifest of BSDS500 images with their ground-truth .mat; bad files go to rejects.jsonl."""
    from avtool.core.config import resolve
    from avtool.corpora.bsds import PrepareConfig, prepare_bsds

    params = resolve(PrepareConfig, config, sets, flags={"splits": split or None})
    result = prepare_bsds(root, out, params, force=force, dry_run=dry_run)
    if result["state"] == "dry-run":
        typer.echo(result["message"])
        return
    counts = ", ".join(f"{k} {v}" for k, v in sorted(result.items()) if k != "state")
    typer.echo(f"{out}: {result['state']} ({counts})")
