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

from synchestra.core.errors import HTTPFailure, RetryableError, SyncError

MAX_DETAIL = 300
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


class ApiError(HTTPFailure):
    """An error status with the API's own explanation: ``HTTP 404 from qcmobile: Webkey not found``.

    Still an :class:`HTTPFailure`, so 429 and 5xx are retried and the rest are not.
    """

    def __init__(self, status: int, api: str, detail: str | None = None) -> None:
        super().__init__(status, api)
        self.detail = detail
        if detail:
            self.args = (f"HTTP {status} from {api}: {detail}",)


async def get(
    client: httpx.AsyncClient, api: str, url: str, params: Mapping[str, Any] | None = None
) -> httpx.Response:
    """GET ``url`` with ``client``; network failures become synchestra errors.

    Timeouts and connection errors are transient (:class:`RetryableError`);
    other request errors (a body that cannot be decoded, redirect loops) are not.
    """
    try:
        return await client.get(url, params=params)
    except httpx.TransportError as error:
        reason = type(error).__name__
    except httpx.RequestError as error:
        raise SyncError(f"request to {api} failed: {type(error).__name__}") from None
    raise RetryableError(f"network error from {api}: {reason}")  # no chained URL


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
