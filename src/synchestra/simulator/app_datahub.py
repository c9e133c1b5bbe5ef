"""Simulated DataHub (Socrata SODA 2.x): ``/resource/8mt8-2mdr.json``.

The app token (``X-App-Token`` header or ``$$app_token``) is optional, as on
the real portal; when the API config lists ``keys``, an unknown token gets
Socrata's 403. Other dataset ids get 404.
"""

from __future__ import annotations

from fastapi import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from synchestra.simulator.dataset import FmcsaData
from synchestra.simulator.gate import Gate
from synchestra.simulator.responses import error_response, raw_response
from synchestra.simulator.routing import dot_from_query, new_app
from synchestra.simulator.runtime import ApiRuntime
from synchestra.simulator.socrata import (
    DATASET_ID,
    render_error,
    render_rows,
    run_query,
    soda_headers,
)
from synchestra.simulator.soql import SoqlError, parse_query
from synchestra.simulator.violations import COLUMNS

JSON_UTF8 = "application/json;charset=utf-8"


def build(data: FmcsaData, runtime: ApiRuntime) -> ASGIApp:
    """The DataHub app behind its gate."""
    app = new_app("datahub")

    @app.get("/resource/{resource}")
    async def resource(resource: str, request: Request) -> Response:
        if resource != f"{DATASET_ID}.json":
            return error_response("datahub", 404, f"Cannot find view with id {resource}")
        token = request.headers.get("x-app-token") or request.query_params.get("$$app_token")
        keys = runtime.config.keys
        if token and keys and token not in keys:
            return error_response("datahub", 403, "Invalid app_token specified")
        try:
            query = parse_query(request.query_params.multi_items(), COLUMNS)
        except SoqlError as error:
            return raw_response(render_error(error.body).encode(), 400, JSON_UTF8)
        rows = run_query(data, query)
        return raw_response(render_rows(rows).encode(), 200, JSON_UTF8, soda_headers(data, query))

    return Gate(app, runtime, dot_from_query)
