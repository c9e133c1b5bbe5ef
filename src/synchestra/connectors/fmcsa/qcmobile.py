"""FMCSA QCMobile (``/qc/services/...``): its envelope and its ways of failing.

Every answer is ``{"content": ..., "retrievalDate": ..., "_links": ...}``.
QCMobile reports a bad or missing ``webKey`` as HTTP 404 whose ``content`` is a
message string ("Webkey not found"), and scheduled maintenance as an HTML page
with HTTP 200. The ``webKey`` itself is added by the API's auth as a query
parameter; it is never written into a path here.
"""

from __future__ import annotations

from typing import Any

import httpx

from synchestra.connectors.context import SyncContext
from synchestra.connectors.fmcsa.transport import CarrierNotFound, api_name
from synchestra.core.errors import HTTPFailure, RetryableError, SyncError
from synchestra.upstream.fetch import get, server_text

API = "qcmobile"
_SNIFF = 4096  # how much of an HTML page to look at for the maintenance notice


async def fetch_content(ctx: SyncContext, path: str, dot: str) -> Any:
    """GET ``path`` and return the envelope's ``content`` (any JSON type; callers check).

    Raises :class:`HTTPFailure` naming QCMobile's own message for error statuses
    (:class:`SyncError` for a message sent with HTTP 200),
    :class:`RetryableError` for the maintenance page, :class:`CarrierNotFound`
    for a 404 without a message, and :class:`SyncError` for anything not JSON.
    """
    api = api_name(ctx, API)
    response = await get(ctx.http, api, path)
    try:
        body = response.json()
    except ValueError:
        raise _not_json(response, api) from None
    if response.status_code >= 400:
        raise _status_error(response.status_code, body, api, dot)
    if not isinstance(body, dict) or "content" not in body:
        raise SyncError(f"unexpected response from {api}: no 'content' envelope")
    content = body["content"]
    if isinstance(content, str):  # a message where data should be ("Must provide Webkey")
        raise SyncError(f"error from {api}: {server_text(content) or 'no message'}")
    return content


def _status_error(status: int, body: Any, api: str, dot: str) -> SyncError:
    content = body.get("content") if isinstance(body, dict) else None
    if isinstance(content, str):
        return HTTPFailure(status, api, server_text(content))
    if status == 404 and isinstance(body, dict) and "content" in body:
        return CarrierNotFound(dot, api)
    return HTTPFailure(status, api)


def _not_json(response: httpx.Response, api: str) -> SyncError:
    """What a body that is not JSON means: maintenance (retry later) or an error."""
    if _is_maintenance(response):
        if response.status_code >= 400:
            return HTTPFailure(response.status_code, api, "under maintenance")
        return RetryableError(f"{api} is under maintenance")
    if response.status_code >= 400:
        return HTTPFailure(response.status_code, api)
    return SyncError(f"invalid JSON from {api}")


def _is_maintenance(response: httpx.Response) -> bool:
    """An HTML page that speaks of maintenance ("FMCSA System Maintenance Page")."""
    head = response.content[:_SNIFF].decode("utf-8", errors="replace").lower()
    html = "text/html" in response.headers.get("content-type", "") or "<html" in head
    return html and "maintenance" in head
