"""DataHub (Socrata SODA 2.x): one page of rows, and Socrata's errors made clear.

Socrata reports errors as JSON in two shapes, ``{"code", "error": true,
"message", "data"}`` and ``{"message", "errorCode"}``; both are read here. A
4xx is final and names Socrata's message; 429 and 5xx are retried (as any
:class:`HTTPFailure`); 202 means "still processing, ask again". The app token
travels in the ``X-App-Token`` header, added by the API's auth.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from synchestra.connectors.context import SyncContext
from synchestra.core.errors import HTTPFailure, RetryableError, SyncError
from synchestra.upstream.fetch import get, server_text

API = "datahub"
NO_RESULTS = "query.soql.no-results"  # paging past the end, on some endpoints
TRUTH_HEADER = "X-SODA2-Truth-Last-Modified"  # changes when the dataset is republished
_NOT_JSON = object()


@dataclass(frozen=True)
class Page:
    rows: list[Any]
    version: str | None
    """The dataset's last-modified stamp when this page was read (None if not sent)."""


async def fetch_page(ctx: SyncContext, api: str, path: str, params: Mapping[str, Any]) -> Page:
    """One page of rows from ``path``; errors become synchestra errors with Socrata's message."""
    response = await get(ctx.http, api, path, params)
    if response.status_code == 202:
        raise RetryableError(f"HTTP 202 from {api}: the query is still being processed")
    body = _json(response)
    if _error_code(body) == NO_RESULTS:
        return Page([], response.headers.get(TRUTH_HEADER))
    if response.status_code >= 400:
        raise HTTPFailure(response.status_code, api, error_detail(body))
    if body is _NOT_JSON:
        raise SyncError(f"invalid JSON from {api}")
    if isinstance(body, dict) and (body.get("error") or "errorCode" in body):
        raise SyncError(f"error from {api}: {error_detail(body) or 'no message'}")
    if not isinstance(body, list):
        raise SyncError(f"unexpected response from {api}: expected a list of rows")
    return Page(body, response.headers.get(TRUTH_HEADER))


def error_detail(body: Any) -> str | None:
    """Socrata's message and code, ``"No such column: states (query.soql.no-such-column)"``."""
    if not isinstance(body, dict):
        return None
    message = server_text(body.get("message"))
    code = server_text(_error_code(body))
    if message and code:
        return f"{message} ({code})"
    return message or code


def _error_code(body: Any) -> Any:
    if not isinstance(body, dict):
        return None
    return body.get("code") or body.get("errorCode")


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return _NOT_JSON
