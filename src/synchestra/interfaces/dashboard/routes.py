"""The dashboard's routes: the page at ``/``, its fragments under ``/ui``, and its events.

The page is rendered on the server; the script (static/dashboard.js) swaps in
fresh fragments and recolours grid cells as events arrive on ``/ui/events``, so
nothing needs a reload. None of these routes is part of the API's OpenAPI
document: they answer HTML, for a browser.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from synchestra.core.errors import UnknownTarget
from synchestra.engine import status as views
from synchestra.engine.orchestrator import Orchestrator
from synchestra.interfaces.dashboard import carrier, grid, timeline
from synchestra.interfaces.dashboard.session import Session
from synchestra.interfaces.documents import (
    sync_status_document,
    target_status_document,
    workers_document,
)
from synchestra.interfaces.sse import parse_last_id, stream_response

HERE = Path(__file__).parent
TIMELINE_SPANS = (5, 15, 60)
"""Minutes the timeline can look back."""
MAX_TIMELINE_RUNS = 600
MAX_ALERTS = 50


@dataclass(frozen=True)
class Dashboard:
    """What the dashboard's routes work with, kept in ``app.state.dashboard``."""

    orc: Orchestrator
    session: Session
    templates: Jinja2Templates

    @property
    def per_target(self) -> list[str]:
        return [name for name, spec in sorted(self.orc.sources.items()) if spec.per_target]

    def render(self, request: Request, name: str, code: int = 200, **context: Any) -> HTMLResponse:
        return self.templates.TemplateResponse(request, name, context, status_code=code)

    def denied(self, request: Request) -> Response | None:
        """None when signed in; else the 401 a fragment answers."""
        if self.session.signed_in(request):
            return None
        return Response("sign in first: open / and give the API token", status_code=401)


def install(app: FastAPI, orc: Orchestrator, *, token: str | None) -> None:
    """Add the dashboard to ``app``: ``/``, ``/login``, ``/ui/...`` and ``/static``."""
    app.state.dashboard = Dashboard(orc, Session(token), _templates(orc))
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(router)


def _dashboard(request: Request) -> Dashboard:
    found: Dashboard = request.app.state.dashboard
    return found


Board = Annotated[Dashboard, Depends(_dashboard)]

router = APIRouter(include_in_schema=False)


def _templates(orc: Orchestrator) -> Jinja2Templates:
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters["ago"] = lambda moment: relative(moment, orc.clock.now())
    return templates


def relative(moment: datetime | str | None, now: datetime) -> str:
    """``"12s ago"`` or ``"in 3m"``: how an operator reads a time at a glance."""
    if moment is None:
        return "-"
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    seconds = (moment - now).total_seconds()
    size = abs(seconds)
    for unit, length in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if size >= length:
            amount = f"{int(size // length)}{unit}"
            break
    else:
        amount = f"{int(size)}s"
    return f"in {amount}" if seconds > 0 else f"{amount} ago"


def feed_item(event: dict[str, Any]) -> dict[str, Any]:
    """An alert as it is; a ``records.changed`` said in one line, under the label ``changes``."""
    if event["type"] == "alert.raised":
        return event
    counts = ", ".join(
        f"{event[name]} {name}" for name in ("created", "updated", "deleted") if event.get(name)
    )
    return {**event, "alert": "changes", "message": f"{event['source']}: {event['kind']} {counts}"}


# --- signing in --------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
async def page(request: Request, board: Board, token: str | None = None) -> Response:
    if token is not None:
        return _signed_in_or_refused(request, board, token)
    if not board.session.signed_in(request):
        return board.render(request, "login.html", 401, error=None)
    return board.render(request, "index.html", **await _page_context(board))


@router.post("/login")
async def login(request: Request, board: Board) -> Response:
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    return _signed_in_or_refused(request, board, form.get("token", [""])[0])


@router.post("/logout")
async def logout() -> Response:
    response = RedirectResponse("/", status_code=303)
    Session.sign_out(response)
    return response


def _signed_in_or_refused(request: Request, board: Board, token: str) -> Response:
    if not board.session.token_matches(token):
        return board.render(request, "login.html", 403, error="wrong token")
    response = RedirectResponse("/", status_code=303)  # the token leaves the address bar
    board.session.sign_in(response)
    return response


# --- fragments ------------------------------------------------------------------


async def _page_context(board: Dashboard) -> dict[str, Any]:
    return {
        "status": sync_status_document(await board.orc.sync_status()),
        "grid": await _grid(board, "", 1),
        "timeline": await _timeline(board.orc, TIMELINE_SPANS[0], _default_lanes(board.orc)),
        "spans": TIMELINE_SPANS,
        "alerts": _alerts(board.orc),
        "workers": workers_document(await board.orc.workers()),
        "auth": board.session.required,
    }


