"""Which database errors are passing weather, and retrying the transactions they end.

Two kinds matter to the engine and the API:

* *unavailable*: the database cannot answer now (connection refused or reset,
  a server shutting down or starting up, SQLite's "database or disk is full"
  or "readonly database"). Nothing is wrong with the request; the same work
  succeeds once the database is back, so callers wait and retry instead of
  dying (the dispatcher's loop) or answer 503 (the HTTP API).
* *conflicts*: PostgreSQL ended the transaction to break a deadlock (SQLSTATE
  ``40P01``) or a serialization failure (``40001``). The transaction was rolled
  back whole, so running it again is safe: :func:`retry_conflicts` does, a few
  times with jitter, around each of the store's write methods.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import exc

log = logging.getLogger("synchestra.store")

P = ParamSpec("P")
R = TypeVar("R")

CONFLICT_RETRIES = 5
"""Attempts of one write transaction that keeps meeting deadlocks before its error is raised."""

CONFLICT_BACKOFF = 0.02
"""Seconds: the first retry waits up to this long (random), each further one up to twice more."""

_CONFLICTS = frozenset({"40P01", "40001"})
_UNAVAILABLE_CLASSES = ("08", "53", "57", "58")
"""SQLSTATE classes: connection exception, insufficient resources, operator
intervention (shutdown, restart), system error."""


def _chain(error: BaseException) -> Iterator[BaseException]:
    """``error``, the driver error it wraps and their causes (bounded, cycle-safe)."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending and len(seen) < 16:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        pending += [orig if isinstance(orig, BaseException) else None]
        pending += [current.__cause__, current.__context__]


def sqlstate(error: BaseException) -> str | None:
    """The PostgreSQL SQLSTATE somewhere in ``error``'s chain, if any."""
    for link in _chain(error):
        code = getattr(link, "sqlstate", None) or getattr(link, "pgcode", None)
        if isinstance(code, str) and len(code) == 5:
            return code
    return None


def is_conflict(error: BaseException) -> bool:
    """A deadlock or serialization failure: the transaction may simply run again."""
    return sqlstate(error) in _CONFLICTS


def is_unavailable(error: BaseException) -> bool:
    """Whether ``error`` says the database cannot answer now (not that the request is wrong)."""
    code = sqlstate(error)
    if code is not None and (code in _CONFLICTS or code.startswith(_UNAVAILABLE_CLASSES)):
        return True
    for link in _chain(error):
        if isinstance(link, exc.DBAPIError) and link.connection_invalidated:
            return True
        if isinstance(link, exc.OperationalError | exc.InterfaceError | exc.DisconnectionError):
            return True  # SQLite: full, read-only, locked, I/O; drivers: lost connections
        if isinstance(link, OSError | TimeoutError | ConnectionError):
            return True
        if type(link).__name__ in ("InterfaceError", "ConnectionDoesNotExistError"):
            return True  # the driver's own, before SQLAlchemy wrapped it
    return False


def retry_conflicts(
    method: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    """Run a whole write transaction again when PostgreSQL broke a deadlock with it.

    The wrapped method must open its own transaction (it is rolled back before
    the retry) and keep no state outside it.
    """

    @functools.wraps(method)
    async def retried(*args: P.args, **kwargs: P.kwargs) -> R:
        for attempt in range(1, CONFLICT_RETRIES + 1):
            try:
                return await method(*args, **kwargs)
            except exc.DBAPIError as error:
                if attempt == CONFLICT_RETRIES or not is_conflict(error):
                    raise
                log.info(
                    "%s: %s (SQLSTATE %s), retrying",
                    method.__name__,
                    "deadlock" if sqlstate(error) == "40P01" else "serialization failure",
                    sqlstate(error),
                )
                await asyncio.sleep(random.uniform(0, CONFLICT_BACKOFF * 2 ** (attempt - 1)))
        raise AssertionError("unreachable")  # pragma: no cover

    return retried
