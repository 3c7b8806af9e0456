"""Reading typed settings from environment variables.

Each service declares one frozen dataclass of settings; ``from_env`` fills it from variables
named ``<PREFIX><FIELD_NAME_UPPER>``, falling back to the dataclass defaults, so the defaults
in code are the documentation and the Helm chart only sets what differs.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ConfigError(ValueError):
    """A variable is set to a value its setting cannot take."""


def _parse(raw: str, kind: Any, name: str) -> Any:
    try:
        if kind is bool:
            low = raw.strip().lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError(f"expected one of {sorted(_TRUE | _FALSE)}")
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        if kind is str:
            return raw
        if typing.get_origin(kind) is tuple:
            return tuple(part.strip() for part in raw.split(",") if part.strip())
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r}: {exc}") from None
    raise TypeError(f"unsupported setting type {kind!r} for {name}")


def from_env(cls: type[T], prefix: str, environ: Mapping[str, str] | None = None) -> T:
    """Build ``cls`` (a dataclass) from ``environ`` (default: ``os.environ``)."""
    environ = os.environ if environ is None else environ
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        name = prefix + field.name.upper()
        if name in environ:
            values[field.name] = _parse(environ[name], hints[field.name], name)
    return cls(**values)


def describe(config: object, secret_fields: tuple[str, ...] = ()) -> dict[str, Any]:
    """The settings as a dict for the start-up log line, with secrets masked."""
    out = dataclasses.asdict(config)  # type: ignore[call-overload]
    for key in secret_fields:
        if out.get(key):
            out[key] = "***"
    return out
