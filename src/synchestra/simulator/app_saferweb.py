"""Simulated SaferWebAPI: ``/v2/usdot/snapshot/{dot}`` behind an ``x-api-key``.

Its error bodies are not public; this answers like the API gateway it sits
behind: 401 ``{"message": "Unauthorized"}`` without a key, 403
``{"message": "Forbidden"}`` with a wrong one, 404 ``{"message": "Not Found"}``
for a DOT number that is not simulated.
"""

from __future__ import annotations

import re

from fastapi import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Scope

from synchestra.simulator.dataset import FmcsaData
from synchestra.simulator.gate import Gate
from synchestra.simulator.responses import json_response
from synchestra.simulator.routing import key_accepted, new_app, target_from_path
from synchestra.simulator.runtime import ApiRuntime

TARGET = re.compile(r"/v2/usdot/snapshot/(\d+)")


def build(data: FmcsaData, runtime: ApiRuntime) -> ASGIApp:
    """The SaferWebAPI app behind its gate."""
    app = new_app("saferweb")

    @app.get("/v2/usdot/snapshot/{dot}")
    async def snapshot(dot: str, request: Request) -> Response:
        given = request.headers.get("x-api-key")
        if not given:
            return json_response({"message": "Unauthorized"}, 401)
        if not key_accepted(given, runtime.config.keys):
            return json_response({"message": "Forbidden"}, 403)
        if not (dot.isdigit() and data.has(int(dot))):
            return json_response({"message": "Not Found"}, 404)
        return json_response(data.snapshot(int(dot)))

    return Gate(app, runtime, _target)


def _target(scope: Scope) -> str | None:
    return target_from_path(scope, TARGET)