def _alerts(orc: Orchestrator, target: str | None = None) -> list[dict[str, Any]]:
    """Alerts and record changes, newest first (the bus keeps them apart from run events)."""
    events = [
        *orc.bus.latest("alert.raised", limit=MAX_ALERTS),
        *orc.bus.latest("records.changed", limit=MAX_ALERTS),
    ]
    events.sort(key=lambda event: event.id, reverse=True)
    feed = [feed_item(event.to_dict()) for event in events]
    return [item for item in feed if target is None or item["target"] == target][:MAX_ALERTS]


@router.get("/ui/alerts", response_class=HTMLResponse)
async def alerts_fragment(request: Request, board: Board) -> Response:
    if refused := board.denied(request):
        return refused
    return board.render(request, "_alerts.html", alerts=_alerts(board.orc))


@router.get("/ui/workers", response_class=HTMLResponse)
async def workers_fragment(request: Request, board: Board) -> Response:
    """The processes sharing the database: heartbeat age, running / capacity, the scheduler."""
    if refused := board.denied(request):
        return refused
    workers = workers_document(await board.orc.workers())
    return board.render(request, "_workers.html", workers=workers)


@router.get("/ui/sources", response_class=HTMLResponse)
async def sources_fragment(request: Request, board: Board) -> Response:
    if refused := board.denied(request):
        return refused
    status = sync_status_document(await board.orc.sync_status())
    return board.render(request, "_sources.html", status=status)


async def _grid(board: Dashboard, search: str, page_number: int) -> grid.Grid:
    found = await board.orc.store.grid_page(
        search=search, limit=grid.PAGE_SIZE, offset=(page_number - 1) * grid.PAGE_SIZE
    )
    return grid.build_grid(found, board.per_target, search=search, page=page_number)


@router.get("/ui/grid", response_class=HTMLResponse)
async def grid_fragment(
    request: Request,
    board: Board,
    q: Annotated[str, Query(max_length=200)] = "",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> Response:
    if refused := board.denied(request):
        return refused
    return board.render(request, "_grid.html", grid=await _grid(board, q, page))


def _default_lanes(orc: Orchestrator) -> timeline.LaneKind:
    has_groups = any(spec.group for spec in orc.sources.values())
    return "group" if has_groups else "api"


async def _timeline(orc: Orchestrator, minutes: int, lanes: timeline.LaneKind) -> timeline.Timeline:
    now = orc.clock.now()
    span = timedelta(minutes=minutes)
    runs = await orc.store.runs_started_since(now - span, limit=MAX_TIMELINE_RUNS)
    return timeline.build(runs, orc.sources, now=now, span=span, kind=lanes)


@router.get("/ui/timeline", response_class=HTMLResponse)
async def timeline_fragment(
    request: Request,
    board: Board,
    minutes: Annotated[int, Query(ge=1, le=24 * 60)] = TIMELINE_SPANS[0],
    lanes: Literal["group", "api"] | None = None,
) -> Response:
    if refused := board.denied(request):
        return refused
    drawn = await _timeline(board.orc, minutes, lanes or _default_lanes(board.orc))
    return board.render(request, "_timeline.html", timeline=drawn, spans=TIMELINE_SPANS)


@router.get("/ui/targets/{key}", response_class=HTMLResponse)
async def target_fragment(request: Request, board: Board, key: str) -> Response:
    if refused := board.denied(request):
        return refused
    orc = board.orc
    try:
        status = await views.target_status(orc.store, orc.sources, key)
    except UnknownTarget as error:
        return Response(str(error), status_code=404)
    basics = await orc.store.all_records("basic", key)
    violations = await orc.store.all_records("violation", key)
    return board.render(
        request,
        "_target.html",
        status=target_status_document(status),
        charts=carrier.basic_charts(basics),
        violations=carrier.latest_violations(violations),
        violation_count=len(violations),
        alerts=_alerts(orc, key),
        chart_size=(carrier.CHART_WIDTH, carrier.CHART_HEIGHT),
    )


# --- actions --------------------------------------------------------------------


@router.post("/ui/sync/{source}")
async def sync_source(request: Request, board: Board, source: str) -> Response:
    orc = board.orc
    if not board.session.may_act(request):
        return Response("not allowed", status_code=403)
    if source not in orc.sources:
        return Response(f"unknown source {source!r}", status_code=404)
    answers = await orc.request([source], all_targets=orc.sources[source].per_target)
    return Response(f"{len(answers)} queued", status_code=202)


@router.post("/ui/targets/{key}/sync")
async def sync_target(request: Request, board: Board, key: str) -> Response:
    if not board.session.may_act(request):
        return Response("not allowed", status_code=403)
    if await board.orc.store.get_target(key) is None:
        return Response(f"unknown target {key!r}", status_code=404)
    answers = await board.orc.request(board.per_target, targets=[key])
    return Response(f"{len(answers)} queued", status_code=202)


# --- live -----------------------------------------------------------------------


@router.get("/ui/events")
async def events(request: Request, board: Board) -> Response:
    if refused := board.denied(request):
        return refused
    after = parse_last_id(request.headers.get("Last-Event-ID"), None)
    return stream_response(request, board.orc.bus, board.orc.clock, after=after)
