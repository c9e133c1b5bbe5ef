"""Bearer-token authentication of every ``/api`` route but ``/api/health``."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from synchestra.interfaces.http.errors import HttpProblem

_bearer = HTTPBearer(auto_error=False, scheme_name="bearer", description="the API token")

Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def bearer_auth(request: Request, credentials: Credentials) -> None:
    """Refuse requests without ``Authorization: Bearer <the app's token>``.

    Installed only when the application has a token (``request.app.state.token``).
    """
    expected: str = request.app.state.token
    if credentials is None:
        raise HttpProblem(
            401, "missing bearer token", headers={"WWW-Authenticate": 'Bearer realm="api"'}
        )
    if not hmac.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise HttpProblem(403, "wrong bearer token")
