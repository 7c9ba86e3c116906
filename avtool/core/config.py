"""Typed configs: dataclass defaults (the papers'), a YAML file, then dotted `--set` overrides."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from avtool.core import atomic
from avtool.core.errors import ConfigError, InputError

C = TypeVar("C")

RESOLVED_CONFIG_NAME = "config.yaml"


def parse_set(expression: str) -> tuple[list[str], Any]:
    """`a.b=3` -> (['a', 'b'], 3); the value is read as YAML so numbers and lists keep their type."""
    key, sep, raw = expression.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {expression!r}: expected key=value, e.g. --set train.lr=0.001")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {expression!r}: value is not valid YAML ({exc})") from None
    return key.strip().split("."), value


def apply_overrides(config: dict[str, Any], sets: list[str]) -> dict[str, Any]:
    """Return a copy of `config` with each dotted `key=value` applied in order."""
    result = json.loads(json.dumps(config))
    for expression in sets:
        keys, value = parse_set(expression)
        node = result
        for depth, key in enumerate(keys[:-1]):
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                where = ".".join(keys[: depth + 1])
                raise ConfigError(f"--set {expression!r}: {where} is a value, not a section")
            node = child
        node[keys[-1]] = value
    return result


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: config file not found; check the path given to --config")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]}); fix it") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of options at top level")
    return data


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: cannot be None")
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a section (mapping), got {value!r}")
        return from_dict(hint, value, where)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item_hint = args[0] if args else Any
        items = [_coerce(v, item_hint, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is bool and isinstance(value, bool):
        return value
    if hint is str and isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    if isinstance(hint, type) and hint not in (int, float, bool, str) and isinstance(value, hint):
        return value
    name = getattr(hint, "__name__", str(hint))
    raise ConfigError(f"{where}: expected {name}, got {value!r}")


def from_dict(cls: type[C], data: dict[str, Any], where: str = "config") -> C:
    """Build dataclass `cls` from `data`, rejecting unknown keys and wrong types by name."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {name: _coerce(value, hints[name], f"{where}.{name}") for name, value in data.items()}
    return cls(**kwargs)


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def resolve(
    cls: type[C],
    config_file: str | Path | None = None,
    sets: list[str] | None = None,
    flags: dict[str, Any] | None = None,
) -> C:
    """Defaults of `cls`, then the YAML file, then flags given on the command line, then `--set`s.

    `flags` maps option names (nested for sections) to values; None values are ignored.
    """
    merged = to_dict(cls())
    if config_file:
        merged = _deep_merge(merged, load_yaml(config_file))
    merged = _deep_merge(merged, _drop_none(flags or {}))
    merged = apply_overrides(merged, sets or [])
    return from_dict(cls, merged)


def _drop_none(flags: dict[str, Any]) -> dict[str, Any]:
    """Flags not given on the command line are None, at any depth: leave them out."""
    kept = {}
    for key, value in flags.items():
        if isinstance(value, dict):
            value = _drop_none(value)
        if value is not None and value != {}:
            kept[key] = value
    return kept


def _deep_merge(into: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    result = dict(into)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _deep_merge(result[key], value)
        else:
            result[key] = value
    return result


def config_hash(config: Any) -> str:
    """Stable sha256 of a config (dataclass or mapping), independent of key order."""
    data = to_dict(config) if dataclasses.is_dataclass(config) else config
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def write_resolved(out_dir: str | Path, config: Any) -> Path:
    """Write the resolved config as YAML into `out_dir` (atomically) and return its path."""
    data = to_dict(config) if dataclasses.is_dataclass(config) else config
    data = json.loads(json.dumps(data, default=str))  # tuples -> lists, paths -> str
    path = Path(out_dir) / RESOLVED_CONFIG_NAME
    atomic.write_text(path, yaml.safe_dump(data, sort_keys=True))
    return path
