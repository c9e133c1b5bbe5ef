"""GET through an API's client, and the errors it raises: shared by the built-in connectors.

Connectors often need the status and the body together (QCMobile answers auth
failures with 404 and a message, maintenance with an HTML 200; a collection's
error body explains itself), so they call :func:`get` and judge the response
themselves. No message built here contains a URL: it may carry a credential
sent as a query parameter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import httpx

from synchestra.core.errors import SyncError
from synchestra.upstream.errors import from_httpx

MAX_DETAIL = 300
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


async def get(
    client: httpx.AsyncClient, api: str, url: str, params: Mapping[str, Any] | None = None
) -> httpx.Response:
    """GET ``url`` with ``client``; network failures become synchestra errors.

    Timeouts and connection errors are transient (:class:`RetryableError`);
    other request errors (a body that cannot be decoded, redirect loops) are not.
    """
    try:
        return await client.get(url, params=params)
    except httpx.HTTPError as error:
        translated = from_httpx(error, api)
    raise translated from None  # not chained: httpx's message carries the URL


def decode_json(response: httpx.Response, api: str) -> Any:
    """The JSON body, or :class:`SyncError` "invalid JSON from api"."""
    try:
        return response.json()
    except ValueError:  # JSONDecodeError, or bytes that are not text
        raise SyncError(f"invalid JSON from {api}") from None


def try_json(response: httpx.Response) -> Any:
    """The JSON body, or None when there is none (an error page, say)."""
    try:
        return response.json()
    except ValueError:
        return None


def server_text(value: Any) -> str | None:
    """A message from a server, fit for an error line: one line, printable, bounded."""
    if not isinstance(value, str):
        return None
    text = " ".join(_CONTROL.sub(" ", value).split())
    if len(text) > MAX_DETAIL:
        text = text[: MAX_DETAIL - 3] + "..."
    return text or None
