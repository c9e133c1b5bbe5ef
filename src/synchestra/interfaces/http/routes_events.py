"""Server-sent events of the engine's bus: ``GET /api/events``.

The stream itself (framing, replay after ``Last-Event-ID``, keepalives) is
:mod:`synchestra.interfaces.sse`, shared with the dashboard; this route only
parses its parameters. A bad one is a 422 naming it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from synchestra.interfaces.http.deps import Orc
from synchestra.interfaces.http.schemas import errors
from synchestra.interfaces.sse import parse_last_id, parse_types, stream_response

_STREAM: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"text/event-stream": {}},
        "description": "server-sent events: `id`, `event` (the type), `data` (JSON)",
    }
}

router = APIRouter(tags=["events"])


@router.get(
    "/api/events",
    response_class=StreamingResponse,
    responses=_STREAM | errors(422),
    summary="live events (server-sent events), resumable with Last-Event-ID",
)
async def events(
    request: Request,
    orc: Orc,
    types: Annotated[
        str | None, Query(description="comma-separated event types to keep (default: all)")
    ] = None,
    last_event_id: Annotated[
        str | None, Query(description="resume after this event id (as Last-Event-ID)")
    ] = None,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    after = parse_last_id(last_event_id_header, last_event_id)
    return stream_response(request, orc.bus, orc.clock, after=after, types=parse_types(types))
