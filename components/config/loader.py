"""Read ``params.yaml``, overlay a profile and ``--set`` overrides, validate.

``params.yaml`` holds the user's base choices at top level and named overlays
under ``profiles:``; every key neither states comes from the schema's defaults. The active profile is ``--profile`` if given, else the file's
``profile:`` key. Overrides are ``dotted.key=value`` strings whose value is
parsed as YAML, so ``rl.max_steps=5`` is an int and ``sft.enabled=false`` a bool.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError

from components.config.schema import Params
from components.errors import MentorError
from components.files import sha256_json

DEFAULT_PARAMS_FILE = Path("params.yaml")


class ParamsError(MentorError, ValueError):
    """A params file, profile or override is invalid; the message says how to fix it."""


def _deep_merge(base: dict[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``overlay`` into a copy of ``base``; nested dicts merge, everything else replaces."""
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ParamsError(f"--set {dotted}: '{part}' is a value, not a section")
        node = child
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``key=value``; the value is YAML so numbers, bools and lists keep their type."""
    if "=" not in text:
        raise ParamsError(f"--set '{text}': expected KEY=VALUE, for example --set rl.max_steps=5")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ParamsError(f"--set '{text}': the key before '=' is empty")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ParamsError(f"--set {key}: value '{raw}' is not valid YAML ({exc})") from exc
    return key, value


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """Field names of the section an error location points into, for 'allowed keys' hints."""
    model: type[BaseModel] = Params
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            return []
        model = field.annotation
    return sorted(model.model_fields)


def _format_error(err: Mapping[str, Any]) -> str:
    loc = tuple(err.get("loc", ()))
    dotted = ".".join(str(p) for p in loc)
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc)
        section = ".".join(str(p) for p in loc[:-1]) or "top level"
        return f"{dotted}: unknown key in {section}; allowed keys: {', '.join(allowed)}"
    if not dotted and kind == "value_error":  # a cross-section check: its message names the keys itself
        return str(err.get("ctx", {}).get("error") or err.get("msg"))
    if kind == "value_error":  # a field validator's own message, without pydantic's "Value error, " prefix
        return f"{dotted}: {err.get('ctx', {}).get('error') or err.get('msg')} (got {err.get('input')!r})"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return f"{dotted}: invalid value {err.get('input')!r}; allowed values: {expected}"
    return f"{dotted}: {err.get('msg')} (got {err.get('input')!r})"


def read_params_file(path: Path = DEFAULT_PARAMS_FILE) -> dict[str, Any]:
    """Load the raw YAML mapping, with errors that name the file."""
    if not path.exists():
        raise ParamsError(f"params file {path} not found; run from the project root or pass --params PATH")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ParamsError(f"{path} must hold a mapping of sections at top level")
    return raw


def available_profiles(raw: Mapping[str, Any]) -> list[str]:
    return sorted((raw.get("profiles") or {}).keys())


def load_params(
    path: Path | str = DEFAULT_PARAMS_FILE,
    profile: str | None = None,
    overrides: Iterable[str] = (),
) -> Params:
    """Build the effective, validated ``Params`` for a profile and overrides."""
    raw = read_params_file(Path(path))
    profiles = raw.pop("profiles", None) or {}
    if not isinstance(profiles, dict):
        raise ParamsError(f"{path}: 'profiles' must be a mapping of profile name to overlay")
    chosen = profile or raw.get("profile") or "base"
    merged = dict(raw)
    if chosen != "base":
        if chosen not in profiles:
            names = ", ".join(["base", *sorted(profiles)])
            raise ParamsError(
                f"unknown profile '{chosen}'; available profiles: {names} (defined under 'profiles:' in {path})"
            )
        overlay = profiles[chosen] or {}
        if not isinstance(overlay, dict):
            raise ParamsError(f"{path}: profile '{chosen}' must be a mapping")
        merged = _deep_merge(merged, overlay)
    merged["profile"] = chosen
    for text in overrides:
        key, value = parse_override(text)
        _set_dotted(merged, key, value)
    try:
        return Params.model_validate(merged)
    except ValidationError as exc:
        lines = [_format_error(e) for e in exc.errors()]
        where = f"{path} (profile '{chosen}')"
        raise ParamsError(f"invalid params in {where}:\n  " + "\n  ".join(lines)) from None


def params_hash(params: Params) -> str:
    """Stable digest of the effective params, for lineage and cache keys."""
    return sha256_json(params.model_dump(mode="json"))[:16]


def literal_values(annotation: Any) -> tuple[Any, ...]:
    """Allowed values of a ``Literal`` annotation (used by the CLI for choices)."""
    return get_args(annotation)
