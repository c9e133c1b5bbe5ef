"""The one place httpx's exceptions become synchestra's.

Network failures (timeouts, refused or dropped connections) are transient:
:class:`~synchestra.core.errors.RetryableError`. Any other httpx error (a body
that cannot be decoded, a redirect loop, ``raise_for_status`` in a user's
source) fails the run: :class:`~synchestra.core.errors.SyncError`. Messages
never quote httpx's own text, which carries the URL and with it any credential
sent as a query parameter.
"""

from __future__ import annotations

import httpx

from synchestra.core.errors import RetryableError, SyncError


def from_httpx(error: Exception, api: str | None = None) -> Exception:
    """``error`` as a synchestra error when it is httpx's; anything else unchanged.

    ``api`` names the API when the caller knows it (the built-in connectors'
    GET); a source function's own request escaping it does not say.
    """
    if not isinstance(error, httpx.HTTPError):
        return error
    name = type(error).__name__
    if api is None:
        kind = RetryableError if isinstance(error, httpx.TransportError) else SyncError
        return kind(f"{name} (network error)")
    if isinstance(error, httpx.TransportError):
        return RetryableError(f"network error from {api}: {name}")
    return SyncError(f"request to {api} failed: {name}")
