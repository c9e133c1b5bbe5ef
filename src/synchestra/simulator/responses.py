"""Responses in each API's own dialect, for errors the gate or a route sends.

A client meets the same error shapes it would meet in production: QCMobile's
``{"content": "...", "retrievalDate": ...}`` envelope, Socrata's
pretty-printed ``{"code", "error", "message"}``, a plain ``{"message"}`` from
SaferWebAPI and ``{"error"}`` from the ERP.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from starlette.responses import Response

from synchestra.simulator import wire
from synchestra.simulator.config import ApiName
from synchestra.simulator.socrata import render_error
from synchestra.simulator.timefmt import qc_timestamp, utc_now

JSON_UTF8 = "application/json;charset=UTF-8"
SOCRATA_CODES = {
    403: "permission_denied",
    404: "not_found",
    429: "too_many_requests",
    504: "execution_timeout",
}

MAINTENANCE_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>FMCSA System Maintenance Page</title>
</head>
<body>
<h1>System Maintenance</h1>
<p>The FMCSA system you are trying to reach is undergoing scheduled maintenance.
Please try again later.</p>
</body>
</html>
"""


def json_response(
    document: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """``document`` as compact UTF-8 JSON (long decimals kept verbatim)."""
    body = wire.dumps(document, separators=(",", ":")).encode()
    return raw_response(body, status, JSON_UTF8, headers)


def raw_response(
    body: bytes, status: int, content_type: str, headers: dict[str, str] | None = None
) -> Response:
    return Response(body, status, headers={**(headers or {}), "content-type": content_type})


def qc_envelope(content: Any) -> dict[str, Any]:
    """QCMobile's envelope around ``content``, stamped now."""
    return {"content": content, "retrievalDate": qc_timestamp(utc_now())}


def error_response(
    api: ApiName, status: int, message: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    """An error as ``api`` would send it."""
    text = message or HTTPStatus(status).phrase
    if api == "qcmobile":
        return json_response(qc_envelope(text), status, headers)
    if api == "datahub":
        body = {"code": SOCRATA_CODES.get(status, "internal"), "error": True, "message": text}
        return raw_response(render_error(body).encode(), status, "application/json", headers)
    if api == "saferweb":
        return json_response({"message": text}, status, headers)
    return json_response({"error": text}, status, headers)


def maintenance_response() -> Response:
    """QCMobile's maintenance page: HTML, and HTTP 200 all the same."""
    return raw_response(MAINTENANCE_PAGE.encode(), 200, "text/html;charset=UTF-8")
