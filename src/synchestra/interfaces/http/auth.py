"""Bearer-token authentication of every ``/api`` route but ``/api/health``."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from synchestra.interfaces.http.errors import ApiError

_bearer = HTTPBearer(auto_error=False, scheme_name="bearer", description="the API token")

Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def bearer_auth(token: str) -> Callable[[HTTPAuthorizationCredentials | None], Awaitable[None]]:
    """A dependency refusing requests without ``Authorization: Bearer <token>``."""
    expected = token.encode()

    async def check(credentials: Credentials) -> None:
        if credentials is None:
            raise ApiError(
                401, "missing bearer token", headers={"WWW-Authenticate": 'Bearer realm="api"'}
            )
        if not hmac.compare_digest(credentials.credentials.encode(), expected):
            raise ApiError(403, "wrong bearer token")

    return check
