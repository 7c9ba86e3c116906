"""Pipelines: a YAML list of avtool commands, run in order, each skipping what is done.

```yaml
name: demo
vars: {workspace: data/demo}
stages:
  - name: speech
    run: synth speech --out {workspace}/speech --count 40 --seed 0
```
`{var}` placeholders are filled from `vars` (overridable with `--set var=value`). A stage's
output directory, for `avtool status`, is its `out:` key or else its `--out`/`--run` option.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from avtool.core.config import load_yaml, parse_set
from avtool.core.errors import ConfigError, InputError
from avtool.core.stage import StageStatus, describe_directory


@dataclass
class PipelineStage:
    name: str
    args: list[str]
    out: Path | None


def load_pipeline(
    path: str | Path, sets: list[str] | None = None
) -> tuple[str, list[PipelineStage]]:
    path = Path(path)
    data = load_yaml(path)
    variables = {str(k): str(v) for k, v in (data.get("vars") or {}).items()}
    for expression in sets or []:
        keys, value = parse_set(expression)
        variables[".".join(keys)] = str(value)
    stages = []
    for number, entry in enumerate(data.get("stages") or [], start=1):
        if not isinstance(entry, dict) or "name" not in entry or "run" not in entry:
            raise ConfigError(f"{path}: stage {number} needs `name` and `run` keys")
        try:
            command = str(entry["run"]).format(**variables)
            out = str(entry["out"]).format(**variables) if entry.get("out") else None
        except KeyError as exc:
            raise ConfigError(
                f"{path}: stage {entry['name']!r} uses {{{exc.args[0]}}}, not in vars"
            ) from None
        args = shlex.split(command)
        if out is None:
            for flag in ("--out", "--run"):
                if flag in args and args.index(flag) + 1 < len(args):
                    out = args[args.index(flag) + 1]
                    break
        stages.append(PipelineStage(str(entry["name"]), args, Path(out) if out else None))
    if not stages:
        raise ConfigError(f"{path}: no stages; add a `stages:` list")
    names = [s.name for s in stages]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ConfigError(
            f"{path}: stage names must be unique, repeated: {', '.join(sorted(duplicates))}"
        )
    return str(data.get("name", path.stem)), stages


def select_window(
    stages: list[PipelineStage], start: str | None, stop: str | None
) -> list[PipelineStage]:
    names = [s.name for s in stages]
    for option, value in (("--from", start), ("--to", stop)):
        if value is not None and value not in names:
            raise InputError(f"{option} {value!r}: no such stage; stages are {', '.join(names)}")
    first = names.index(start) if start else 0
    last = names.index(stop) if stop else len(names) - 1
    if first > last:
        raise InputError(f"--from {start!r} comes after --to {stop!r}")
    return stages[first : last + 1]


def run_pipeline(
    path: str | Path,
    execute: Callable[[list[str]], None],
    start: str | None = None,
    stop: str | None = None,
    dry_run: bool = False,
    sets: list[str] | None = None,
    announce: Callable[[str], None] = print,
) -> list[str]:
    """Run the window of stages through `execute(argv)`; returns the stage names run."""
    name, stages = load_pipeline(path, sets)
    chosen = select_window(stages, start, stop)
    for stage in chosen:
        announce(f"== {name} / {stage.name}: avtool {shlex.join(stage.args)}")
        if not dry_run:
            execute(stage.args)
            continue
        try:
            execute([*stage.args, "--dry-run"])
        except InputError as exc:
            announce(f"{stage.name}: would run once earlier stages have made its inputs ({exc})")
    return [stage.name for stage in chosen]


def pipeline_statuses(path: str | Path, sets: list[str] | None = None) -> list[StageStatus]:
    _, stages = load_pipeline(path, sets)
    rows = []
    for stage in stages:
        if stage.out is not None and stage.out.is_dir() and any(stage.out.glob("stage*.json")):
            row = describe_directory(stage.out)
            row.name = stage.name
        else:
            row = StageStatus(stage.name, stage.out or Path("-"), "missing", "never run")
        rows.append(row)
    return rows
