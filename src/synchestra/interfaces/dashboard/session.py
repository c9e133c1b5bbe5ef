"""Who may see the dashboard: whoever holds the API token, remembered in a cookie.

A browser cannot add ``Authorization`` to a page load or to an ``EventSource``,
so the token is given once (the login form, or ``/?token=...`` as the demo
prints it) and the dashboard sets a cookie. The cookie holds an HMAC of the
token, never the token; it is ``HttpOnly`` and ``SameSite=Strict``, and the
dashboard's one state-changing kind of request (sync now) must also carry the
``X-Synchestra`` header, which no cross-site form can send.
"""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Request, Response

COOKIE = "synchestra_session"
ACTION_HEADER = "X-Synchestra"


class Session:
    """Checks tokens and cookies; ``token`` None means the dashboard is open."""

    def __init__(self, token: str | None) -> None:
        self._token = token

    @property
    def required(self) -> bool:
        return self._token is not None

    def _cookie_value(self) -> str:
        assert self._token is not None
        return hmac.new(self._token.encode(), b"synchestra dashboard", hashlib.sha256).hexdigest()

    def token_matches(self, given: str) -> bool:
        if self._token is None:
            return True
        return hmac.compare_digest(given.encode(), self._token.encode())

    def signed_in(self, request: Request) -> bool:
        if self._token is None:
            return True
        cookie = request.cookies.get(COOKIE, "")
        return hmac.compare_digest(cookie.encode(), self._cookie_value().encode())

    def sign_in(self, response: Response) -> None:
        if self._token is not None:
            response.set_cookie(
                COOKIE, self._cookie_value(), httponly=True, samesite="strict", path="/"
            )

    def may_act(self, request: Request) -> bool:
        """Signed in, and sent by the dashboard's own script (not a cross-site form)."""
        return self.signed_in(request) and request.headers.get(ACTION_HEADER) == "1"

    @staticmethod
    def sign_out(response: Response) -> None:
        response.delete_cookie(COOKIE, path="/")
