"""`avtool models list | fetch NAME | path NAME`"""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, help="Pretrained weights: list, fetch, locate.")

CacheOption = typer.Option(
    None,
    "--cache",
    help="Folder of model folders [$AVTOOL_CACHE/models, else ~/.cache/avtool/models].",
)


@app.command("list")
def list_models(cache: Path = CacheOption) -> None:
    """Table of the registered networks: who uses them, their files, cached or not, checks."""
    from rich.console import Console
    from rich.table import Table

    from avtool.core.errors import InputError
    from avtool.models.registry import REGISTRY, is_cached, model_folder

    table = Table(title="avtool models")
    for column in ("name", "used by", "files", "cached", "verified", "source"):
        table.add_column(column, overflow="fold")
    for entry in REGISTRY.values():
        if entry.shipped:
            files = "(in the wheel)"
            checks = f"shipped with the {entry.shipped} wheel"
        else:
            files = "\n".join(f.name for f in entry.files)
            checks = "\n".join(f.check for f in entry.files)
        try:
            where = model_folder(entry, cache)
        except InputError:
            cached = "[red]no[/]: wheel not installed"
        else:
            cached = f"[green]yes[/]: {where}" if is_cached(entry, cache) else "[dim]no[/]"
        table.add_row(
            entry.name, entry.used_by, files, cached, checks, f"{entry.source}; {entry.licence}"
        )
    Console(width=200).print(table)


@app.command("fetch")
def fetch(
    name: str = typer.Argument(..., help="Registered model name (see `avtool models list`)."),
    cache: Path = CacheOption,
    force: bool = typer.Option(False, "--force", help="Download again files already cached."),
    url: str = typer.Option(
        None, "--url", help="Fetch a one-file model from this address (a mirror); still checked."
    ),
) -> None:
    """Download and check a model's files; the last line is the folder `--model` accepts."""
    from avtool.models.registry import fetch as fetch_files
    from avtool.models.registry import lookup, model_folder

    entry = lookup(name)
    for line in fetch_files(entry, cache, force=force, url=url):
        typer.echo(line)
    typer.echo(str(model_folder(entry, cache)))


@app.command("path")
def path(
    name: str = typer.Argument(..., help="Registered model name (see `avtool models list`)."),
    cache: Path = CacheOption,
) -> None:
    """Print a model's local folder; fails if it has not been fetched."""
    from avtool.core.errors import InputError
    from avtool.models.registry import is_cached, lookup, model_folder

    entry = lookup(name)
    folder = model_folder(entry, cache)
    if not is_cached(entry, cache):
        raise InputError(
            f"{entry.name}: not in {folder}; run `avtool models fetch {entry.name}` first"
        )
    typer.echo(str(folder))


@app.command("summary")
def summary(
    name: str = typer.Argument(..., help="limuse or tasnet."),
    sets: list[str] = typer.Option(
        [], "--set", help="Model option: groups, voiceprint_dim, face_dim (limuse); channels."
    ),
) -> None:
    """Print a network's parameter count (`params: <int>`) for the authors' or a given config."""
    from avtool.core.config import resolve
    from avtool.core.errors import InputError
    from avtool.models.limuse import LiMuSE, LimuseModelConfig, parameter_count
    from avtool.models.tasnet import TasNet, TasNetConfig

    builders = {"limuse": (LimuseModelConfig, LiMuSE), "tasnet": (TasNetConfig, TasNet)}
    if name not in builders:
        raise InputError(f"{name}: no such model; expected one of {', '.join(builders)}")
    config_class, build = builders[name]
    config = resolve(config_class, None, sets)
    typer.echo(f"params: {parameter_count(build(config))}")
    given = {expression.split("=", 1)[0] for expression in sets}
    if name == "limuse" and not given & {"voiceprint_dim", "face_dim"}:
        # avtool's cues: resemblyzer's 256-d voiceprint, the 45-d per-frame mouth shape.
        ours = resolve(config_class, None, [*sets, "voiceprint_dim=256", "face_dim=45"])
        count = parameter_count(build(ours))
        typer.echo(f"params with avtool's cues (voiceprint 256, mouth 45): {count}")
