"""Small helpers shared by the API apps: route paths, targets, 404s in dialect."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import Scope

from synchestra.simulator.config import ApiName
from synchestra.simulator.responses import error_response


def new_app(api: ApiName) -> FastAPI:
    """A bare FastAPI app whose own errors (404, 405) speak ``api``'s dialect."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        return error_response(api, status)

    app.add_exception_handler(HTTPException, http_error)
    return app


def target_from_path(scope: Scope, pattern: re.Pattern[str]) -> str | None:
    """The first group of ``pattern`` found in the request path, if any."""
    match = pattern.search(str(scope.get("path", "")))
    return str(match.group(1)) if match else None


DOT_IN_WHERE = re.compile(r"dot_number\s*(?:=|in\s*\()\s*'(\d+)'", re.IGNORECASE)


def dot_from_query(scope: Scope) -> str | None:
    """The DOT number a Socrata query is about (``$where`` or ``?dot_number=``)."""
    raw: str = scope.get("query_string", b"").decode("latin-1")
    for key, value in parse_qsl(raw, keep_blank_values=True):
        if key == "dot_number" and value.isdigit():
            return value
        if key == "$where" and (match := DOT_IN_WHERE.search(value)):
            return str(match.group(1))
    return None


def key_accepted(given: str | None, keys: tuple[str, ...]) -> bool:
    """A credential is good when it is one of ``keys`` (any non-empty one if none are set)."""
    if not given:
        return False
    return given in keys if keys else True
