"""Options every command shares, declared once so their names, defaults and help stay uniform.

Single options are `Annotated` aliases (`out: common.OutOption`). The options that travel
together are groups: a command takes a group as one keyword-only parameter annotated with its
class (`settings: common.Settings`, `stage: common.ItemRun`), and `@shared_options` puts the
group's options in that place of the command line and hands the command one object holding
their values.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

OutOption = Annotated[Path, typer.Option("--out", help="Output directory.")]
ManifestOption = Annotated[
    Path, typer.Option("--manifest", exists=False, help="JSONL with id and path per line.")
]
ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="YAML file of options (the defaults follow the paper)."),
]
SetOption = Annotated[
    list[str], typer.Option("--set", help="Dotted override, repeatable: --set train.lr=0.001.")
]
JobsOption = Annotated[
    int, typer.Option("--jobs", min=1, help="Local worker processes (one shard each).")
]
ShardOption = Annotated[
    str | None,
    typer.Option("--shard", help="Run only shard I/N (default: SLURM array task, else all items)."),
]
LauncherOption = Annotated[
    str,
    typer.Option("--launcher", help="local (process pool) or slurm (job array through submitit)."),
]
SeedOption = Annotated[int, typer.Option("--seed", help="Random seed.")]
ForceOption = Annotated[
    bool, typer.Option("--force", help="Replace outputs made with another config.")
]
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Say what would run and why; change nothing.")
]
DeviceOption = Annotated[str, typer.Option("--device", help="Torch device: cpu, cuda, cuda:1 ...")]
MaxRejectOption = Annotated[
    float,
    typer.Option(
        "--max-reject-rate",
        min=0.0,
        max=1.0,
        help="Fail the stage past this share of rejects.",
    ),
]


@dataclasses.dataclass(frozen=True)
class Settings:
    """--config and --set: where a command's config comes from beyond its defaults and flags."""

    config: ConfigOption = None
    sets: SetOption = dataclasses.field(default_factory=list)

    def resolve(self, params_class: type, flags: dict | None = None) -> Any:
        from avtool.core.config import resolve

        return resolve(params_class, self.config, self.sets, flags=flags)


class _RunOptions:
    @property
    def options(self) -> dict[str, Any]:
        """The values as keyword arguments of the library's stage functions."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}


@dataclasses.dataclass(frozen=True)
class StageRun(_RunOptions):
    """--force and --dry-run of a whole-output stage."""

    force: ForceOption = False
    dry_run: DryRunOption = False


@dataclasses.dataclass(frozen=True)
class RejectingRun(StageRun):
    """A stage that rejects bad inputs: --force, --dry-run and --max-reject-rate."""

    max_reject_rate: MaxRejectOption = 0.2


@dataclasses.dataclass(frozen=True)
class ItemRun(_RunOptions):
    """A per-item stage: --jobs, --shard, --launcher, --force, --dry-run, --max-reject-rate."""

    jobs: JobsOption = 1
    shard: ShardOption = None
    launcher: LauncherOption = "local"
    force: ForceOption = False
    dry_run: DryRunOption = False
    max_reject_rate: MaxRejectOption = 0.2


_GROUPS = (Settings, StageRun, RejectingRun, ItemRun)


def _group_parameters(group: type) -> list[inspect.Parameter]:
    hints = typing.get_type_hints(group, include_extras=True)
    parameters = []
    for field in dataclasses.fields(group):
        default = (
            field.default_factory()
            if field.default_factory is not dataclasses.MISSING
            else field.default
        )
        parameters.append(
            inspect.Parameter(
                field.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=default,
                annotation=hints[field.name],
            )
        )
    return parameters


def shared_options(command: Callable[..., None]) -> Callable[..., None]:
    """Spread each group parameter of `command` into its options, in its place, for Typer;
    gather their values back into the group object when the command runs."""
    hints = typing.get_type_hints(command, include_extras=True)
    groups: dict[str, type] = {}
    parameters: list[inspect.Parameter] = []
    for name, parameter in inspect.signature(command).parameters.items():
        annotation = hints.get(name, parameter.annotation)
        if annotation in _GROUPS:
            groups[name] = annotation
            parameters.extend(_group_parameters(annotation))
        else:
            parameters.append(
                parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=annotation)
            )

    @functools.wraps(command)
    def run_command(**values: Any) -> None:
        for name, group in groups.items():
            fields = dataclasses.fields(group)
            values[name] = group(**{field.name: values.pop(field.name) for field in fields})
        command(**values)

    run_command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    run_command.__annotations__ = {p.name: p.annotation for p in parameters}
    return run_command


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


def run_item_stage(
    params_class: type,
    extract: Callable[..., Any],
    manifest: Path,
    out: Path,
    settings: Settings,
    stage: ItemRun,
    flags: dict | None = None,
    **extra: Any,
) -> Any:
    """Resolve a per-item stage's config, run `extract(manifest, out, params, ...)` with the
    run options (and `extra`), print what it did, and return its result."""
    params = settings.resolve(params_class, flags)
    result = extract(manifest, out, params, **extra, **stage.options)
    report_item_stage(result)
    return result
