"""Simulated FMCSA QCMobile: ``/qc/services/carriers/{dot}`` and ``.../basics``.

Authentication is the ``webKey`` query parameter; failures are HTTP 404 with
a string ``content``, as the real service answers. A DOT number that is not
simulated gets HTTP 200 with ``content: null`` (carrier) or ``content: []``
(basics): the real answer is unrecorded, and clients must cope with both.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Scope

from synchestra.simulator.census import QC_HOST, carrier_links
from synchestra.simulator.dataset import FmcsaData
from synchestra.simulator.gate import Gate
from synchestra.simulator.responses import json_response, qc_envelope
from synchestra.simulator.routing import key_accepted, new_app, target_from_path
from synchestra.simulator.runtime import ApiRuntime

TARGET = re.compile(r"/qc/services/carriers/(\d+)")
ERROR_LINKS = {
    "self": {"href": f"{QC_HOST}/qc"},
    "searchByName": {"href": f"{QC_HOST}/qc/name/:name"},
    "lookupBydotNumber": {"href": f"{QC_HOST}/qc/id/:dotNumber"},
}


def build(data: FmcsaData, runtime: ApiRuntime) -> ASGIApp:
    """The QCMobile app behind its gate."""
    app = new_app("qcmobile")

    @app.get("/qc/services/carriers/{dot}")
    async def carrier(dot: str, request: Request) -> Response:
        refused = _refuse_webkey(request, runtime)
        if refused is not None:
            return refused
        number = _known(dot, data)
        if number is None:
            return json_response(qc_envelope(None))
        content = {"_links": carrier_links(number), "carrier": data.carrier(number)}
        return json_response(qc_envelope(content))

    @app.get("/qc/services/carriers/{dot}/basics")
    async def basics(dot: str, request: Request) -> Response:
        refused = _refuse_webkey(request, runtime)
        if refused is not None:
            return refused
        number = _known(dot, data)
        return json_response(qc_envelope([] if number is None else data.basics(number)))

    return Gate(app, runtime, _target)


def _target(scope: Scope) -> str | None:
    return target_from_path(scope, TARGET)


def _known(dot: str, data: FmcsaData) -> int | None:
    return int(dot) if dot.isdigit() and data.has(int(dot)) else None


def _refuse_webkey(request: Request, runtime: ApiRuntime) -> Response | None:
    """The real service's 404 for a missing or unknown ``webKey``, else None."""
    given = request.query_params.get("webKey")
    if key_accepted(given, runtime.config.keys):
        return None
    message = "Must provide Webkey" if not given else "Webkey not found"
    document: dict[str, Any] = {**qc_envelope(message), "_links": ERROR_LINKS}
    return json_response(document, 404)
