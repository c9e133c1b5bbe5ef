"""Finding the function behind a source's ``connector`` name.

A connector is an async function taking a :class:`~synchestra.connectors.context.SyncContext`.
Built-in connectors are registered by name; anything else is
``package.module:function``, imported on demand.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from synchestra.config import ApiConfig
from synchestra.connectors.fmcsa.apis import DEFAULT_APIS as FMCSA_APIS
from synchestra.core.errors import ConfigError

if TYPE_CHECKING:
    from synchestra.connectors.context import SyncContext

SourceFunction = Callable[["SyncContext"], Awaitable[Any]]

BUILTINS: dict[str, str] = {
    "fmcsa.carrier": "synchestra.connectors.fmcsa.carrier:carrier",
    "fmcsa.csa_scores": "synchestra.connectors.fmcsa.csa_scores:csa_scores",
    "fmcsa.violations": "synchestra.connectors.fmcsa.violations:violations",
    "fmcsa.inspections": "synchestra.connectors.fmcsa.inspections:inspections",
    "http.collection": "synchestra.connectors.collection:collection",
}
"""Built-in connector name -> ``module:function``."""

BUILTIN_APIS: dict[str, ApiConfig] = {**FMCSA_APIS}
"""The APIs built-in connectors bring: a source may name them without ``[[apis]]``."""


def resolve_connector(name: str) -> SourceFunction:
    """The async function for ``name``, or ConfigError saying why it cannot be used."""
    reference = BUILTINS.get(name, name)
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise ConfigError(
            f"unknown connector {name!r}: use a built-in name "
            f"({', '.join(sorted(BUILTINS)) or 'none yet'}) or 'package.module:function'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(f"connector {name!r}: cannot import {module_name!r} ({error})") from None
    function = getattr(module, attribute, None)
    if function is None:
        raise ConfigError(f"connector {name!r}: {module_name!r} has no {attribute!r}")
    if not inspect.iscoroutinefunction(function):
        raise ConfigError(f"connector {name!r}: {reference} is not an async function")
    resolved: SourceFunction = function
    return resolved
