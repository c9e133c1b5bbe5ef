"""Simulated ERP: ``/api/{collection}`` in four paging styles, ``updated_since``.

``/api/link/{collection}`` is the same collection in link style (as is
``?style=link``), for clients that cannot add a parameter.
"""

from __future__ import annotations

import re

from fastapi import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Scope

from synchestra.simulator.erp_data import ErpStore, UnknownCollection
from synchestra.simulator.gate import Gate
from synchestra.simulator.paging import PagingError, Style, choose_style, paginate
from synchestra.simulator.responses import error_response, json_response
from synchestra.simulator.routing import new_app, target_from_path
from synchestra.simulator.runtime import ApiRuntime
from synchestra.simulator.timefmt import parse_iso

TARGET = re.compile(r"/api/(?:link/)?([A-Za-z_]+)$")


def build(store: ErpStore, runtime: ApiRuntime) -> ASGIApp:
    """The ERP app behind its gate."""
    app = new_app("erp")

    @app.get("/api/link/{collection}")
    async def linked(collection: str, request: Request) -> Response:
        return _listing(store, collection, request, "link")

    @app.get("/api/{collection}")
    async def listing(collection: str, request: Request) -> Response:
        return _listing(store, collection, request, None)

    return Gate(app, runtime, _target)


def _target(scope: Scope) -> str | None:
    return target_from_path(scope, TARGET)


def _listing(store: ErpStore, collection: str, request: Request, forced: Style | None) -> Response:
    params = request.query_params
    try:
        style = choose_style(params, forced)
        since_text = params.get("updated_since")
        since = parse_iso(since_text) if since_text else None
        records = store.records(collection, since)
        page = paginate(
            style,
            records,
            params,
            lambda after: str(request.url.include_query_params(after=str(after))),
        )
    except UnknownCollection:
        return error_response("erp", 404, f"unknown collection {collection!r}")
    except (PagingError, ValueError) as error:
        return error_response("erp", 400, str(error))
    return json_response(page.body, headers=page.headers)
