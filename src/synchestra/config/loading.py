"""Reading a config: from TOML text or an already-parsed mapping, with errors a user can act on.

Every failure is one :class:`~synchestra.core.errors.ConfigError` with a line per
problem, ``origin: key.path: message``, naming the file and the key as a TOML
user reads them.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from synchestra.config.schema import ApiConfig, Config, SourceConfig
from synchestra.core.errors import ConfigError

CONFIG_ENV = "SYNCHESTRA_CONFIG"
CONFIG_FILENAME = "synchestra.toml"

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def parse_config(
    data: Mapping[str, Any],
    *,
    origin: str = "<config>",
    base_dir: Path | None = None,
    builtin_apis: Mapping[str, ApiConfig] | None = None,
) -> Config:
    """Validate an already-parsed config; ``origin`` prefixes every error line.

    ``base_dir`` anchors relative paths (the config file's folder); without it
    they stay as written. ``builtin_apis`` are the APIs sources may name
    without configuring (the built-in connectors' own, see
    :data:`synchestra.connectors.registry.BUILTIN_APIS`); an ``[[apis]]`` table
    of the same name inherits what it does not set.
    """
    context = {
        "base_dir": base_dir.resolve() if base_dir is not None else None,
        "builtin_apis": dict(builtin_apis or {}),
    }
    try:
        return Config.model_validate(dict(data), context=context)
    except ValidationError as exc:
        raise config_error(origin, exc) from None


def load_config(path: Path, *, builtin_apis: Mapping[str, ApiConfig] | None = None) -> Config:
    """Read and validate a TOML config file; every failure is a :class:`ConfigError`."""
    origin = str(path)
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{origin}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{origin}: is a directory, not a config file") from None
    except OSError as exc:
        raise ConfigError(f"{origin}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{origin}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: invalid TOML: {exc}") from None
    return parse_config(data, origin=origin, base_dir=path.parent, builtin_apis=builtin_apis)


def resolve_config_path(explicit: Path | None, environ: Mapping[str, str], cwd: Path) -> Path:
    """``-c FILE``, else ``./synchestra.toml`` if present, else ``$SYNCHESTRA_CONFIG``."""
    if explicit is not None:
        return explicit
    local = cwd / CONFIG_FILENAME
    if local.is_file():
        return local
    from_env = environ.get(CONFIG_ENV, "").strip()
    if from_env:
        return cwd / Path(from_env).expanduser()
    raise ConfigError(f"no config: pass -c FILE, create ./{CONFIG_FILENAME} or set {CONFIG_ENV}")


# --- error messages ----------------------------------------------------------


def parse_source(settings: Mapping[str, Any], *, origin: str) -> SourceConfig:
    """One source's settings, checked exactly as a ``[[sources]]`` table is."""
    try:
        return SourceConfig.model_validate(dict(settings))
    except ValidationError as exc:
        raise config_error(origin, exc) from None


def config_error(origin: str, exc: ValidationError) -> ConfigError:
    """pydantic's errors as one :class:`ConfigError`, a line per problem."""
    return ConfigError(_format_errors(origin, exc.errors(include_url=False)))


def _format_errors(origin: str, errors: Iterable[ErrorDetails]) -> str:
    """One line per problem, ``origin: key.path: message``, without pydantic's noise."""
    lines: list[str] = []
    for error in errors:
        path = _key_path(error["loc"])
        for message in _message(error).splitlines():
            lines.append(f"{origin}: {path}: {message}" if path else f"{origin}: {message}")
    return "\n".join(lines)


def _message(error: ErrorDetails) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if error["type"] in ("value_error", "assertion_error"):
        cause = error.get("ctx", {}).get("error")
        if cause is not None:
            return str(cause)
    return error["msg"]


def _key_path(loc: tuple[int | str, ...]) -> str:
    """``("sources", 1, "priority")`` -> ``sources[1].priority``, as a TOML user reads it."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            key = part if _BARE_KEY.fullmatch(part) else f'"{part}"'
            path += f".{key}" if path else key
    return path
