"""Marking a function as a built-in FMCSA connector with its default API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def connector(default_api: str) -> Callable[[F], F]:
    """Give the connector a ``default_api``, which the engine uses when a source names no api.

    (See :func:`synchestra.engine.sources.spec_from_config`.) So a config can say just
    ``connector = "fmcsa.carrier"``.
    """

    def mark(function: F) -> F:
        function.__dict__["default_api"] = default_api
        return function

    return mark
