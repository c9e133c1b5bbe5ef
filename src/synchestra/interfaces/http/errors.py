"""Every error answer is ``{"error": "...", "detail": ...}``: never a stack trace."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException

from synchestra.core.errors import InputError, UnknownSource
from synchestra.interfaces.sse import BadStreamRequest
from synchestra.store.failures import is_unavailable

log = logging.getLogger("synchestra.interfaces.http")


class HttpProblem(Exception):
    """Our own error answer (not an upstream API's): status, message and optional detail."""

    def __init__(
        self,
        status: int,
        error: str,
        detail: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = dict(headers or {})


def answer(
    status: int, error: str, detail: Any = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


def _field(loc: Sequence[Any]) -> str:
    parts = [str(part) for part in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def validation_detail(exc: RequestValidationError) -> list[dict[str, str]]:
    """The fields at fault, without echoing their values (they may hold secrets)."""
    return [
        {"field": _field(error.get("loc", ())), "message": str(error.get("msg", "invalid"))}
        for error in exc.errors()
    ]


async def _problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HttpProblem)
    return answer(exc.status, exc.error, exc.detail, exc.headers)


async def _bad_stream(request: Request, exc: Exception) -> JSONResponse:
    """A bad event-stream parameter, from the API's stream or the dashboard's alike."""
    assert isinstance(exc, BadStreamRequest)
    return answer(422, str(exc), [{"field": exc.field, "message": exc.hint}])


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    detail = validation_detail(exc)
    fields = ", ".join(dict.fromkeys(item["field"] for item in detail))
    return answer(422, f"invalid request: {fields}", detail)


async def _input(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InputError)
    # An unknown source in the path is 404; an unknown target named in a body is 422
    # (routes with a target key in the path answer 404 themselves).
    return answer(404 if isinstance(exc, UnknownSource) else 422, str(exc))


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    messages = {404: "not found", 405: "method not allowed"}
    error = messages.get(exc.status_code) or str(exc.detail)
    return answer(exc.status_code, error, None, exc.headers)


UNAVAILABLE_LOG_EVERY = 60.0
"""Seconds between two log lines about requests the database could not answer."""
_last_unavailable_log = [float("-inf")]


def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """503 while the database is away: an outage is not a bug, so no 500 and no traceback.

    One line in the log per :data:`UNAVAILABLE_LOG_EVERY`, not one per request.
    """
    now = time.monotonic()
    if now - _last_unavailable_log[0] >= UNAVAILABLE_LOG_EVERY:
        _last_unavailable_log[0] = now
        log.warning(
            "the database is unavailable; answering 503 (%s %s: %s)",
            request.method,
            request.url.path,
            type(exc).__name__,
        )
    return answer(503, "database unavailable", "the database does not answer; try again later")


async def _database(request: Request, exc: Exception) -> JSONResponse:
    """A database or connection error: 503 when the database is away, else a bug (500).

    Registered for these classes, not left to the ``Exception`` handler: Starlette
    answers with that one and then re-raises, so uvicorn logs a traceback per request.
    """
    if is_unavailable(exc):
        return database_unavailable(request, exc)
    log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
    return answer(500, "internal error")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("internal error on %s %s: %s", request.method, request.url.path, type(exc).__name__)
    return answer(500, "internal error")


def install(app: FastAPI) -> None:
    app.add_exception_handler(HttpProblem, _problem)
    app.add_exception_handler(BadStreamRequest, _bad_stream)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(InputError, _input)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(SQLAlchemyError, _database)
    app.add_exception_handler(OSError, _database)
    app.add_exception_handler(Exception, _unexpected)
